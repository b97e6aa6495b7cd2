"""Agreement statistics: human vs model and human vs human, from long-format ratings.

CONTRACT — `agreement_report`'s signature, its input rows and the report's top-level keys are fixed
(the UI, the CLI and the export use them); new keywords and keys may be added.

Input rows (one per annotation; a pandas DataFrame or an iterable of mappings):
- required: `item_id`, `annotator`, `human_score` (int/float or None = missing; the current score),
  `model_score` (None = not graded or the model's answer failed to parse; repeated on every row of the item);
  `annotator` may be None only together with the scores: such a row stands for an item nobody has
  labelled yet (Studies.ratings adds one per such item), counted but never a rating;
- optional: `model_status` ("ok" | "repaired" | "failed" | None = not graded),
  `human_score_before_reveal`, `human_score_after_reveal` (blind studies), `blind` (true/false: were the
  labels given before the model's verdict was shown? one value for the whole input),
  `human_spans` (list of {"field", "start", "end"}), `model_spans` (list of {"field", "start", "end", ...}),
  `fields` (dict tag -> text, needed for token-level span agreement), `external_id` (the user's item id).
  The app's annotation export (Studies.export_rows) is read as it is: its `score`, `score_before_reveal`,
  `score_after_reveal` and `spans` columns stand for the names above when those are absent.

Which score the headline uses: in a blind study (the `blind` keyword; when None, the `blind` column; with
neither, rows that have after-reveal scores), the score given BEFORE the reveal, `human_score_before_reveal`,
for every score-based number (human vs model, human vs human, per annotator, confusion, distributions,
disagreements): the model's verdict cannot have pulled it. `post_reveal` holds the same numbers on
`human_score` (after the reveal, later edits included) and `anchoring` how the scores moved. Otherwise the
headline uses `human_score`, as for any non-blind data; `headline_score` says which and why.

Report (JSON-ready dict) top-level keys, at least: `n_items`, `n_annotators`, `pearson`, `spearman`,
`kendall`, `exact`, `within_1`, `weighted_kappa`, `krippendorff_alpha_ordinal`,
`krippendorff_alpha_interval` — each an object with `value` and, where defined, `ci_low`, `ci_high`,
`p_value`; `value` is None with a `reason` when undefined — and `excluded` (counts by reason).
Also: `n_items_total`, `n_ratings`, `scale`, `pooling`, `headline_score`, `bootstrap`, `per_annotator`,
`human_human`, `spans`, `anchoring`, `post_reveal`, `confusion`, `distributions`, `disagreements`.

Every point estimate comes from scipy / scikit-learn / krippendorff. Only the bootstrap uses our own
vectorised formulas (`table_statistics`), which the tests check against those libraries.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from itertools import combinations
from pathlib import Path
from typing import Any, Literal, NamedTuple

import krippendorff
import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import cohen_kappa_score

from core.errors import InputError
from core.tables import read_table

REQUIRED_COLUMNS = ("item_id", "annotator", "human_score", "model_score")
BEFORE, AFTER = "human_score_before_reveal", "human_score_after_reveal"
SCORE_COLUMNS = ("human_score", "model_score", BEFORE, AFTER)
NO_ANNOTATOR = ""  # the annotator of a row that only says an item exists (no label yet); never a real name
SPAN_COLUMNS = ("human_spans", "model_spans")
# The app's annotation export (Studies.export_rows) names these columns its own way; a file that lacks the
# canonical name is read with the export's, so an export is accepted as it is.
EXPORT_ALIASES = {"score": "human_score", "score_before_reveal": BEFORE, "score_after_reveal": AFTER,
                  "spans": "human_spans"}
TRUE_TEXTS, FALSE_TEXTS = frozenset({"true", "yes", "y", "1"}), frozenset({"false", "no", "n", "0"})
STATUSES = ("ok", "repaired", "failed")
# Cell texts read as "missing" in a file (case-insensitive, after stripping): empty, and what R/pandas write.
MISSING_MARKERS = frozenset({"", "na", "n/a", "nan", "null", "none"})

HEADLINE = ("pearson", "spearman", "kendall", "exact", "within_1", "weighted_kappa")
CONFIDENCE = 0.95

POOLING = (
    "Human vs model, pooled: one point per item that has a model score and at least one human score. "
    "The human side of an item is the MEAN of its annotators' scores for Pearson, Spearman and Kendall's tau-b; "
    "for exact agreement, agreement within ±1 and quadratic-weighted Cohen's kappa it is that mean rounded to "
    "the nearest scale value, halves rounded UP (a mean of 2.5 counts as 3). Kappa's quadratic weights use "
    "every integer value of the scale as a label, used or not. Per annotator: each annotator's own scores vs "
    "the model on the items they labelled. 95% confidence intervals: percentile bootstrap over items."
)
BOOTSTRAP_NOTE = (
    "Each resample draws n items with replacement. The statistics depend on a resample only through how many "
    "items fall in each (human mean, model score) cell, so these counts are drawn directly from the multinomial "
    "distribution over cells, which is exactly their distribution under item resampling."
)

_TOKEN = re.compile(r"\w+")


# --- input -------------------------------------------------------------------------------------


def load_ratings(path: str | Path) -> pd.DataFrame:
    """Read a ratings file into validated rows for `agreement_report`; InputError if unreadable.

    Files are read by core.tables.read_table, as batch grading and study imports read them (CSV with ',' or
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


def _score_column(frame: pd.DataFrame, column: str, label: str) -> np.ndarray:
    """The column as floats, NaN where missing; InputError naming the rows of text or fractional scores."""
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
    fractional = present & ~(np.isfinite(values) & (values == np.round(values)))
    if fractional.any():
        example = values[fractional][0]
        raise InputError(f"{_where(frame, fractional, label)}: {column} must be a whole number (e.g. {example:g})")
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
    absent = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if absent:
        raise InputError(f"missing column(s): {', '.join(absent)} (need {', '.join(REQUIRED_COLUMNS)})")

    out = pd.DataFrame(index=frame.index)
    out["item_id"] = _id_column(frame, "item_id", row_label)
    for column in SCORE_COLUMNS:
        out[column] = _score_column(frame, column, row_label) if column in frame.columns else np.nan
    # A row with neither annotator nor score stands for an item nobody has labelled yet (so it is counted).
    no_score = np.isnan(out["human_score"].to_numpy(dtype=float)) & np.isnan(out[BEFORE].to_numpy(dtype=float))
    out["annotator"] = _id_column(frame, "annotator", row_label, may_be_empty=no_score)
    out["blind"] = _flag_column(frame, "blind", row_label) if "blind" in frame.columns else None
    out["external_id"] = frame["external_id"].astype(object) if "external_id" in frame.columns else None

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


# --- metric objects ----------------------------------------------------------------------------


def _undefined(reason: str, **extra: Any) -> dict[str, Any]:
    return {"value": None, "reason": reason, **extra}


def _number(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _defined(value: Any, **extra: Any) -> dict[str, Any]:
    number = _number(value)
    if number is None:  # a guard: the checks before each computation should make this unreachable
        return _undefined("the computation did not give a finite number", **extra)
    return {"value": number, **extra}


def _constant_reason(values: np.ndarray, name: str) -> str | None:
    if values.size and np.all(values == values[0]):
        return f"{name} are all identical ({values[0]:g}), so the statistic is undefined"
    return None


def correlation_metrics(x: np.ndarray, y: np.ndarray, *, x_name: str, y_name: str) -> dict[str, dict[str, Any]]:
    """Pearson, Spearman and Kendall's tau-b (scipy) with p-values; undefined with a reason if n < 2 or constant."""
    n = int(len(x))
    reason = f"fewer than 2 items (n={n})" if n < 2 else _constant_reason(x, x_name) or _constant_reason(y, y_name)
    if reason:
        return {name: _undefined(reason, n=n) for name in ("pearson", "spearman", "kendall")}
    results = {
        "pearson": stats.pearsonr(x, y),
        "spearman": stats.spearmanr(x, y),
        "kendall": stats.kendalltau(x, y, variant="b"),
    }
    out = {}
    for name, result in results.items():
        metric = _defined(result.statistic, n=n, p_value=_number(result.pvalue))
        if metric.get("value") is not None and metric["p_value"] is None:
            metric["p_value_reason"] = "scipy gives no p-value for this sample size"
        out[name] = metric
    return out


def weighted_kappa(a: np.ndarray, b: np.ndarray, labels: Sequence[int]) -> dict[str, Any]:
    """Quadratic-weighted Cohen's kappa (sklearn) with `labels=` the whole scale; undefined with a reason."""
    n = int(len(a))
    if n < 2:
        return _undefined(f"fewer than 2 items (n={n})", n=n)
    used = np.union1d(a, b)
    if used.size == 1:
        # Both sides gave one and the same value: expected disagreement is 0, kappa is 0/0.
        return _undefined(f"every score is the same value ({used[0]:g}), so kappa is 0/0", n=n)
    value = cohen_kappa_score(a.astype(int), b.astype(int), labels=list(labels), weights="quadratic")
    return _defined(value, n=n)


def exact_metrics(a: np.ndarray, b: np.ndarray) -> dict[str, dict[str, Any]]:
    """Share of pairs that are equal, and within ±1 of each other."""
    n = int(len(a))
    if n == 0:
        return {name: _undefined("no items", n=0) for name in ("exact", "within_1")}
    diff = np.abs(a - b)
    return {"exact": _defined(np.mean(diff == 0), n=n), "within_1": _defined(np.mean(diff <= 1), n=n)}


# --- vectorised bootstrap ----------------------------------------------------------------------


def _weighted_pearson(counts: np.ndarray, x: np.ndarray, y: np.ndarray, n: float) -> np.ndarray:
    """Pearson's r per table; `x` is (Dx,) or (B, Dx) category values, `y` likewise; NaN if a side is constant."""
    rows, cols = counts.sum(axis=2), counts.sum(axis=1)
    x = np.broadcast_to(x, rows.shape)
    y = np.broadcast_to(y, cols.shape)
    dx = x - (np.sum(rows * x, axis=1) / n)[:, None]
    dy = y - (np.sum(cols * y, axis=1) / n)[:, None]
    cov = np.einsum("bi,bij,bj->b", dx, counts, dy)
    var = np.sum(rows * dx**2, axis=1) * np.sum(cols * dy**2, axis=1)
    constant = ((rows > 0).sum(axis=1) < 2) | ((cols > 0).sum(axis=1) < 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.clip(cov / np.sqrt(var), -1.0, 1.0)
    return np.where(constant, np.nan, r)


def _midranks(margin: np.ndarray) -> np.ndarray:
    """Average rank (1-based, ties share their mean rank) of each category, from its counts."""
    return np.cumsum(margin, axis=1) - (margin - 1) / 2


def _kendall_tau_b(counts: np.ndarray, n: float) -> np.ndarray:
    """Kendall's tau-b per contingency table (categories in increasing order on both axes)."""
    b, dx, dy = counts.shape
    # at_or_after[i, j] = sum of counts[i':, j':]; padded so that index i+1 / j+1 past the end reads 0.
    after = np.zeros((b, dx + 1, dy + 1))
    after[:, :dx, :dy] = counts[:, ::-1, ::-1].cumsum(axis=1).cumsum(axis=2)[:, ::-1, ::-1]
    concordant = np.sum(counts * after[:, 1:, 1:], axis=(1, 2))
    # below_left[i, j] = sum of counts[i':, :j+1]; shifted to read counts[i+1:, :j].
    below_left = np.zeros((b, dx + 1, dy + 1))
    below_left[:, :dx, 1:] = counts[:, ::-1, :].cumsum(axis=1)[:, ::-1, :].cumsum(axis=2)
    discordant = np.sum(counts * below_left[:, 1:, :dy], axis=(1, 2))
    pairs = n * (n - 1) / 2
    rows, cols = counts.sum(axis=2), counts.sum(axis=1)
    untied_x = pairs - np.sum(rows * (rows - 1) / 2, axis=1)
    untied_y = pairs - np.sum(cols * (cols - 1) / 2, axis=1)
    denominator = untied_x * untied_y
    with np.errstate(divide="ignore", invalid="ignore"):
        tau = (concordant - discordant) / np.sqrt(denominator)
    return np.where(denominator > 0, np.clip(tau, -1.0, 1.0), np.nan)


def table_statistics(
    counts: np.ndarray,
    x_values: np.ndarray,
    y_values: np.ndarray,
    x_labels: np.ndarray,
    y_labels: np.ndarray,
    n_labels: int,
) -> dict[str, np.ndarray]:
    """The headline statistics of each (B, Dx, Dy) table of item counts, vectorised; NaN where undefined.

    Axis 1 holds the distinct human means `x_values` (increasing), axis 2 the distinct model scores
    `y_values`; `x_labels` / `y_labels` are their scale positions (the rounded mean / the model score
    minus the scale minimum). Equal to scipy's pearsonr / spearmanr / kendalltau(variant="b") and to
    sklearn's cohen_kappa_score(weights="quadratic", labels=scale) on the expanded data (see tests).
    """
    counts = np.asarray(counts, dtype=float)
    n = float(counts[0].sum()) if len(counts) else 0.0
    rows, cols = counts.sum(axis=2), counts.sum(axis=1)
    label_diff = x_labels[:, None] - y_labels[None, :]
    positions = np.arange(n_labels)
    weights = (positions[:, None] - positions[None, :]) ** 2.0
    cell_weights = weights[np.ix_(x_labels, y_labels)]
    observed = np.sum(counts * cell_weights, axis=(1, 2))
    expected = np.einsum("bi,ij,bj->b", rows, cell_weights, cols) / n
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = np.where(expected > 0, 1.0 - observed / expected, np.nan)
    enough = n >= 2
    return {
        "pearson": _weighted_pearson(counts, x_values, y_values, n) if enough else np.full(len(counts), np.nan),
        "spearman": (
            _weighted_pearson(counts, _midranks(rows), _midranks(cols), n) if enough else np.full(len(counts), np.nan)
        ),
        "kendall": _kendall_tau_b(counts, n) if enough else np.full(len(counts), np.nan),
        "exact": np.sum(counts * (label_diff == 0), axis=(1, 2)) / n,
        "within_1": np.sum(counts * (np.abs(label_diff) <= 1), axis=(1, 2)) / n,
        "weighted_kappa": kappa if enough else np.full(len(counts), np.nan),
    }


def _pooled_table(mean: np.ndarray, rounded: np.ndarray, model: np.ndarray, low: int) -> dict[str, Any]:
    """The pooled items as cells: distinct human means × distinct model scores, with their counts."""
    x_values, x_index = np.unique(mean, return_inverse=True)
    y_values, y_index = np.unique(model, return_inverse=True)
    x_labels = np.empty(len(x_values), dtype=int)
    x_labels[x_index] = rounded - low  # one rounding per distinct mean (equal means round alike)
    cells = x_index * len(y_values) + y_index
    counts = np.bincount(cells, minlength=len(x_values) * len(y_values)).reshape(len(x_values), len(y_values))
    return {
        "x_values": x_values,
        "y_values": y_values,
        "x_labels": x_labels,
        "y_labels": (y_values - low).astype(int),
        "counts": counts,
    }


def bootstrap_statistics(table: Mapping[str, Any], n_labels: int, n_resamples: int, seed: int) -> dict[str, np.ndarray]:
    """Each headline statistic on `n_resamples` item resamples (see BOOTSTRAP_NOTE), seeded."""
    counts = table["counts"]
    n = int(counts.sum())
    probabilities = counts.ravel() / n
    rng = np.random.default_rng(seed)
    chunk = max(1, 4_000_000 // max(1, probabilities.size))  # bounds memory for very fine tables
    parts: list[dict[str, np.ndarray]] = []
    for start in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - start)
        draws = rng.multinomial(n, probabilities, size=size).reshape(size, *counts.shape)
        parts.append(
            table_statistics(
                draws, table["x_values"], table["y_values"], table["x_labels"], table["y_labels"], n_labels
            )
        )
    return {name: np.concatenate([p[name] for p in parts]) for name in HEADLINE}


def _add_ci(metric: dict[str, Any], resampled: np.ndarray | None, n_resamples: int) -> None:
    if metric["value"] is None:
        return
    if resampled is None:
        metric.update(ci_low=None, ci_high=None, ci_reason="bootstrap disabled (0 resamples)")
        return
    finite = resampled[np.isfinite(resampled)]
    if finite.size < 2:
        metric.update(ci_low=None, ci_high=None, ci_reason="the statistic is undefined on almost every resample")
        return
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    metric.update(ci_low=float(low), ci_high=float(high))
    if finite.size < n_resamples:
        metric["ci_note"] = (
            f"{n_resamples - finite.size} of {n_resamples} resamples gave an undefined value and were left out"
        )


# --- human vs human ----------------------------------------------------------------------------


def _alpha(
    value_counts: np.ndarray, labels: list[int], n_annotators: int, level: Literal["ordinal", "interval"]
) -> dict[str, Any]:
    pairable = value_counts[value_counts.sum(axis=1) >= 2]
    n = int(len(pairable))
    if n_annotators < 2:
        return _undefined("fewer than 2 annotators", n=n)
    if n == 0:
        return _undefined("no item was rated by 2 or more annotators", n=n)
    used = np.flatnonzero(pairable.sum(axis=0))
    if used.size < 2:
        return _undefined(
            f"every rating of a multiply-rated item is {labels[used[0]]}: expected disagreement is 0", n=n
        )
    value = krippendorff.alpha(value_counts=pairable, value_domain=labels, level_of_measurement=level)
    return _defined(value, n=n)


def _human_human(
    item: np.ndarray, person: np.ndarray, score: np.ndarray, names: np.ndarray, n_items: int, labels: list[int]
) -> dict[str, Any]:
    low = labels[0]
    value_counts = np.bincount(item * len(labels) + (score.astype(int) - low), minlength=n_items * len(labels))
    value_counts = value_counts.reshape(n_items, len(labels))
    n_annotators = int(len(np.unique(person)))
    block: dict[str, Any] = {
        "n_annotators": n_annotators,
        "n_items_multiply_rated": int(np.sum(value_counts.sum(axis=1) >= 2)),
        "krippendorff_alpha_ordinal": _alpha(value_counts, labels, n_annotators, "ordinal"),
        "krippendorff_alpha_interval": _alpha(value_counts, labels, n_annotators, "interval"),
    }
    # Pooled pairwise exact agreement: over every pair of ratings of the same item.
    per_item = value_counts.sum(axis=1)
    pairs_total = float(np.sum(per_item * (per_item - 1) / 2))
    pairs_equal = float(np.sum(value_counts * (value_counts - 1) / 2))
    block["pairwise_exact"] = (
        _defined(pairs_equal / pairs_total, n=int(pairs_total))
        if pairs_total
        else _undefined("no item was rated by 2 or more annotators", n=0)
    )

    order = np.lexsort((item, person))
    item, person, score = item[order], person[order], score[order]
    raters = np.unique(person)
    starts = np.searchsorted(person, raters)
    ends = np.searchsorted(person, raters, side="right")
    pairs, kappas = [], []
    too_few = 0
    for (a, b), (sa_, sb_) in zip(
        combinations(raters, 2), combinations(zip(starts, ends, strict=True), 2), strict=True
    ):
        _, ia, ib = np.intersect1d(item[slice(*sa_)], item[slice(*sb_)], assume_unique=True, return_indices=True)
        if len(ia) < 2:
            too_few += 1
            continue
        sa, sb = score[slice(*sa_)][ia], score[slice(*sb_)][ib]
        kappa = weighted_kappa(sa, sb, labels)
        if kappa["value"] is not None:
            kappas.append(kappa["value"])
        pairs.append(
            {
                "annotators": [_plain(names[a]), _plain(names[b])],
                "n_items": int(len(ia)),
                "weighted_kappa": kappa,
                "exact": _defined(np.mean(sa == sb), n=int(len(ia))),
            }
        )
    if kappas:
        block["mean_pairwise_weighted_kappa"] = _defined(
            np.mean(kappas), n_pairs=len(kappas), n_pairs_undefined=len(pairs) - len(kappas)
        )
    else:
        reason = (
            "fewer than 2 annotators"
            if n_annotators < 2
            else "no annotator pair shares 2 or more items"
            if not pairs
            else "kappa is undefined for every annotator pair"
        )
        block["mean_pairwise_weighted_kappa"] = _undefined(reason, n_pairs=0, n_pairs_undefined=len(pairs))
    block["pairs_with_fewer_than_2_shared_items"] = too_few
    block["pairs"] = pairs
    return block


# --- spans -------------------------------------------------------------------------------------


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


# --- anchoring ---------------------------------------------------------------------------------


def _anchoring(
    before: np.ndarray, after: np.ndarray, confirmed: np.ndarray, model: np.ndarray, labels: list[int]
) -> dict[str, Any]:
    """How the scores moved from before the reveal to now; `confirmed` is the score confirmed at the reveal."""
    n = int(len(before))
    if n == 0:
        return {"available": False, "reason": "no annotation of a graded item has a score from before the reveal"}
    moved = {
        "revised": after != before,
        "up": after > before,
        "down": after < before,
        "towards_model": np.abs(after - model) < np.abs(before - model),
        "away_from_model": np.abs(after - model) > np.abs(before - model),
    }
    block: dict[str, Any] = {"available": True, "n": n}
    for name, mask in moved.items():
        block[name] = int(mask.sum())
        block[f"{name}_rate"] = float(mask.mean())
    at_reveal = ~np.isnan(confirmed)
    block["confirmed_at_reveal"] = int(at_reveal.sum())
    block["changed_at_reveal"] = int(np.sum(at_reveal & (confirmed != before)))
    block["changed_by_later_edit"] = int(np.sum(after != np.where(at_reveal, confirmed, before)))
    for name, human in (("before", before), ("after", after)):
        block[name] = {
            "exact": exact_metrics(human, model)["exact"],
            "weighted_kappa": weighted_kappa(human, model, labels),
        }
    block["method"] = (
        "Per annotation of a graded item: the score given before the model's verdict was shown vs the score now "
        "(after the reveal, including any later edit), each compared with the model's score; rates are over n. "
        "A revision that keeps the same distance to the model counts as neither towards nor away. "
        "changed_at_reveal: changed when confirming after the reveal; changed_by_later_edit: changed afterwards."
    )
    return block


def _no_anchoring(blind: bool | None) -> dict[str, Any]:
    if blind is False:
        reason = (
            "not a blind study: the labels were given with the model's verdict visible, so there is no score "
            "from before the reveal"
        )
    else:
        reason = "the input does not say that the labels were given blind (no blind column, no after-reveal scores)"
    return {"available": False, "reason": reason}


# --- report ------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A JSON-ready scalar (numpy scalars become Python ones)."""
    return value.item() if isinstance(value, np.generic) else value


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
) -> dict[str, Any]:
    """Agreement between humans and the model, and among humans, as a JSON-ready dict; InputError on bad rows.

    In a blind study (`blind=True`, or when None: a `blind` column says so, or the rows have after-reveal
    scores) the headline uses each annotator's score from before the reveal; `post_reveal` holds the same
    statistics on the current scores (human_score). Otherwise the headline uses human_score.
    """
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 0:
        raise InputError(f"n_resamples must be a whole number >= 0, got {n_resamples!r}")
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
