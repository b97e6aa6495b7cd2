"""The report's `sampling` block and the drawn-at-random mask (core.agreement.sampling), on hand-worked rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.agreement import agreement_report, load_ratings
from core.agreement.inputs import DRAWN, _codes, _frame
from core.agreement.sampling import BIAS_NOTE, RANDOM_NOTE, UNRECORDED_NOTE, random_items, random_rows
from core.cli import main
from core.errors import InputError


def row(item: str, annotator: str | None, human: int | None, model: int | None, drawn: bool | None) -> dict[str, Any]:
    return {"item_id": item, "annotator": annotator, "human_score": human, "model_score": model, DRAWN: drawn}


# a: random, two labels, graded; b: least-confident first, one label, graded; c: unknown (= random), one label, not
# graded; d: least-confident first, handed out but not labelled yet, graded.
ROWS = [row("a", "ann", 1, 1, True), row("a", "bob", 0, 1, True), row("b", "ann", 0, 1, False),
        row("c", "bob", 1, None, None), row("d", None, None, 0, False)]


def test_the_block_counts_and_lists_each_kind_of_item() -> None:
    sampling = agreement_report(ROWS, n_resamples=0)["sampling"]
    assert sampling["available"] and sampling["recorded"] and sampling["biased"]
    assert sampling["note"] == BIAS_NOTE
    assert sampling["random"] == {"n_items": 2, "n_labelled": 2, "n_graded": 1, "n_labelled_and_graded": 1,
                                  "item_ids": ["a", "c"]}
    assert sampling["uncertainty"] == {"n_items": 2, "n_labelled": 1, "n_graded": 2, "n_labelled_and_graded": 1,
                                       "item_ids": ["b", "d"]}


def test_the_mask_keeps_the_rows_of_items_drawn_at_random() -> None:
    data = _frame(ROWS)
    items, item_ids = _codes(data["item_id"], "item_id")
    drawn = data[DRAWN].to_numpy(dtype=object)
    assert random_rows(drawn, items, len(item_ids)).tolist() == [True, True, False, True, False]
    assert random_items(drawn, items, len(item_ids)).tolist() == [True, False, True, False]
    # An item that one row calls uncertainty-drawn is not counted as random on any of its rows.
    mixed = _frame([row("x", "ann", 1, 1, True), row("x", "bob", 1, 1, False), row("y", "ann", 1, 1, None)])
    codes, ids = _codes(mixed["item_id"], "item_id")
    assert random_rows(mixed[DRAWN].to_numpy(dtype=object), codes, len(ids)).tolist() == [False, False, True]
    assert random_rows(np.zeros(0, dtype=object), np.zeros(0, dtype=int), 0).tolist() == []


@pytest.mark.parametrize(("drawn", "note", "recorded"), [(None, UNRECORDED_NOTE, False), (True, RANDOM_NOTE, True)])
def test_without_uncertainty_labels_nothing_is_biased(drawn: bool | None, note: str, recorded: bool) -> None:
    rows = [{**r, DRAWN: drawn} for r in ROWS]
    sampling = agreement_report(rows, n_resamples=0)["sampling"]
    assert (sampling["biased"], sampling["note"], sampling["recorded"]) == (False, note, recorded)
    assert sampling["random"]["n_items"] == 4 and sampling["uncertainty"]["item_ids"] == []
    no_column = agreement_report([{k: v for k, v in r.items() if k != DRAWN} for r in ROWS], n_resamples=0)
    assert no_column["sampling"]["note"] == UNRECORDED_NOTE and no_column["sampling"]["random"]["n_items"] == 4
    # Only unlabelled items drawn least-confident first: the numbers are not biased by them.
    only_d = [{**r, DRAWN: r["item_id"] != "d"} for r in ROWS]
    assert agreement_report(only_d, n_resamples=0)["sampling"]["biased"] is False


def test_no_items_and_bad_values() -> None:
    assert agreement_report([], n_resamples=0)["sampling"] == {"available": False, "reason": "no items"}
    with pytest.raises(InputError, match="drawn_at_random must be true or false"):
        agreement_report([{**ROWS[0], DRAWN: "maybe"}], n_resamples=0)


def test_a_file_column_is_read(tmp_path: Path) -> None:
    path = tmp_path / "ratings.csv"
    path.write_text("item_id,annotator,human_score,model_score,drawn_at_random\n"
                    "1,ann,1,1,true\n2,ann,0,1,false\n3,ann,1,0,\n", encoding="utf-8")
    sampling = agreement_report(load_ratings(path), n_resamples=0)["sampling"]
    assert sampling["random"]["item_ids"] == ["1", "3"] and sampling["uncertainty"]["item_ids"] == ["2"]


def test_counts_add_up_on_random_inputs() -> None:
    rng = np.random.default_rng(7)
    for _ in range(30):
        n = int(rng.integers(1, 40))
        choice: list[bool | None] = [True, False, None]
        flags = [choice[int(k)] for k in rng.integers(0, 3, n)]
        model = rng.integers(0, 2, n)
        rows = [row(str(i), f"p{j}", int(rng.integers(0, 2)), int(model[i]), flags[i])
                for i in range(n) for j in range(int(rng.integers(1, 3)))]
        sampling = agreement_report(rows, n_resamples=0)["sampling"]
        assert sampling["random"]["n_items"] + sampling["uncertainty"]["n_items"] == n
        assert sorted(sampling["uncertainty"]["item_ids"], key=int) == [str(i) for i in range(n) if flags[i] is False]
        assert sampling["biased"] == (False in flags)
        data = _frame(rows)
        items, ids = _codes(data["item_id"], "item_id")
        mask = random_rows(data[DRAWN].to_numpy(dtype=object), items, len(ids))
        assert mask.tolist() == [flags[int(r["item_id"])] is not False for r in rows]


def test_the_cli_prints_the_queue_line_and_writes_the_block(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                            ) -> None:
    path = tmp_path / "ratings.csv"
    path.write_text("item_id,annotator,human_score,model_score,drawn_at_random\n"
                    "1,ann,1,1,true\n1,bob,1,1,true\n2,ann,0,1,false\n2,bob,1,1,false\n", encoding="utf-8")
    out = tmp_path / "report.json"
    assert main(["agreement", str(path), "--resamples", "0", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Queue: 1 labelled item(s) drawn at random, 1 least-confident first." in printed and BIAS_NOTE in printed
    assert json.loads(out.read_text(encoding="utf-8"))["sampling"]["uncertainty"]["item_ids"] == ["2"]


def test_the_alt_test_and_the_threshold_use_only_items_drawn_at_random() -> None:
    """Items drawn least-confident first are the hard ones: the alt-test and the auto-accept threshold leave them
    out (the headline keeps every item), while the threshold's coverage still counts every graded item."""
    rng = np.random.default_rng(7)
    rows: list[dict[str, Any]] = []
    for item in range(120):
        at_random = item < 80
        truth = int(rng.integers(1, 6))
        # The judge is right on the random items and wrong on the uncertainty ones (as least-confident items are).
        model = truth if at_random else (truth % 5) + 1
        for person in ("ann", "bob", "cy"):
            rows.append({"item_id": item, "annotator": person, "human_score": truth, "model_score": model,
                         "model_confidence": 0.95 if at_random else 0.55, DRAWN: at_random})
    report = agreement_report(rows, scale=(1, 5), n_resamples=0)
    everything = agreement_report([{k: v for k, v in r.items() if k != DRAWN} for r in rows], scale=(1, 5),
                                  n_resamples=0)
    assert report["n_items"] == everything["n_items"] == 120  # the headline: every item
    assert report["exact"]["value"] == everything["exact"]["value"] == pytest.approx(80 / 120)
    assert [r["n_items"] for r in report["alt_test"]["annotators"]] == [80, 80, 80]
    assert [r["n_items"] for r in everything["alt_test"]["annotators"]] == [120, 120, 120]
    assert report["alt_test"]["advantage_probability"] == 1.0 > everything["alt_test"]["advantage_probability"]
    calibration = report["calibration"]
    assert calibration["n_labelled"] == 80 and everything["calibration"]["n_labelled"] == 120
    threshold = calibration["threshold"]
    assert threshold["found"] and threshold["value"] == 0.95 and threshold["n"] == 80 and threshold["agreed"] == 80
    assert threshold["coverage"] == pytest.approx(80 / 120)  # of every graded item, random or not
