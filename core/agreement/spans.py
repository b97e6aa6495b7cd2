"""Span agreement: token-level precision, recall and F1 of the model's highlights against the annotators'."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from core.agreement.inputs import SPAN_COLUMNS
from core.agreement.metrics import _defined, _undefined

_TOKEN = re.compile(r"\w+")


def _valid_span(span: Any) -> tuple[str, int, int] | None:
    """(field, start, end) of a well-formed span, else None."""
    if not isinstance(span, dict | Mapping):
        return None
    field, start, end = span.get("field"), span.get("start"), span.get("end")
    if type(start) is not int or type(end) is not int:  # bools are ints: excluded by the exact type check
        if not isinstance(start, np.integer) or not isinstance(end, np.integer):
            return None
    if not 0 <= start < end or not isinstance(field, str):
        return None
    return field, int(start), int(end)


def _tokens(text: str) -> tuple[np.ndarray, np.ndarray]:
    found = [m.span() for m in _TOKEN.finditer(text)]
    if not found:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    offsets = np.array(found, dtype=np.int64)
    return offsets[:, 0], offsets[:, 1]


def _marked(start_key: np.ndarray, end_key: np.ndarray, span_start: np.ndarray, span_end: np.ndarray) -> np.ndarray:
    """Which tokens overlap at least one span; keys are (segment, offset) packed into one sorted integer.

    Tokens of a segment do not overlap and are in text order, so the tokens a span touches are a run:
    from the first whose end is after the span's start to the last whose start is before the span's end.
    """
    first = np.searchsorted(end_key, span_start, side="right")
    stop = np.searchsorted(start_key, span_end, side="left")
    keep = first < stop
    depth = np.zeros(len(start_key) + 1, dtype=np.int64)
    np.add.at(depth, first[keep], 1)
    np.add.at(depth, stop[keep], -1)
    return np.cumsum(depth[:-1]) > 0


def _span_agreement(rows: pd.DataFrame) -> dict[str, Any]:
    """Token-level precision/recall/F1 of model spans (prediction) vs human spans (reference), micro-averaged.

    Only annotations that marked evidence count: one with no human span says nothing about the model's
    highlights (the annotator may simply not have marked any), so it is left out and counted, never read
    as "every model token is a false positive".
    """
    has_fields = np.array([isinstance(f, Mapping) and bool(f) for f in rows["fields"]], dtype=bool)
    marked = np.array([bool(spans) for spans in rows["human_spans"]], dtype=bool)
    without_evidence = int(np.sum(has_fields & ~marked))
    left_out = {
        "n_without_evidence": without_evidence,
        "left_out_note": (
            f"{without_evidence} annotation(s) of graded items marked no evidence and are left out of span "
            "agreement: an annotation with no span is not read as disagreeing with every model highlight."
        ),
    }
    no_spans = all(v is None for column in SPAN_COLUMNS for v in rows[column])
    if not has_fields.any() or no_spans or not (has_fields & marked).any():
        reason = (
            "no annotation of a graded item has its fields text"
            if not has_fields.any()
            else "no human_spans or model_spans in the input"
            if no_spans
            else "no annotation of a graded item marked evidence"
        )
        return {name: _undefined(reason) for name in ("precision", "recall", "f1")} | {"n_annotations": 0} | left_out
    rows = rows[has_fields & marked]
    # One segment per (annotation, field): its tokens, and the spans of each side that point into it.
    tokens_of: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # annotators of one item share its texts
    segments: list[tuple[np.ndarray, np.ndarray]] = []
    spans_at: tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]] = ([], [])
    n_annotations = ignored = 0
    for fields, human, model in zip(rows["fields"], rows["human_spans"], rows["model_spans"], strict=True):
        if not isinstance(fields, Mapping) or not fields:
            continue
        n_annotations += 1
        segment_of: dict[str, int] = {}
        for tag, text in fields.items():
            text = "" if text is None else str(text)
            if text not in tokens_of:
                tokens_of[text] = _tokens(text)
            segment_of[str(tag)] = len(segments)
            segments.append(tokens_of[text])
        for side, spans in enumerate((human, model)):
            for span in spans or ():
                valid = _valid_span(span)
                segment = segment_of.get(valid[0]) if valid else None
                if valid is None or segment is None:
                    ignored += 1
                else:
                    spans_at[side].append((segment, valid[1], valid[2]))
    lengths = np.array([len(starts) for starts, _ in segments], dtype=np.int64)
    starts = np.concatenate([s for s, _ in segments]) if segments else np.zeros(0, dtype=np.int64)
    ends = np.concatenate([e for _, e in segments]) if segments else np.zeros(0, dtype=np.int64)
    n_tokens = int(lengths.sum())
    span_arrays = [np.array(side, dtype=np.int64).reshape(-1, 3) for side in spans_at]
    # Pack (segment, offset) into one integer; `stride` exceeds every offset, so segments never mix.
    stride = 1 + max([int(ends.max(initial=0))] + [int(a[:, 2].max(initial=0)) for a in span_arrays])
    token_segment = np.repeat(np.arange(len(segments), dtype=np.int64), lengths)
    start_key, end_key = token_segment * stride + starts, token_segment * stride + ends
    human_hit, model_hit = (
        _marked(start_key, end_key, a[:, 0] * stride + a[:, 1], a[:, 0] * stride + a[:, 2]) for a in span_arrays
    )
    tp = int(np.sum(human_hit & model_hit))
    fp = int(np.sum(model_hit & ~human_hit))
    fn = int(np.sum(human_hit & ~model_hit))
    block: dict[str, Any] = {
        "precision": _defined(tp / (tp + fp)) if tp + fp else _undefined("the model marked no token"),
        "recall": _defined(tp / (tp + fn)) if tp + fn else _undefined("the annotators marked no token"),
        "f1": _defined(2 * tp / (2 * tp + fp + fn)) if tp + fp + fn else _undefined("no token was marked by anyone"),
        "n_annotations": n_annotations,
        "n_tokens": n_tokens,
        "true_positive_tokens": tp,
        "false_positive_tokens": fp,
        "false_negative_tokens": fn,
        "ignored_spans": ignored,
        **left_out,
        "method": (
            "Tokens are regex \\w+ matches in each field's text; a token is marked when it overlaps a span. "
            "Model spans are the prediction, human spans the reference; counts are summed over every annotation "
            "of a graded item that has its fields text and at least one human span (micro-average). Spans that "
            "name an unknown field or have invalid offsets are ignored and counted."
        ),
    }
    return block
