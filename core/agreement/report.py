"""`agreement_report`: the whole report from long-format ratings (the CONTRACT is core.agreement's docstring).

It decides which human score is the headline (blind or not), the scale, the pooled items, and assembles
every block: headline metrics with bootstrap intervals, human vs human, per annotator, spans, anchoring,
post_reveal, confusion, distributions and disagreements.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from core.agreement.alt_test import alt_test, resolve_epsilon
from core.agreement.bootstrap import BOOTSTRAP_NOTE, CONFIDENCE, _add_ci, _pooled_table, bootstrap_statistics
from core.agreement.calibration import TARGET, check_target, item_consensus, item_values, judge_calibration
from core.agreement.inputs import AFTER, BEFORE, DRAWN, MODEL_CONFIDENCE, NO_ANNOTATOR, _codes, _frame, _where
from core.agreement.judge_vs_people import judge_vs_people
from core.agreement.metrics import (
    HEADLINE,
    _anchoring,
    _human_human,
    _no_anchoring,
    _plain,
    _undefined,
    correlation_metrics,
    exact_metrics,
    weighted_kappa,
)
from core.agreement.sampling import random_items, random_rows, sampling_report
from core.agreement.spans import _span_agreement
from core.errors import InputError

POOLING = (
    "Human vs model, pooled: one point per item that has a model score and at least one human score. "
    "The human side of an item is the MEAN of its annotators' scores for Pearson, Spearman and Kendall's tau-b; "
    "for exact agreement, agreement within ±1 and quadratic-weighted Cohen's kappa it is that mean rounded to "
    "the nearest scale value, halves rounded UP (a mean of 2.5 counts as 3). Kappa's quadratic weights use "
    "every integer value of the scale as a label, used or not. Per annotator: each annotator's own scores vs "
    "the model on the items they labelled. 95% confidence intervals: percentile bootstrap over items."
)


def _scale(rows: pd.DataFrame, graded: np.ndarray, scale: tuple[int, int] | None) -> dict[str, Any] | None:
    columns = {c: rows[c].to_numpy() for c in ("human_score", BEFORE, AFTER)}
    columns["model_score"] = np.where(graded, rows["model_score"].to_numpy(), np.nan)
    if scale is not None:
        try:
            low, high = (int(v) for v in scale)
        except (TypeError, ValueError) as exc:
            raise InputError(f"scale must be two whole numbers (min, max), got {scale!r}") from exc
        if (low, high) != tuple(scale) or low >= high:
            raise InputError(f"scale must be two whole numbers with min < max, got {scale!r}")
        label = rows.attrs.get("row_label", "row")
        for column, values in columns.items():
            outside = ~np.isnan(values) & ((values < low) | (values > high))
            if outside.any():
                raise InputError(
                    f"{_where(rows, outside, label)}: {column} {values[outside][0]:g} is outside the scale {low}-{high}"
                )
        source = "given"
    else:
        present = np.concatenate([v[~np.isnan(v)] for v in columns.values()])
        if present.size == 0:
            return None
        low, high = int(present.min()), int(present.max())
        source = "data"
    return {"min": low, "max": high, "labels": list(range(low, high + 1)), "source": source}


HEADLINE_NOTES = {
    True: (
        "Blind study: every headline number (human vs model, human vs human, per annotator, confusion, "
        "distributions, disagreements) uses the score each annotator gave BEFORE the model's verdict was shown "
        "(human_score_before_reveal), so the verdict cannot have pulled it. The scores after the reveal, later "
        "edits included, are the second view in post_reveal; anchoring counts how many moved."
    ),
    False: (
        "Not a blind study: the labels were given with the model's verdict visible, so the human scores may lean "
        "towards the model's and agreement may be overstated; there is no score from before the reveal."
    ),
    None: (
        "The input does not say whether the labels were given blind (no blind column, no after-reveal scores): "
        "the headline uses human_score as given."
    ),
}


def _blindness(data: pd.DataFrame, blind: bool | None) -> tuple[bool | None, str]:
    """Whether the labels were given blind, and what says so: the argument, the blind column, or the scores."""
    if blind is not None:
        if not isinstance(blind, bool | np.bool_):
            raise InputError(f"blind must be True, False or None, got {blind!r}")
        return bool(blind), "the blind argument"
    given = {value for value in data["blind"] if value is not None}
    if len(given) > 1:
        raise InputError("the blind column says true on some rows and false on others: report one study at a time")
    if given:
        return given.pop(), "the input's blind column"
    if (~np.isnan(data[AFTER].to_numpy())).any() and (~np.isnan(data[BEFORE].to_numpy())).any():
        return True, "the input's after-reveal scores (only blind studies record them)"
    return None, "nothing in the input"


class _Items(NamedTuple):
    """What every view of a report shares: items, annotators, the model's scores and the scale."""

    items: np.ndarray  # item code per row
    item_ids: np.ndarray  # item id per code
    people: np.ndarray  # annotator code per row
    names: np.ndarray  # annotator name per code
    labelled_row: np.ndarray  # rows that belong to an annotator (not "item exists" rows)
    model: np.ndarray  # model score per item code, NaN where none
    graded: np.ndarray  # per item code: has a usable model score
    labels: list[int]
    low: int
    external: np.ndarray | None  # per item code: the item's own id in the user's data (None where it has none)


def _view(ctx: _Items, human: np.ndarray, n_resamples: int, seed: int) -> tuple[dict[str, Any], np.ndarray]:
    """Every statistic that depends on the human scores, computed on `human` (one score per row, NaN = none)."""
    items, labels, model = ctx.items, ctx.labels, ctx.model
    n_items_total = len(ctx.item_ids)
    has_human = ~np.isnan(human)
    labelled = np.bincount(items[has_human], minlength=n_items_total) > 0
    # Pooled items: graded and labelled. Integer arithmetic keeps round-half-up exact.
    use = has_human & ctx.graded[items]
    sums = np.bincount(items[use], weights=human[use], minlength=n_items_total).round().astype(np.int64)
    counts = np.bincount(items[use], minlength=n_items_total)
    pooled = np.flatnonzero(ctx.graded & (counts > 0))
    h_sum, h_n = sums[pooled], counts[pooled]
    h_mean = h_sum / h_n
    h_round = (2 * h_sum + h_n) // (2 * h_n)  # floor(mean + 1/2): halves round up
    m_score = model[pooled]

    view: dict[str, Any] = {
        "n_items": int(len(pooled)),
        "n_items_total": int(n_items_total),
        "n_annotators": int(len(np.unique(ctx.people[has_human]))),
        "n_ratings": int(np.sum(has_human)),
    }
    headline = {
        **correlation_metrics(h_mean, m_score, x_name="human item means", y_name="model scores"),
        **exact_metrics(h_round, m_score),
        "weighted_kappa": weighted_kappa(h_round, m_score, labels),
    }
    resampled: dict[str, np.ndarray] = {}
    if n_resamples and len(pooled):
        table = _pooled_table(h_mean, h_round, m_score, ctx.low)
        resampled = bootstrap_statistics(table, len(labels), n_resamples, seed)
    for name in HEADLINE:
        _add_ci(headline[name], resampled.get(name), n_resamples)
    view.update(headline)

    if labels:
        human_block = _human_human(items[has_human], ctx.people[has_human], human[has_human], ctx.names,
                                   n_items_total, labels)
    else:
        reason = "no human scores"
        human_block = {
            "n_annotators": 0,
            "n_items_multiply_rated": 0,
            "krippendorff_alpha_ordinal": _undefined(reason, n=0),
            "krippendorff_alpha_interval": _undefined(reason, n=0),
            "pairwise_exact": _undefined(reason, n=0),
            "mean_pairwise_weighted_kappa": _undefined(reason, n_pairs=0, n_pairs_undefined=0),
            "pairs_with_fewer_than_2_shared_items": 0,
            "pairs": [],
        }
    view["krippendorff_alpha_ordinal"] = dict(human_block["krippendorff_alpha_ordinal"])  # copies, not aliases
    view["krippendorff_alpha_interval"] = dict(human_block["krippendorff_alpha_interval"])
    view["excluded"] = {
        "missing_human_score": int(np.sum(~has_human & ctx.labelled_row)),
        "no_human_label": int(np.sum(ctx.graded & ~labelled)),  # graded items that no annotator scored
    }
    view["per_annotator"] = _per_annotator(items, ctx.people, ctx.names, human, model, use, labels)
    view["human_human"] = human_block
    view["confusion"] = _confusion(h_round, m_score, labels)
    view["distributions"] = _distributions(human[use], m_score, labels)
    external = ctx.external[pooled] if ctx.external is not None else None
    view["disagreements"] = _disagreements(ctx.item_ids[pooled], h_mean, h_n, m_score, external)
    return view, use


def agreement_report(
    rows: Iterable[Mapping[str, Any]] | Any,
    scale: tuple[int, int] | None = None,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    blind: bool | None = None,
    epsilon: float | None = None,
    target: float = TARGET,
) -> dict[str, Any]:
    """Agreement between humans and the model, and among humans, as a JSON-ready dict; InputError on bad rows.

    In a blind study (`blind=True`, or when None: a `blind` column says so, or the rows have after-reveal
    scores) the headline uses each annotator's score from before the reveal; `post_reveal` holds the same
    statistics on the current scores (human_score). Otherwise the headline uses human_score.
    `epsilon`: the alt-test's cost-benefit margin (None = the paper's default, core.agreement.alt_test.EPSILON).
    `target` is the agreement (a share strictly between 0 and 1) the calibration block's auto-accept threshold aims at.
    """
    resolve_epsilon(epsilon)  # a bad epsilon fails before any work
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 0:
        raise InputError(f"n_resamples must be a whole number >= 0, got {n_resamples!r}")
    check_target(target)  # before any work: calibration's target agreement (a share, e.g. 0.9)
    data = _frame(rows)
    items, item_ids = _codes(data["item_id"], "item_id") if len(data) else (np.zeros(0, int), np.zeros(0, object))
    people, names = _codes(data["annotator"], "annotator") if len(data) else (np.zeros(0, int), np.zeros(0, object))
    n_items_total = len(item_ids)
    is_blind, decided_by = _blindness(data, blind)

    current = data["human_score"].to_numpy()
    before = data[BEFORE].to_numpy()
    labelled_row = data["annotator"].to_numpy(dtype=object) != NO_ANNOTATOR
    if is_blind:
        lacking = ~np.isnan(current) & np.isnan(before)
        if lacking.any():
            raise InputError(
                f"{_where(data, lacking, data.attrs.get('row_label', 'row'))}: {BEFORE} is missing, and the labels "
                "were given blind (so says " + decided_by + "): the headline uses the score given before the "
                "model's verdict was shown (to use human_score instead, say the labels were not blind: blind=False, "
                "or --no-blind on the command line)"
            )
    human = before if is_blind else current
    model_rows = data["model_score"].to_numpy()

    # Per item: the model's score and status (consistent across rows, checked by _normalise).
    model = np.full(n_items_total, np.nan)
    present = ~np.isnan(model_rows)
    model[items[present]] = model_rows[present]
    failed = np.zeros(n_items_total, dtype=bool)
    failed[items[data["model_status"].to_numpy(dtype=object) == "failed"]] = True
    graded = ~failed & ~np.isnan(model)

    scale_info = _scale(data, graded[items] if len(data) else np.zeros(0, bool), scale)
    labels = scale_info["labels"] if scale_info else []
    ctx = _Items(items, item_ids, people, names, labelled_row, model, graded, labels,
                 scale_info["min"] if scale_info else 0, _external_ids(data, items, n_items_total))
    view, use = _view(ctx, human, n_resamples, seed)

    report: dict[str, Any] = {
        "n_items": view["n_items"],
        "n_items_total": int(n_items_total),
        "n_annotators": view["n_annotators"],
        "n_ratings": view["n_ratings"],
        "scale": scale_info,
        "pooling": POOLING,
        "headline_score": {
            "score": BEFORE if is_blind else "human_score",
            "blind": is_blind,
            "decided_by": decided_by,
            "note": HEADLINE_NOTES[is_blind],
        },
    }
    report.update({name: view[name] for name in HEADLINE})
    report["bootstrap"] = {
        "method": "percentile",
        "resampled": "items",
        "confidence": CONFIDENCE,
        "n_resamples": n_resamples,
        "seed": seed,
        "note": BOOTSTRAP_NOTE,
    }
    report["krippendorff_alpha_ordinal"] = view["krippendorff_alpha_ordinal"]
    report["krippendorff_alpha_interval"] = view["krippendorff_alpha_interval"]
    report["excluded"] = {
        "missing_human_score": view["excluded"]["missing_human_score"],
        "parse_failed": int(np.sum(failed)),  # items (the model's answer had no readable score)
        "not_graded": int(np.sum(~failed & np.isnan(model))),  # items with no model score
        "no_human_label": view["excluded"]["no_human_label"],
    }
    report["excluded_note"] = (
        "missing_human_score counts rows (with no score in the column the headline uses); the other reasons count "
        "items, each item once (parse_failed, then not_graded, then no_human_label). Human scores on parse_failed "
        "or not_graded items still count for human vs human agreement."
    )
    for name in ("per_annotator", "human_human"):
        report[name] = view[name]
    report["spans"] = _span_agreement(data[use])
    if is_blind:
        anchor = use & ~np.isnan(current)
        report["anchoring"] = _anchoring(
            before[anchor], current[anchor], data[AFTER].to_numpy()[anchor], model[items[anchor]], labels
        )
        post, _ = _view(ctx, current, n_resamples, seed)
        report["post_reveal"] = {
            "available": True,
            "score": "human_score",
            "note": (
                "The same statistics on the scores as they are now: after the model's verdict was shown, later "
                "edits included. Labels may have moved towards the model here (see anchoring)."
            ),
            **post,
        }
    else:
        report["anchoring"] = _no_anchoring(is_blind)
        report["post_reveal"] = {"available": False, "reason": report["anchoring"]["reason"]}
    for name in ("confusion", "distributions", "disagreements"):
        report[name] = view[name]
    drawn = data[DRAWN].to_numpy(dtype=object)
    report["sampling"] = sampling_report(drawn, items, item_ids, ~np.isnan(human) & labelled_row, graded)
    # The alt-test and the auto-accept threshold are claims about the study's items at large: only items drawn
    # at random support them (least-confident-first items are the hard ones); the headline stays on all items.
    by_chance = random_rows(drawn, items, n_items_total)
    report["alt_test"] = alt_test(items[by_chance], people[by_chance], human[by_chance],
                                  np.where(graded, model, np.nan), names, labels=labels, epsilon=epsilon)
    confidence = item_values(items, data[MODEL_CONFIDENCE].to_numpy(dtype=float), n_items_total)
    use_items = graded & random_items(drawn, items, n_items_total)
    report["calibration"] = judge_calibration(confidence[use_items], model[use_items],
                                              item_consensus(items, human, n_items_total)[use_items], target=target,
                                              population=confidence[graded])
    report["judge_vs_people"] = judge_vs_people(
        items, people, np.where(labelled_row, human, np.nan), model, graded, names, labels,
        report["human_human"]["krippendorff_alpha_ordinal"], n_resamples=n_resamples, seed=seed)
    return report


def _external_ids(data: pd.DataFrame, items: np.ndarray, n_items: int) -> np.ndarray | None:
    """Each item's external id (the first one given on its rows), or None when the input has no such column."""
    if data["external_id"].isna().all():
        return None
    external = np.full(n_items, None, dtype=object)
    for code, value in zip(items, data["external_id"].to_numpy(dtype=object), strict=True):
        # Only truly empty ids are missing ("NA" may well be someone's id), as for item_id.
        blank = value is None or (isinstance(value, float) and math.isnan(value)) or not str(value).strip()
        if external[code] is None and not blank:
            external[code] = _plain(value)
    return external


def _per_annotator(
    items: np.ndarray,
    people: np.ndarray,
    names: np.ndarray,
    human: np.ndarray,
    model: np.ndarray,
    use: np.ndarray,
    labels: list[int],
) -> list[dict[str, Any]]:
    out = []
    for code, name in enumerate(names):
        mine = use & (people == code)
        if not mine.any():
            continue
        h, m = human[mine], model[items[mine]]
        entry: dict[str, Any] = {"annotator": _plain(name), "n_items": int(mine.sum())}
        entry.update(correlation_metrics(h, m, x_name="this annotator's scores", y_name="model scores"))
        entry.update(exact_metrics(h, m))
        entry["weighted_kappa"] = weighted_kappa(h, m, labels)
        out.append(entry)
    return out


def _confusion(human: np.ndarray, model: np.ndarray, labels: list[int]) -> dict[str, Any]:
    size = len(labels)
    matrix = np.zeros((size, size), dtype=int)
    if size and len(human):
        low = labels[0]
        matrix = np.bincount((human - low) * size + (model.astype(int) - low), minlength=size * size)
        matrix = matrix.reshape(size, size)
    return {
        "labels": labels,
        "rows": "human (item mean, rounded half up)",
        "columns": "model",
        "matrix": matrix.tolist(),
    }


def _distributions(human: np.ndarray, model: np.ndarray, labels: list[int]) -> dict[str, Any]:
    low, size = (labels[0], len(labels)) if labels else (0, 0)
    return {
        "labels": labels,
        "human": np.bincount(human.astype(int) - low, minlength=size).tolist() if len(human) else [0] * size,
        "model": np.bincount(model.astype(int) - low, minlength=size).tolist() if len(model) else [0] * size,
        "note": "human: every human score on a pooled item; model: one score per pooled item",
    }


def _disagreements(
    ids: np.ndarray, mean: np.ndarray, n: np.ndarray, model: np.ndarray, external: np.ndarray | None = None
) -> list[dict[str, Any]]:
    """Items by |human mean - model|, largest first; with `external_id` (None if the item has none) when known."""
    diff = mean - model
    order = np.argsort(-np.abs(diff), kind="stable")  # ties keep the input's item order
    out = []
    for i in order:
        entry: dict[str, Any] = {"item_id": _plain(ids[i])}
        if external is not None:
            entry["external_id"] = external[i]
        entry.update(human_mean=float(mean[i]), n_annotators=int(n[i]), model_score=int(model[i]),
                     diff=float(diff[i]))
        out.append(entry)
    return out
