"""`python -m core compare` as users run it: a real process, the real tiny model, a real SQLite file."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import pandas as pd

from tests.pair_fakes import CRITERIA, LYON, PARIS, QUESTION
from tests.test_grade_cli import run_cli


def compare_command(data: Path, out: Path, db: Path, model: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "core", "compare", str(data), "--out", str(out), "--db", f"sqlite:///{db}",
            "--model", str(model), "--quantization", "none", "--device", "cpu", "--max-new-tokens", "8", *extra]


def test_help_names_the_columns_and_the_verdicts() -> None:
    result = run_cli([sys.executable, "-m", "core", "compare", "--help"])
    assert result.returncode == 0
    for word in ("response_a", "response_b", "--preset", "--rubric", "--single-order", "inconsistent", "undecided"):
        assert word in result.stdout


def test_compares_every_row_and_stores_both_orders(tmp_path: Path, untrained_model_dir: Path) -> None:
    data = tmp_path / "pairs.jsonl"
    rows = [{"id": 1, "user_input": QUESTION, "response_a": PARIS, "response_b": LYON},
            {"id": 2, "user_input": QUESTION, "response_a": LYON, "response_b": ""},
            {"id": 3, "user_input": QUESTION, "response_a": LYON, "response_b": PARIS}]
    data.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    rubric = tmp_path / "rubric.json"
    rubric.write_text(json.dumps({"pass_criteria": CRITERIA, "rubric": "0: 1 is better.\n1: 2 is better."}))
    out, db = tmp_path / "out.csv", tmp_path / "db.sqlite"
    result = run_cli(compare_command(data, out, db, untrained_model_dir, "--rubric", str(rubric), "--batch-size", "2"))
    assert result.returncode == 3, result.stderr
    assert "1 row(s) could not be compared" in result.stderr
    table = pd.read_csv(out, dtype=object, keep_default_na=False)
    assert list(table["id"]) == ["1", "2", "3"]
    # An untrained model writes no readable score: undecided, with both orders' judgments stored all the same.
    assert list(table["verdict"]) == ["undecided", "", "undecided"]
    assert "Response B is empty" in table["error"][1]
    ids = [int(x) for x in [*table["judgment_id_ab"], *table["judgment_id_ba"]] if x]
    assert len(ids) == 4
    with sqlite3.connect(db) as connection:
        stored = connection.execute("SELECT count(*) FROM judgments").fetchone()[0]
    assert stored == 4


def test_a_missing_column_or_a_bad_rubric_is_a_usage_error(tmp_path: Path, untrained_model_dir: Path) -> None:
    data = tmp_path / "pairs.csv"
    data.write_text("first,second\nyes,no\n", encoding="utf-8")
    db = tmp_path / "db.sqlite"
    missing = run_cli(compare_command(data, tmp_path / "out.csv", db, untrained_model_dir))
    assert missing.returncode == 2
    assert "no column 'response_a' (response A) or 'response_b' (response B)" in missing.stderr
    assert "'first', 'second'" in missing.stderr and "Traceback" not in missing.stderr
    rubric = tmp_path / "rubric.yaml"
    rubric.write_text("pass_criteria: Which is better?\nrubric: |\n  1: worse\n  2: same\n  3: better\n")
    bad = run_cli(compare_command(data, tmp_path / "out.csv", db, untrained_model_dir, "--rubric", str(rubric),
                                  "--a", "first", "--b", "second"))
    assert bad.returncode == 2 and "must be a 0/1 scale" in bad.stderr and "Traceback" not in bad.stderr
    unknown = run_cli(compare_command(data, tmp_path / "out.csv", db, untrained_model_dir, "--preset", "nope",
                                      "--a", "first", "--b", "second"))
    assert unknown.returncode == 2 and "pair-helpfulness" in unknown.stderr
