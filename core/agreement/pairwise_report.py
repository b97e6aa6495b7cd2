"""The agreement report of a pairwise study: people choosing A / B / tie, a judge that compared both orders.

Pure (no database): `pairwise_report(choices, verdicts, slots, allow_tie=...)` returns a JSON-ready dict.

Inputs. `choices`: one mapping per human label with `item_id`, `annotator`, `choice` ("A", "B" or "tie", in the
item's terms) and `shown_order` ("AB": response A was shown in slot 1, "BA", or None when not recorded).
`verdicts`: item id -> the judge's verdict from its two orders (core.studies.pairs.verdict_of): "A", "B",
"inconsistent", "undecided", or None when the item was not graded; `slots`: item id -> the slot (1 or 2) the
judge picked in both orders when inconsistent.

What counts as what (MT-Bench's convention, Zheng et al. 2023, "Judging LLM-as-a-judge"): a verdict that flips
with the order of the responses is no preference at all.
- Where the study allows ties, an "inconsistent" verdict counts as "tie" when compared with people: it matches a
  human majority for "tie" and misses a majority for A or B.
- Where it does not, an "inconsistent" verdict never matches a human majority (it is a miss), and the accuracy on
  the judge's consistent items only is reported beside it (`accuracy_consistent`), so a reader sees both the
  cost of the judge's position sensitivity and how good its consistent verdicts are.
- "undecided" verdicts (an order's answer had no readable score) and ungraded items are left out of every
  judge statistic and counted (`judge.undecided`, `judge.ungraded`).
- The human majority of an item is a choice made by strictly more than half of its annotators; items with
  none (e.g. two annotators who disagree) are left out of accuracy and of judge-vs-majority kappa, and counted
  (`n_items_no_majority`). A human "tie" is a category like A and B.

Statistics.
- Accuracy (share of majority items where the judge's verdict equals the majority) and judge-vs-majority Cohen's
  kappa (unweighted: the categories are nominal) on the items with a majority and a usable verdict.
- Among people: Cohen's kappa when no item has more than 2 annotators (per annotator pair on their shared
  items, then the mean over pairs, as core.agreement.metrics does for the numeric report), Fleiss' kappa when
  some item has 3 or more (on the items with the most common count of 3 or more annotators; Fleiss' kappa needs
  one count per item).
- Position consistency: the share of graded items (verdict A, B or inconsistent) whose two orders agree.
  Position bias: of the inconsistent items, the share where the judge picked slot 1 both times (0.5: no bias).
  The humans' own slot-1 rate (of their non-tie choices with a recorded order) is the check beside it: with
  randomised sides, people with no position bias are near 0.5 too.
- Shares carry 95% percentile-bootstrap intervals over items (over labels for the humans' slot-1 rate): a
  resample's share is drawn from its binomial distribution, which is exactly the resampled mean of 0/1 values
  (the same shortcut as core.agreement.bootstrap's multinomial over cells); seeded. Judge-vs-majority kappa
  has one too (its contingency table drawn from the multinomial over cells); kappa among people has none, as in
  the numeric report.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from itertools import combinations
from typing import Any

import numpy as np
from sklearn.metrics import cohen_kappa_score

from core.agreement.bootstrap import CONFIDENCE, _add_ci
from core.agreement.metrics import _defined, _undefined
from core.errors import InputError

A, B, TIE = "A", "B", "tie"
INCONSISTENT, UNDECIDED = "inconsistent", "undecided"
HUMAN_CHOICES: tuple[str, ...] = (A, B, TIE)
VERDICTS: tuple[str, ...] = (A, B, INCONSISTENT, UNDECIDED)
ORDERS: tuple[str, ...] = ("AB", "BA")
BOOTSTRAP_NOTE = (
    "Each resample draws n items (labels, for the humans' slot-1 rate) with replacement; a share depends on a "
    "resample only through how many of its n values are true, so that count is drawn from its binomial "
    "distribution, which is exactly its distribution under resampling."
)
TIES_RULE = (
    "MT-Bench's convention (Zheng et al. 2023): a verdict that flips with the order of the responses counts as a "
    "tie when compared with people where the study allows ties; where it does not, it never matches the human "
    "majority (a miss), and accuracy on consistent verdicts only is given beside it. Undecided verdicts (an "
    "order without a readable score) and items without a strict human majority are left out and counted."
)


def _check(choices: Iterable[Mapping[str, Any]]) -> list[tuple[Any, str, str, str | None]]:
    """(item id, annotator, choice, shown order) per label; InputError for a value the report cannot read."""
    checked = []
    for number, row in enumerate(choices, start=1):
        choice, order = row.get("choice"), row.get("shown_order")
        if choice not in HUMAN_CHOICES:
            raise InputError(f"label {number}: a pairwise choice is 'A', 'B' or 'tie', not {choice!r}")
        if order is not None and order not in ORDERS:
            raise InputError(f"label {number}: shown_order is 'AB' or 'BA', not {order!r}")
        if row.get("annotator") is None or row.get("item_id") is None:
            raise InputError(f"label {number}: item_id and annotator are needed")
        checked.append((row["item_id"], str(row["annotator"]), str(choice), order))
    return checked


def share(successes: np.ndarray, *, n_resamples: int, seed: int) -> dict[str, Any]:
    """The share of true values with a percentile-bootstrap interval (binomial resamples, seeded)."""
    values = np.asarray(successes, dtype=bool)
    n = int(values.size)
    if n == 0:
        return _undefined("no items", n=0)
    metric = _defined(values.mean(), n=n, k=int(values.sum()))
    resampled = (np.random.default_rng(seed).binomial(n, values.mean(), size=n_resamples) / n
                 if n_resamples else None)
    _add_ci(metric, resampled, n_resamples)
    return metric


def cohen_kappa(a: list[str], b: list[str]) -> dict[str, Any]:
    """Unweighted Cohen's kappa (sklearn) of two raters' nominal labels; undefined with a reason."""
    n = len(a)
    if n < 2:
        return _undefined(f"fewer than 2 items (n={n})", n=n)
    used = set(a) | set(b)
    if len(used) == 1:
        return _undefined(f"every label is {next(iter(used))!r}, so kappa is 0/0", n=n)
    return _defined(cohen_kappa_score(a, b, labels=sorted(used)), n=n)


def kappa_ci(metric: dict[str, Any], a: list[str], b: list[str], *, n_resamples: int, seed: int) -> dict[str, Any]:
    """`metric` (Cohen's kappa of a and b) with a percentile-bootstrap interval over items: each resample's (a, b)
    contingency table is drawn from the multinomial over the observed cells (as core.agreement.bootstrap)."""
    if metric.get("value") is None:
        return metric
    labels = sorted(set(a) | set(b))
    index = {label: k for k, label in enumerate(labels)}
    counts = np.zeros((len(labels), len(labels)))
    for x, y in zip(a, b, strict=True):
        counts[index[x], index[y]] += 1
    n = len(a)
    resampled = None
    if n_resamples:
        draws = np.random.default_rng(seed).multinomial(n, counts.ravel() / n, size=n_resamples)
        tables = draws.reshape(n_resamples, len(labels), len(labels)) / n
        observed = np.trace(tables, axis1=1, axis2=2)
        expected = np.einsum("bi,bi->b", tables.sum(axis=2), tables.sum(axis=1))
        with np.errstate(divide="ignore", invalid="ignore"):
            resampled = np.where(expected < 1, (observed - expected) / (1 - expected), np.nan)
    _add_ci(metric, resampled, n_resamples)
    return metric


def fleiss_kappa(counts: np.ndarray) -> dict[str, Any]:
    """Fleiss' kappa of an (items x categories) table of counts, every item rated by the same number of raters."""
    table = np.asarray(counts, dtype=float)
    n_items = int(table.shape[0]) if table.ndim == 2 else 0
    if n_items < 1:
        return _undefined("no item was rated by 3 or more annotators", n=0)
    raters = table.sum(axis=1)
    if np.any(raters != raters[0]) or raters[0] < 2:
        raise InputError("Fleiss' kappa needs the same number (2 or more) of ratings on every item")
    m = raters[0]
    p_j = table.sum(axis=0) / (n_items * m)
    p_i = (np.sum(table * table, axis=1) - m) / (m * (m - 1))
    p_bar, p_e = p_i.mean(), np.sum(p_j * p_j)
    if p_e >= 1:
        return _undefined("every rating is the same category, so kappa is 0/0", n=n_items)
    return _defined((p_bar - p_e) / (1 - p_e), n=n_items, raters_per_item=int(m), observed=float(p_bar),
                    expected=float(p_e))


def _humans(labels: list[tuple[Any, str, str, str | None]]) -> dict[str, Any]:
    """Agreement among the annotators: Cohen's kappa per pair (<= 2 per item) or Fleiss' (3 or more)."""
    by_item: dict[Any, dict[str, str]] = defaultdict(dict)
    for item, person, choice, _ in labels:
        by_item[item][person] = choice
    people = sorted({person for _, person, _, _ in labels})
    per_item = Counter(len(found) for found in by_item.values())
    block: dict[str, Any] = {"n_annotators": len(people),
                             "n_items_multiply_rated": sum(n for k, n in per_item.items() if k >= 2),
                             "annotators_per_item": {str(k): n for k, n in sorted(per_item.items())}}
    if max(per_item, default=0) >= 3:
        wanted = max((k for k in per_item if k >= 3), key=lambda k: (per_item[k], k))
        rows = [[list(found.values()).count(c) for c in HUMAN_CHOICES]
                for found in by_item.values() if len(found) == wanted]
        block["statistic"] = "fleiss_kappa"
        block["fleiss_kappa"] = fleiss_kappa(np.array(rows))
        left = sum(n for k, n in per_item.items() if k >= 2 and k != wanted)
        block["items_left_out"] = left
        return block
    pairs: list[dict[str, Any]] = []
    for first, second in combinations(people, 2):
        shared = [item for item, found in by_item.items() if first in found and second in found]
        if not shared:
            continue
        kappa = cohen_kappa([by_item[i][first] for i in shared], [by_item[i][second] for i in shared])
        pairs.append({"annotators": [first, second], "n_items": len(shared), "cohen_kappa": kappa})
    kappas = [pair["cohen_kappa"]["value"] for pair in pairs if pair["cohen_kappa"]["value"] is not None]
    block["statistic"] = "cohen_kappa"
    block["pairs"] = pairs
    block["mean_pairwise_cohen_kappa"] = (
        _defined(np.mean(kappas), n_pairs=len(kappas), n_pairs_undefined=len(pairs) - len(kappas)) if kappas
        else _undefined("fewer than 2 annotators" if len(people) < 2 else "no annotator pair has a defined kappa "
                        "(2 or more shared items with more than one choice)", n_pairs=0))
    return block


def _majority(found: Mapping[str, str]) -> str | None:
    """The choice made by strictly more than half of the item's annotators, else None."""
    if not found:
        return None
    choice, count = Counter(found.values()).most_common(1)[0]
    return choice if count * 2 > len(found) else None


def pairwise_report(choices: Iterable[Mapping[str, Any]], verdicts: Mapping[Any, str | None],
                    slots: Mapping[Any, int | None] | None = None, *, allow_tie: bool, n_resamples: int = 1000,
                    seed: int = 0) -> dict[str, Any]:
    """The pairwise agreement report (see the module docstring) as a JSON-ready dict; InputError on bad input."""
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 0:
        raise InputError(f"n_resamples must be a whole number >= 0, got {n_resamples!r}")
    labels = _check(choices)
    for item, verdict in verdicts.items():
        if verdict is not None and verdict not in VERDICTS:
            raise InputError(f"item {item!r}: a verdict is one of {', '.join(VERDICTS)}, not {verdict!r}")
    slots = slots or {}
    by_item: dict[Any, dict[str, str]] = defaultdict(dict)
    for item, person, choice, _ in labels:
        by_item[item][person] = choice
    items = list(dict.fromkeys([*verdicts, *by_item]))
    counts = Counter(verdicts.get(item) for item in items)
    graded = [item for item in items if verdicts.get(item) in (A, B, INCONSISTENT)]
    inconsistent = [item for item in graded if verdicts[item] == INCONSISTENT]
    judge = {"n_graded": len(graded), A: counts[A], B: counts[B], INCONSISTENT: counts[INCONSISTENT],
             UNDECIDED: counts[UNDECIDED], "ungraded": counts[None]}

    majority = {item: _majority(found) for item, found in by_item.items()}
    with_majority = [item for item in items if majority.get(item) is not None]
    compared = [item for item in with_majority if verdicts.get(item) in (A, B, INCONSISTENT)]

    def as_compared(verdict: str) -> str:  # MT-Bench: an inconsistent verdict is a tie, where ties exist
        return TIE if verdict == INCONSISTENT and allow_tie else verdict

    hits = np.array([as_compared(str(verdicts[item])) == majority[item] for item in compared], dtype=bool)
    consistent = [i for i, item in enumerate(compared) if verdicts[item] != INCONSISTENT]
    accuracy = share(hits, n_resamples=n_resamples, seed=seed)
    accuracy_consistent = share(hits[consistent], n_resamples=n_resamples, seed=seed + 1)
    judged = [as_compared(str(verdicts[item])) for item in compared]
    majorities = [str(majority[item]) for item in compared]
    kappa = kappa_ci(cohen_kappa(judged, majorities), judged, majorities, n_resamples=n_resamples, seed=seed + 5)

    shown: list[tuple[str, str]] = [(choice, order) for _, _, choice, order in labels
                                    if order is not None and choice != TIE]
    human_slot_1 = np.array([order.index(choice) == 0 for choice, order in shown], dtype=bool)
    picked = [slots.get(item) for item in inconsistent]
    bias = share(np.array([slot == 1 for slot in picked if slot is not None], dtype=bool), n_resamples=n_resamples,
                 seed=seed + 3)
    if not inconsistent:
        bias = _undefined("no inconsistent verdict: the judge never picked a slot in both orders", n=0)
    return {
        "mode": "pairwise",
        "allow_tie": bool(allow_tie),
        "ties_rule": TIES_RULE,
        "n_items": len(items),
        "n_items_labelled": len(by_item),
        "n_labels": len(labels),
        "n_annotators": len({person for _, person, _, _ in labels}),
        "n_items_majority": len(with_majority),
        "n_items_no_majority": len(by_item) - len(with_majority),
        "n_items_compared": len(compared),
        "judge": judge,
        "human_choices": {choice: sum(1 for _, _, c, _ in labels if c == choice) for choice in HUMAN_CHOICES},
        "accuracy": accuracy,
        "accuracy_consistent": accuracy_consistent,
        "judge_vs_majority_kappa": kappa,
        "human_human": _humans(labels),
        "position_consistency": share(np.array([verdicts[item] != INCONSISTENT for item in graded], dtype=bool),
                                      n_resamples=n_resamples, seed=seed + 2),
        "position_bias": bias,
        "human_slot_1_rate": share(human_slot_1, n_resamples=n_resamples, seed=seed + 4),
        "confusion": _confusion(compared, verdicts, majority, as_compared),
        "bootstrap": {"n_resamples": n_resamples, "seed": seed, "confidence": CONFIDENCE, "method": "percentile",
                      "note": BOOTSTRAP_NOTE},
    }


def _confusion(compared: list[Any], verdicts: Mapping[Any, str | None], majority: Mapping[Any, str | None],
               as_compared: Any) -> dict[str, Any]:
    """Human majority (rows) x the judge's verdict as compared (columns), counts."""
    rows = list(HUMAN_CHOICES)
    columns = [A, B, TIE, INCONSISTENT]
    table = Counter((majority[item], as_compared(str(verdicts[item]))) for item in compared)
    return {"rows": rows, "columns": columns, "counts": [[table[(r, c)] for c in columns] for r in rows]}
