"""Reading and checking ratings: files and rows become one validated frame for the report.

Every input path (a DataFrame, an iterable of mappings, a ratings file) goes through `_normalise`: canonical
columns, scores as floats with NaN = missing, and an InputError naming the rows of anything unusable.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.errors import InputError
from core.tabular import read_table

REQUIRED_COLUMNS = ("item_id", "annotator", "human_score", "model_score")
BEFORE, AFTER = "human_score_before_reveal", "human_score_after_reveal"
SCORE_COLUMNS = ("human_score", "model_score", BEFORE, AFTER)
NO_ANNOTATOR = ""  # the annotator of a row that only says an item exists (no label yet); never a real name
SPAN_COLUMNS = ("human_spans", "model_spans")
REMOVED_COLUMN = "item_removed"  # an export's mark on labels of items an admin removed (Studies.export_rows)
# An item's adjudicated label (Studies.ratings and the export carry it): kept when present, for adjudicated_report.
ADJUDICATED = "adjudicated_score"
# The judge's confidence in its own score (a probability; one value per item, like model_score), for calibration.
MODEL_CONFIDENCE = "model_confidence"
# Whether the study's queue drew the item at random (True) or least-confident first (False); None: unknown, counted
# as random (core.agreement.sampling). Studies.ratings and the export carry it.
DRAWN = "drawn_at_random"
# The app's annotation export (Studies.export_rows) names these columns its own way; a file that lacks the
# canonical name is read with the export's, so an export is accepted as it is.
EXPORT_ALIASES = {"score": "human_score", "score_before_reveal": BEFORE, "score_after_reveal": AFTER,
                  "spans": "human_spans"}
TRUE_TEXTS, FALSE_TEXTS = frozenset({"true", "yes", "y", "1"}), frozenset({"false", "no", "n", "0"})
STATUSES = ("ok", "repaired", "failed")
# Cell texts read as "missing" in a file (case-insensitive, after stripping): empty, and what R/pandas write.
MISSING_MARKERS = frozenset({"", "na", "n/a", "nan", "null", "none"})


def load_ratings(path: str | Path) -> pd.DataFrame:
    """Read a ratings file into validated rows for `agreement_report`; InputError if unreadable.

    Files are read by core.tabular.read_table, as batch grading and study imports read them (CSV with ',' or
    ';', TSV, JSON Lines, a JSON array; UTF-8 with or without BOM, UTF-16, else Windows-1252 with a note in
    `.attrs["notes"]`), then checked strictly: a row the reader could not parse is an error here, not a
    skipped row. Every CSV cell is text: ids keep leading zeros, and an empty cell (or NA, N/A, NaN, null,
    None) in a score column is a missing score. Errors name the data row (header not counted), line or element.
    """
    table = read_table(path)
    if table.errors:
        shown = "; ".join(f"{table.row_word} {error.row}: {error.message}" for error in table.errors[:3])
        more = f" (and {len(table.errors) - 3} more)" if len(table.errors) > 3 else ""
        raise InputError(f"{Path(path).name}: {shown}{more}")
    columns = list(dict.fromkeys([*table.columns, "source_row"]))  # a header column every row leaves out stays
    frame = pd.DataFrame([{**values, "source_row": number} for number, values in table.rows], columns=columns)
    if table.kind in ("csv", "tsv"):
        frame.columns = [str(c).strip() for c in frame.columns]
    rows = _normalise(frame, row_label=table.row_word)
    rows.attrs["notes"] = list(table.notes)
    return rows


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return isinstance(value, str) and value.strip().lower() in MISSING_MARKERS


def _where(frame: pd.DataFrame, mask: np.ndarray, label: str) -> str:
    rows = frame["source_row"].to_numpy()[mask].tolist()
    shown = ", ".join(f"{label} {r}" for r in rows[:5])
    return shown + (f" and {len(rows) - 5} more" if len(rows) > 5 else "")


def _score_column(frame: pd.DataFrame, column: str, label: str, *, whole: bool = True) -> np.ndarray:
    """The column as floats, NaN where missing; InputError naming the rows of text or (if `whole`) fractional ones."""
    raw = frame[column]
    if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        values = raw.to_numpy(dtype=float, na_value=np.nan)
    else:
        values = np.full(len(raw), np.nan)
        bad = np.zeros(len(raw), dtype=bool)
        for i, value in enumerate(raw.to_numpy(dtype=object)):
            if _is_missing(value):
                continue
            if isinstance(value, bool):
                bad[i] = True
                continue
            try:
                values[i] = float(value.strip() if isinstance(value, str) else value)
            except (TypeError, ValueError):
                bad[i] = True
        if bad.any():
            example = raw.to_numpy(dtype=object)[bad][0]
            raise InputError(f"{_where(frame, bad, label)}: {column} is not a number (e.g. {example!r})")
    present = ~np.isnan(values)
    if not whole:
        return values
    fractional = present & ~(np.isfinite(values) & (values == np.round(values)))
    if fractional.any():
        example = values[fractional][0]
        raise InputError(f"{_where(frame, fractional, label)}: {column} must be a whole number (e.g. {example:g})")
    return values


def _probability_column(frame: pd.DataFrame, column: str, label: str) -> np.ndarray:
    """The column as floats in [0, 1], NaN where missing; InputError naming the rows of anything else."""
    values = _score_column(frame, column, label, whole=False)
    outside = ~np.isnan(values) & ~((values >= 0) & (values <= 1))
    if outside.any():
        raise InputError(f"{_where(frame, outside, label)}: {column} must be a probability between 0 and 1 "
                         f"(e.g. {values[outside][0]:g})")
    return values


def _id_column(frame: pd.DataFrame, column: str, label: str, may_be_empty: np.ndarray | None = None) -> pd.Series:
    """The column as ids; empty ones are an error except on rows `may_be_empty`, where they become ""."""
    values = frame[column].astype(object)
    array = values.to_numpy()
    # Only truly empty ids are missing: "NA" or "none" may well be someone's name.
    missing = pd.isna(array) | np.array([isinstance(v, str) and not v.strip() for v in array], dtype=bool)
    wrong = missing if may_be_empty is None else missing & ~may_be_empty
    if wrong.any():
        raise InputError(f"{_where(frame, wrong, label)}: {column} is empty")
    if missing.any():
        values = values.where(~missing, NO_ANNOTATOR)
    return values


def _flag_column(frame: pd.DataFrame, column: str, label: str) -> pd.Series:
    """True / False / None (missing) per row, from booleans, 0 / 1 or text such as true, no; InputError otherwise."""
    out: list[bool | None] = []
    for i, value in enumerate(frame[column].to_numpy(dtype=object)):
        if isinstance(value, bool | np.bool_):
            out.append(bool(value))
            continue
        if _is_missing(value):
            out.append(None)
            continue
        if isinstance(value, int | float | np.integer | np.floating) and value in (0, 1):
            out.append(bool(value))
            continue
        text = str(value).strip().lower()
        if text not in TRUE_TEXTS | FALSE_TEXTS:
            where = _where(frame, np.arange(len(frame)) == i, label)
            raise InputError(f"{where}: {column} must be true or false (got {value!r})")
        out.append(text in TRUE_TEXTS)
    return pd.Series(out, index=frame.index, dtype=object)


def _json_column(frame: pd.DataFrame, column: str, label: str, kind: type) -> pd.Series:
    """Lists (spans) or dicts (fields) per row; JSON text from a file is decoded; missing becomes None."""
    wanted, abstract, name = (dict, Mapping, "object") if kind is dict else (list, Sequence, "list")
    out: list[Any] = []
    for i, value in enumerate(frame[column].to_numpy(dtype=object)):
        if type(value) is wanted:  # the common case, first: rows from core.studies
            out.append(value)
            continue
        if isinstance(value, str) and not _is_missing(value):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                where = _where(frame, np.arange(len(frame)) == i, label)
                raise InputError(f"{where}: {column} is not valid JSON ({exc.msg})") from exc
        elif not isinstance(value, list | dict) and _is_missing(value):
            out.append(None)
            continue
        if isinstance(value, abstract) and not isinstance(value, str):
            out.append(value)
            continue
        where = _where(frame, np.arange(len(frame)) == i, label)
        raise InputError(f"{where}: {column} must be a JSON {name}")
    return pd.Series(out, index=frame.index, dtype=object)


def _normalise(frame: pd.DataFrame, *, row_label: str = "row") -> pd.DataFrame:
    """Canonical, validated columns (scores as floats with NaN = missing); InputError on anything unusable."""
    frame = frame.copy()
    if "source_row" not in frame.columns:
        frame["source_row"] = np.arange(1, len(frame) + 1)
    if len(frame) == 0:
        frame = pd.DataFrame({c: pd.Series(dtype=object) for c in (*REQUIRED_COLUMNS, "source_row")})
    frame = frame.rename(columns={alias: canonical for alias, canonical in EXPORT_ALIASES.items()
                                  if alias in frame.columns and canonical not in frame.columns})
    if REMOVED_COLUMN in frame.columns:  # an app export keeps the labels of removed items; reports leave them out
        frame = frame[[flag is not True for flag in _flag_column(frame, REMOVED_COLUMN, row_label)]]
    absent = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if absent:
        raise InputError(f"missing column(s): {', '.join(absent)} (need {', '.join(REQUIRED_COLUMNS)})")

    out = pd.DataFrame(index=frame.index)
    out["item_id"] = _id_column(frame, "item_id", row_label)
    for column in SCORE_COLUMNS:
        out[column] = _score_column(frame, column, row_label) if column in frame.columns else np.nan
    if ADJUDICATED in frame.columns:
        out[ADJUDICATED] = _score_column(frame, ADJUDICATED, row_label)
    out[MODEL_CONFIDENCE] = (_probability_column(frame, MODEL_CONFIDENCE, row_label)
                             if MODEL_CONFIDENCE in frame.columns else np.nan)
    # A row with neither annotator nor score stands for an item nobody has labelled yet (so it is counted).
    no_score = np.isnan(out["human_score"].to_numpy(dtype=float)) & np.isnan(out[BEFORE].to_numpy(dtype=float))
    out["annotator"] = _id_column(frame, "annotator", row_label, may_be_empty=no_score)
    out["blind"] = _flag_column(frame, "blind", row_label) if "blind" in frame.columns else None
    out["external_id"] = frame["external_id"].astype(object) if "external_id" in frame.columns else None
    out[DRAWN] = _flag_column(frame, DRAWN, row_label) if DRAWN in frame.columns else None

    status: list[str | None] = []
    cache: dict[Any, str | None] = {}  # a handful of distinct values, repeated on every row
    for i, value in enumerate(frame["model_status"] if "model_status" in frame.columns else [None] * len(frame)):
        key = value if isinstance(value, str) or value is None else repr(value)
        if key not in cache:
            text = None if _is_missing(value) else str(value).strip().lower()
            if text is not None and text not in STATUSES:
                where = _where(frame, np.arange(len(frame)) == i, row_label)
                raise InputError(f"{where}: model_status must be one of {', '.join(STATUSES)} or empty (got {value!r})")
            cache[key] = text
        status.append(cache[key])
    out["model_status"] = pd.Series(status, index=frame.index, dtype=object)
    for column in SPAN_COLUMNS:
        out[column] = _json_column(frame, column, row_label, list) if column in frame.columns else None
    out["fields"] = _json_column(frame, "fields", row_label, dict) if "fields" in frame.columns else None
    out["source_row"] = frame["source_row"].to_numpy()
    out = out.reset_index(drop=True)
    out.attrs["row_label"] = row_label
    _check_consistency(out, row_label)
    return out


def _codes(values: pd.Series, column: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        codes, uniques = pd.factorize(values, sort=False)
    except TypeError as exc:
        raise InputError(f"{column} values must be text or numbers") from exc
    return codes, np.asarray(uniques, dtype=object)


def _check_consistency(rows: pd.DataFrame, label: str) -> None:
    """One model score and status per item, one rating per (item, annotator)."""
    if len(rows) == 0:
        return
    items, item_ids = _codes(rows["item_id"], "item_id")
    people, _ = _codes(rows["annotator"], "annotator")
    pair = items.astype(np.int64) * (people.max() + 1) + people
    _, first, counts = np.unique(pair, return_index=True, return_counts=True)
    if (counts > 1).any():
        dup = first[counts > 1][0]
        mask = pair == pair[dup]
        raise InputError(
            f"{_where(rows, mask, label)}: annotator {rows['annotator'][dup]!r} rated item "
            f"{rows['item_id'][dup]!r} more than once"
        )
    model = rows["model_score"].to_numpy()
    present = ~np.isnan(model)
    item = _first_conflict(items, model, present, len(item_ids))
    if item is not None:
        mask = (items == item) & present
        found = sorted({int(v) for v in model[mask]})
        raise InputError(
            f"item {item_ids[item]!r} has conflicting model scores {found} ({_where(rows, mask, label)}): "
            "the model's score must be the same on every row of an item"
        )
    confidence = rows[MODEL_CONFIDENCE].to_numpy()
    present = ~np.isnan(confidence)
    item = _first_conflict(items, confidence, present, len(item_ids))
    if item is not None:
        mask = (items == item) & present
        given = sorted({float(v) for v in confidence[mask]})
        raise InputError(
            f"item {item_ids[item]!r} has conflicting {MODEL_CONFIDENCE} values {given} ({_where(rows, mask, label)}): "
            "the judge's confidence must be the same on every row of an item"
        )
    status = rows["model_status"].to_numpy(dtype=object)
    status_code = np.array([-1 if s is None else STATUSES.index(s) for s in status], dtype=float)
    present = status_code >= 0
    item = _first_conflict(items, status_code, present, len(item_ids))
    if item is not None:
        mask = (items == item) & present
        statuses = sorted({str(s) for s in status[mask]})
        where = _where(rows, mask, label)
        raise InputError(f"item {item_ids[item]!r} has conflicting model_status values {statuses} ({where})")


def _first_conflict(items: np.ndarray, values: np.ndarray, present: np.ndarray, n_items: int) -> int | None:
    """The first item (by code) whose present values are not all equal, or None."""
    low = np.full(n_items, np.inf)
    high = np.full(n_items, -np.inf)
    np.minimum.at(low, items[present], values[present])
    np.maximum.at(high, items[present], values[present])
    conflict = np.flatnonzero(low < high)
    return int(conflict[0]) if conflict.size else None


def _frame(rows: Iterable[Mapping[str, Any]] | Any) -> pd.DataFrame:
    if isinstance(rows, pd.DataFrame):
        return _normalise(rows, row_label=rows.attrs.get("row_label", "row"))
    records = [dict(row) for row in rows]
    return _normalise(pd.DataFrame.from_records(records) if records else pd.DataFrame())
