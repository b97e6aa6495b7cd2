"""`adjudicated_report`: agreement with the reviewers' adjudicated labels as the reference.

The input is the same long format as `agreement_report`'s (core.agreement's CONTRACT) plus an
`adjudicated_score` column: the item's adjudicated label, repeated on every row of the item, empty where the
item was not adjudicated (Studies.ratings and the annotation export carry it). Only adjudicated items count.

Every comparison is one `agreement_report` run with the adjudicated score in the place of the model's, so the
statistics, their bootstrap CIs and their undefined-cases are exactly the report's:
- the judge vs adjudicated (the judge's score in the place of a human's; failed or missing scores left out),
- the annotators pooled vs adjudicated (each item's human mean, as the report pools humans vs the model),
- each annotator vs adjudicated, on the adjudicated items they labelled.
The human score that counts is the report's headline score: before the reveal in a blind study.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from core.agreement.bootstrap import BOOTSTRAP_NOTE, CONFIDENCE
from core.agreement.inputs import ADJUDICATED, BEFORE, NO_ANNOTATOR, _frame, _where
from core.agreement.metrics import HEADLINE
from core.agreement.report import HEADLINE_NOTES, _blindness, agreement_report
from core.errors import InputError

JUDGE, POOLED, ANNOTATOR = "judge", "annotators", "annotator"

NOTE = (
    "Reference: the reviewers' adjudicated labels (the newest per item). Only adjudicated items are compared. "
    "The judge: its score vs the adjudicated score per item. Annotators (pooled): each item's mean human score "
    "vs the adjudicated score, pooled as the report pools humans vs the model (exact agreement, within ±1 and "
    "weighted kappa on the mean rounded half up). Each annotator: their own scores on the adjudicated items they "
    "labelled. 95% confidence intervals: percentile bootstrap over items."
)


def _reference(data: pd.DataFrame, label: str) -> np.ndarray:
    """The adjudicated score per row (NaN: not adjudicated); InputError when an item has two different ones."""
    if ADJUDICATED not in data.columns:
        raise InputError(f"there is no {ADJUDICATED} column: export the study again after adjudicating some items "
                         "(the Review tab, or python -m core adjudicate)")
    per_item = pd.Series(data[ADJUDICATED].to_numpy(dtype=float)).groupby(data["item_id"].to_numpy(), sort=False)
    conflict = per_item.transform("nunique").to_numpy() > 1
    if conflict.any():
        raise InputError(f"{_where(data, conflict, label)}: the item has different {ADJUDICATED} values on its rows")
    # Rows of an adjudicated item that leave the column empty still belong to it.
    return per_item.transform("max").to_numpy(dtype=float)


def _scale(scale: tuple[int, int] | None, *columns: np.ndarray) -> tuple[int, int] | None:
    """The given scale, or the lowest and highest score in the data (None when that is a single value)."""
    if scale is not None:
        return scale
    present = np.concatenate([c[~np.isnan(c)] for c in columns]) if columns else np.zeros(0)
    if present.size == 0 or present.min() == present.max():
        return None
    return int(present.min()), int(present.max())


def _comparison(name: str, kind: str, rows: pd.DataFrame, scale: tuple[int, int] | None, n_resamples: int,
                seed: int) -> dict[str, Any]:
    """One comparison with the reference: agreement_report's headline metrics (with CIs) and its item count."""
    report = agreement_report(rows, scale, n_resamples=n_resamples, seed=seed, blind=False)
    out: dict[str, Any] = {"name": name, "kind": kind, "n_items": report["n_items"]}
    out.update({metric: report[metric] for metric in HEADLINE})
    return out


def adjudicated_report(
    rows: Iterable[Mapping[str, Any]] | Any,
    scale: tuple[int, int] | None = None,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    blind: bool | None = None,
) -> dict[str, Any]:
    """Judge vs adjudicated, annotators (pooled and each) vs adjudicated, as a JSON-ready dict; InputError on bad rows.

    Keys: `reference` ("adjudicated"), `n_items_total`, `n_items_adjudicated`, `scale`, `headline_score`,
    `comparisons` (a list: the judge, the annotators pooled, then each annotator by name; each with `name`,
    `kind`, `n_items` and the report's headline metrics pearson ... weighted_kappa), `bootstrap` and `note`.
    """
    data = _frame(rows)
    label = data.attrs.get("row_label", "row")
    reference = _reference(data, label)
    is_blind, decided_by = _blindness(data, blind)
    human = data[BEFORE].to_numpy() if is_blind else data["human_score"].to_numpy()
    model = data["model_score"].to_numpy()
    failed = data["model_status"].to_numpy(dtype=object) == "failed"
    judged = np.where(failed, np.nan, model)
    settled = ~np.isnan(reference)
    scale = _scale(scale, reference, judged, human)

    # The judge: one row per adjudicated item, the adjudicated score as the "human" side.
    first = settled & ~data["item_id"].duplicated().to_numpy()
    judge_rows = pd.DataFrame({"item_id": data["item_id"][first], "annotator": "adjudicated",
                               "human_score": reference[first], "model_score": model[first],
                               "model_status": data["model_status"][first]})
    comparisons = [_comparison("judge", JUDGE, judge_rows, scale, n_resamples, seed)]

    # The annotators: their rows on adjudicated items, the adjudicated score in the place of the model's.
    people = data["annotator"].to_numpy(dtype=object)
    rated = settled & (people != NO_ANNOTATOR) & ~np.isnan(human)
    human_rows = pd.DataFrame({"item_id": data["item_id"][rated], "annotator": data["annotator"][rated],
                               "human_score": human[rated], "model_score": reference[rated]})
    comparisons.append(_comparison("annotators (pooled)", POOLED, human_rows, scale, n_resamples, seed))
    for name in sorted({str(person) for person in people[rated]}):
        mine = human_rows[human_rows["annotator"].astype(str) == name]
        comparisons.append(_comparison(name, ANNOTATOR, mine, scale, n_resamples, seed))

    return {
        "reference": "adjudicated",
        "n_items_total": int(data["item_id"].nunique()),
        "n_items_adjudicated": int(data["item_id"][settled].nunique()),
        "scale": None if scale is None else {"min": scale[0], "max": scale[1],
                                             "labels": list(range(scale[0], scale[1] + 1))},
        "headline_score": {"score": BEFORE if is_blind else "human_score", "blind": is_blind,
                           "decided_by": decided_by, "note": HEADLINE_NOTES[is_blind]},
        "comparisons": comparisons,
        "bootstrap": {"method": "percentile", "resampled": "items", "confidence": CONFIDENCE,
                      "n_resamples": n_resamples, "seed": seed, "note": BOOTSTRAP_NOTE},
        "note": NOTE,
    }
