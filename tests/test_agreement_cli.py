"""`python -m core agreement`: end to end through a subprocess, and the parser in-process."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.agreement_cli import parse_scale, summary
from core.cli import main

ROOT = Path(__file__).resolve().parent.parent

HEADER = "item_id,annotator,human_score,model_score,model_status\n"


def ratings_csv(path: Path) -> Path:
    lines = [HEADER]
    scores = [(1, 1, 2), (2, 2, 2), (3, 4, 3), (4, 4, 5), (5, 5, 5), (2, 3, 3), (1, 2, 1), (4, 3, 4)]
    for i, (a, b, model) in enumerate(scores):
        lines.append(f"q{i},ann,{a},{model},ok\n")
        lines.append(f"q{i},bob,{b},{model},ok\n")
    lines.append("q8,ann,,2,ok\n")  # a missing human score
    lines.append("q9,ann,3,,failed\n")  # the model's answer did not parse
    path.write_text("".join(lines), encoding="utf-8")
    return path


def run_cli(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "core", "agreement", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_end_to_end_writes_the_report(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    done = run_cli(ratings_csv(tmp_path / "ratings.csv"), "--out", out, "--scale", "1-5", "--resamples", "200")
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text(encoding="utf-8"))
    for key in ("n_items", "n_annotators", "pearson", "weighted_kappa", "krippendorff_alpha_ordinal", "excluded"):
        assert key in report
    assert report["n_items"] == 8 and report["n_annotators"] == 2
    assert report["scale"] == {"min": 1, "max": 5, "labels": [1, 2, 3, 4, 5], "source": "given"}
    assert report["bootstrap"]["n_resamples"] == 200
    assert report["excluded"]["parse_failed"] == 1 and report["excluded"]["missing_human_score"] == 1
    text = done.stdout
    assert "Items compared: 8 of 10" in text and "Annotators: 2" in text
    assert "Weighted kappa (quadratic)" in text and "95% CI [" in text
    assert "Krippendorff alpha (ordinal)" in text
    assert "missing human score: 1" in text and "parse failed: 1" in text
    assert f"Report written to {out}" in text
    assert done.stderr == ""


def run_main(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    """The same command in-process (the subprocess tests above cover the real entry point)."""
    try:
        code = main(["agreement", *map(str, args)])
    except SystemExit as exc:  # argparse usage errors
        code = int(exc.code)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_json_to_stdout_with_dash(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(capsys, ratings_csv(tmp_path / "ratings.csv"), "--out", "-", "--resamples", "0")
    assert code == 0, err
    report = json.loads(out)
    assert report["pearson"]["ci_low"] is None
    assert "Items compared" in err  # the summary moves out of the way of the JSON


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("item_id,annotator\n1,a\n", "missing column(s): human_score, model_score"),
        (HEADER + "1,a,high,3,ok\n", "row 1: human_score is not a number"),
        (HEADER + "1,a,2,3,ok\n1,b,2,4,ok\n", "item '1' has conflicting model scores [3, 4]"),
        (HEADER + "1,a,7,3,ok\n", "human_score 7 is outside the scale 1-5"),
    ],
)
def test_bad_input_exits_2_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content, encoding="utf-8")
    code, out, err = run_main(capsys, path, "--scale", "1-5")
    assert code == 2
    assert err.startswith("error: ") and message in err
    assert out == ""


def test_bad_file_exits_2_without_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("item_id,annotator,human_score,model_score\n1,a,high,3\n", encoding="utf-8")
    done = run_cli(path)
    assert done.returncode == 2
    assert "row 1: human_score is not a number" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_missing_file_and_bad_arguments_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(capsys, tmp_path / "absent.csv")
    assert code == 2 and "There is no file at" in err
    ratings = ratings_csv(tmp_path / "ratings.csv")
    for args in (("--scale", "5-1"), ("--scale", "one"), ("--resamples", "-4")):
        code, _, err = run_main(capsys, ratings, *args)
        assert code == 2, args
        assert "usage:" in err


def test_unwritable_output_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_path = tmp_path / "no" / "such" / "dir" / "r.json"
    code, _, err = run_main(capsys, ratings_csv(tmp_path / "ratings.csv"), "--out", out_path)
    assert code == 2 and "cannot write" in err


@pytest.mark.parametrize(
    ("text", "scale"), [("1-5", (1, 5)), ("0:3", (0, 3)), ("-2..2", (-2, 2)), (" 1 - 10 ", (1, 10))]
)
def test_parse_scale(text: str, scale: tuple[int, int]) -> None:
    assert parse_scale(text) == scale


@pytest.mark.parametrize("text", ["5", "3-3", "4-1", "a-b", "1.5-3"])
def test_parse_scale_rejects(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_scale(text)


def test_summary_shows_undefined_metrics_with_their_reason() -> None:
    from core.agreement import agreement_report

    rows = [{"item_id": 1, "annotator": "a", "human_score": 2, "model_score": 2}]
    text = summary(agreement_report(rows, n_resamples=0))
    assert "Pearson r" in text and "undefined (fewer than 2 items (n=1))" in text
    assert "Krippendorff alpha (interval)  undefined (fewer than 2 annotators)" in text
    assert "Excluded: none" in text


# The Agreement tab's annotation export (Studies.export_rows written by pandas), columns as the app writes them.
EXPORT_HEADER = (
    "study,study_id,item_id,external_id,CONTEXT,MODEL OUTPUT,annotation_id,annotator,score,"
    "score_before_reveal,score_after_reveal,blind,comment,seconds,spans,created_at,updated_at,judgment_id,model_score,"
    "model_status,model_reasoning,model_highlights,model_distribution,model_expected_score\n"
)


def export_csv(path: Path, blind: bool = True) -> Path:
    # Model 1 2 3 3. ann before the reveal 1 1 3 2, after 1 2 3 3 (two moved to the model); bob 2 2 3 3 throughout.
    lines = [EXPORT_HEADER]
    for n, (model, before, after, bob) in enumerate(zip([1, 2, 3, 3], [1, 1, 3, 2], [1, 2, 3, 3], [2, 2, 3, 3],
                                                        strict=True)):
        for who, (b, a) in (("ann", (before, after)), ("bob", (bob, bob))):
            lines.append(f'S,1,{n + 1},q-{n},ctx,out,{n},{who},{a},{b},{a if blind else ""},{blind},,1.5,[],'
                         f't,t,{n},{model},ok,why,[],,\n')
    path.write_text("".join(lines), encoding="utf-8")
    return path


def test_the_apps_export_is_accepted_as_it_is_with_the_blind_headline(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    done = run_cli(export_csv(tmp_path / "study-1-annotations.csv"), "--out", out, "--resamples", "0")
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["headline_score"]["score"] == "human_score_before_reveal"
    # Pairwise exact by hand: before, ann 1 1 3 2 vs bob 2 2 3 3 agree on one item of 4; after, on three.
    assert report["human_human"]["pairwise_exact"]["value"] == 0.25
    assert report["post_reveal"]["human_human"]["pairwise_exact"]["value"] == 0.75
    assert report["anchoring"]["revised"] == 2 and report["anchoring"]["towards_model"] == 2
    text = done.stdout
    assert "Scores: BEFORE the model's verdict was shown (blind study; so says the input's blind column)" in text
    assert "Human vs model (pooled) - before the reveal (headline):" in text
    assert "Anchoring: 2 of 8 revised after the reveal (2 towards the model, 0 away; 2 at the reveal, 0 by a" in text
    assert "Human vs model - after the reveal (second view, may be anchored):" in text
    assert text.index("before the reveal (headline)") < text.index("after the reveal (second view")

    forced = run_cli(tmp_path / "study-1-annotations.csv", "--no-blind", "--out", out, "--resamples", "0")
    assert forced.returncode == 0, forced.stderr
    assert json.loads(out.read_text(encoding="utf-8"))["headline_score"]["score"] == "human_score"


def test_a_non_blind_export_says_the_verdict_was_visible(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(capsys, export_csv(tmp_path / "open.csv", blind=False), "--resamples", "0")
    assert code == 0, err
    assert "Scores: given with the model's verdict visible (not a blind study)" in out
    assert "after the reveal" not in out and "Anchoring" not in out


def test_a_file_read_as_windows_1252_is_graded_with_a_note(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = ratings_csv(tmp_path / "ratings.csv")
    path.write_bytes(path.read_text(encoding="utf-8").replace("bob", "Jos\u00e9").encode("cp1252"))
    code, out, err = run_main(capsys, path)
    assert code == 0 and "note: ratings.csv is not UTF-8" in err and "read as Windows-1252" in err
    assert "Human vs model" in out
