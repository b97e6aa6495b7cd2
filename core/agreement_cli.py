"""`python -m core agreement FILE`: agreement statistics for a CSV/JSONL ratings file, as a summary and JSON."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from core.agreement_labels import ascii_label
from core.errors import InputError

EXIT_OK, EXIT_BAD_INPUT = 0, 2

_SCALE = re.compile(
    r"""
    \A\s*
    (?P<low>[+-]?\d+)     # the lowest score
    \s*(?:-|:|\.\.)\s*    # a dash, colon or two dots between them ("1-5", "0:3", "-2..2")
    (?P<high>[+-]?\d+)    # the highest score
    \s*\Z
    """,
    re.VERBOSE,
)

REFERENCES = ("annotators", "adjudicated")
ALT_TEST_EPSILON = 0.2  # core.agreement.alt_test.EPSILON, written here so that --help needs no scipy (a test checks)
HEADLINE_LABELS = tuple((key, ascii_label(key))
                        for key in ("pearson", "spearman", "kendall", "exact", "within_1", "weighted_kappa"))
HUMAN_LABELS = tuple((key, ascii_label(key)) for key in ("krippendorff_alpha_ordinal", "krippendorff_alpha_interval",
                                                         "mean_pairwise_weighted_kappa", "pairwise_exact"))


def parse_scale(text: str) -> tuple[int, int]:
    """'1-5' -> (1, 5); argparse turns the error into a usage message and exit code 2."""
    match = _SCALE.match(text)
    if not match or int(match["low"]) >= int(match["high"]):
        raise argparse.ArgumentTypeError(f"expected MIN-MAX with MIN < MAX, e.g. 1-5 (got {text!r})")
    return int(match["low"]), int(match["high"])


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0 (got {text!r})")
    return value


def _epsilon(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < 1:  # NaN fails too
        raise argparse.ArgumentTypeError(f"expected a number at least 0 and below 1, e.g. 0.15 (got {text!r})")
    return value


def parse_target(text: str) -> float:
    """'0.9' -> 0.9: the target agreement as a share strictly between 0 and 1 (not a percentage)."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a share between 0 and 1, e.g. 0.9 for 90% (got {text!r})")
    return value


def register(subparsers: Any) -> None:
    """Add the `agreement` sub-command to the `python -m core` parser."""
    parser = subparsers.add_parser(
        "agreement",
        help="agreement between human and model scores in a ratings file",
        description=(
            "Human vs model and human vs human agreement for a CSV or JSONL file with columns item_id, "
            "annotator, human_score, model_score (optional: model_status, blind, human_score_before_reveal, "
            "human_score_after_reveal, human_spans, model_spans, fields, external_id, model_confidence: the "
            "probability the judge gave its own score, for calibration), or the app's annotation "
            "export as it is (score, score_before_reveal, ...). In a blind study the headline uses the scores "
            "given before the model's verdict was shown, and the scores after it are a second view. Prints a "
            "summary; --out writes the full report as JSON. --reference adjudicated compares the judge and each "
            "annotator with the reviewers' adjudicated labels instead (the export's adjudicated_score column)."
        ),
    )
    parser.add_argument("file", type=Path, help="ratings file (.csv, or .jsonl for JSON lines); with --as, a study's "
                        "number: its report from the app's database (a pairwise study's: core.pair_agreement_cli)")
    parser.add_argument("--out", metavar="PATH", help="write the JSON report here ('-' for stdout)")
    parser.add_argument(
        "--scale",
        type=parse_scale,
        metavar="MIN-MAX",
        help="the rubric's score scale, e.g. 1-5 (write --scale=-2..2 when MIN is negative)",
    )
    parser.add_argument("--resamples", type=_count, default=1000, metavar="N", help="bootstrap resamples (1000)")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="bootstrap seed (0)")
    parser.add_argument(
        "--blind",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=(
            "the labels were given before the model's verdict was shown: the headline uses "
            "human_score_before_reveal (default: as the file's blind column says, else blind when it has "
            "after-reveal scores); --no-blind uses human_score"
        ),
    )
    parser.add_argument(
        "--reference",
        choices=REFERENCES,
        default="annotators",
        help=(
            "annotators (default): humans vs the judge and among themselves; adjudicated: the judge and each "
            "annotator vs the adjudicated labels (the file's adjudicated_score column), on the adjudicated items"
        ),
    )
    parser.add_argument(
        "--epsilon",
        type=_epsilon,
        default=None,
        metavar="E",
        help=(
            f"the alt-test's cost-benefit margin, in [0, 1) (default {ALT_TEST_EPSILON}; the paper's rule of thumb: "
            "0.2 for expert annotators, 0.15 for skilled ones, 0.1 for crowd-workers)"
        ),
    )
    parser.add_argument(
        "--target",
        type=parse_target,
        default=None,
        metavar="SHARE",
        help=(
            "calibration's target agreement, a share between 0 and 1 (default 0.9, i.e. 90%%): the auto-accept "
            "threshold is the lowest judge confidence above which the 95%% lower bound of agreement with people "
            "reaches it"
        ),
    )
    parser.add_argument("--as", dest="username", default=None, metavar="ADMIN",
                        help="read study FILE (its number) from the app's database as this admin")
    parser.add_argument("--run", dest="judge_run", default=None, metavar="RUN",
                        help="with --as: the judge run (id or name; default: the study's first run)")
    parser.add_argument("--db", default=None, help="with --as: SQLAlchemy URL of the app's database (env GLIDER_DB)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Compute the report for args.file; 0 when done, 2 (message on stderr) when the input is unusable."""
    if getattr(args, "username", None) is not None:  # a study in the app's database, by number
        from core.pair_agreement_cli import run_study

        return run_study(args)
    from core.agreement import adjudicated_report, agreement_report, load_ratings  # scipy/sklearn: only here

    try:
        rows = load_ratings(args.file)
        for note in rows.attrs.get("notes", ()):  # e.g. read as Windows-1252: check the accents
            print(f"note: {note}", file=sys.stderr)
        if args.reference == "adjudicated" and (args.epsilon is not None or args.target is not None):
            raise InputError("--epsilon and --target set the alt-test and the auto-accept threshold, which compare "
                             "with the annotators: use them without --reference adjudicated")
        make = adjudicated_report if args.reference == "adjudicated" else agreement_report
        extra = {} if args.reference == "adjudicated" else {
            "epsilon": args.epsilon, **({} if args.target is None else {"target": args.target})}
        report = make(rows, scale=args.scale, n_resamples=args.resamples, seed=args.seed, blind=args.blind, **extra)
        text = json.dumps(report, allow_nan=False, ensure_ascii=False, indent=2)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    summary_to = sys.stderr if args.out == "-" else sys.stdout
    print(adjudicated_summary(report) if args.reference == "adjudicated" else summary(report), file=summary_to)
    if args.out == "-":
        sys.stdout.write(text + "\n")
    elif args.out:
        try:
            Path(args.out).write_text(text + "\n", encoding="utf-8")
        except OSError as exc:
            print(f"error: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        print(f"Report written to {args.out}", file=summary_to)
    return EXIT_OK


def _format(metric: dict[str, Any]) -> str:
    if metric.get("value") is None:
        return f"undefined ({metric.get('reason', 'no reason given')})"
    text = f"{metric['value']:.3f}"
    if metric.get("ci_low") is not None:
        text += f"  95% CI [{metric['ci_low']:.3f}, {metric['ci_high']:.3f}]"
    p = metric.get("p_value")
    if p is not None:
        text += "  p < 0.001" if p < 0.001 else f"  p = {p:.3f}"
    return text


def _lines(title: str, rows: list[tuple[str, dict[str, Any]]], out: list[str]) -> None:
    out.append(title)
    width = max(len(label) for label, _ in rows)
    out.extend(f"  {label:<{width}}  {_format(metric)}" for label, metric in rows)


def _scores_line(report: dict[str, Any]) -> str:
    headline = report.get("headline_score") or {}
    if headline.get("blind"):
        return ("Scores: BEFORE the model's verdict was shown (blind study; "
                f"so says {headline.get('decided_by')}). After the reveal: see below.")
    if headline.get("blind") is False:
        return "Scores: given with the model's verdict visible (not a blind study); they may lean towards the model."
    return "Scores: human_score as given (the file does not say whether the labels were given blind)."


def summary(report: dict[str, Any]) -> str:
    """A few readable lines: sizes, which scores, each headline metric with its CI, anchoring, exclusions."""
    scale = report.get("scale")
    scale_text = f"{scale['min']}-{scale['max']} ({scale['source']})" if scale else "none"
    lines = [
        f"Items compared: {report['n_items']} of {report['n_items_total']}   "
        f"Annotators: {report['n_annotators']}   Human ratings: {report['n_ratings']}   Scale: {scale_text}",
        _scores_line(report),
    ]
    blind = bool((report.get("headline_score") or {}).get("blind"))
    when = " - before the reveal (headline)" if blind else ""
    _lines(f"Human vs model (pooled){when}:", [(label, report[key]) for key, label in HEADLINE_LABELS], lines)
    human = report["human_human"]
    _lines(f"Human vs human{when}:", [(label, human[key]) for key, label in HUMAN_LABELS], lines)
    if versus := report.get("judge_vs_people"):
        lines.append(f"Judge vs people: {versus['reading'] if versus['available'] else versus['reason']}")
    spans = report["spans"]
    if spans.get("n_annotations"):
        _lines("Highlight spans (tokens):", [(k, spans[k]) for k in ("precision", "recall", "f1")], lines)
    if spans.get("n_without_evidence"):
        lines.append(f"  {spans['left_out_note']}")
    anchoring = report["anchoring"]
    if anchoring.get("available"):
        lines.append(
            f"Anchoring: {anchoring['revised']} of {anchoring['n']} revised after the reveal "
            f"({anchoring['towards_model']} towards the model, {anchoring['away_from_model']} away; "
            f"{anchoring['changed_at_reveal']} at the reveal, {anchoring['changed_by_later_edit']} by a later edit)"
        )
    post = report.get("post_reveal") or {}
    if post.get("available"):
        _lines("Human vs model - after the reveal (second view, may be anchored):",
               [(label, post[key]) for key, label in HEADLINE_LABELS], lines)
        _lines("Human vs human - after the reveal:",
               [(label, post["human_human"][key]) for key, label in HUMAN_LABELS], lines)
    lines.extend(_alt_test_lines(report.get("alt_test") or {}))
    lines.extend(calibration_lines(report.get("calibration") or {}))
    excluded = {reason: count for reason, count in report["excluded"].items() if count}
    lines.append(
        "Excluded: " + (", ".join(f"{reason.replace('_', ' ')}: {n}" for reason, n in excluded.items()) or "none")
    )
    sampling = report.get("sampling") or {}
    if sampling.get("recorded"):  # core.agreement.sampling: which items the queue drew at random
        lines.append(f"Queue: {sampling['random']['n_labelled']} labelled item(s) drawn at random, "
                     f"{sampling['uncertainty']['n_labelled']} least-confident first. {sampling['note']}")
    return "\n".join(lines)


def _alt_test_lines(block: dict[str, Any]) -> list[str]:
    """The alt-test in two lines: omega, rho and epsilon, then the decision sentence."""
    if not block:
        return []
    if not block.get("available"):
        return [f"Alt-test (epsilon = {block['epsilon']:g}): not computable ({block['reason']})"]
    weak = "  (weak: fewer than 3 annotators tested)" if block.get("weak") else ""
    return [
        f"Alt-test (epsilon = {block['epsilon']:g}): winning rate omega = {block['winning_rate']:.2f} "
        f"({block['n_annotators_won']} of {block['n_annotators_tested']} annotators), advantage probability "
        f"rho = {block['advantage_probability']:.2f}{weak}",
        f"  {block['decision']}",
    ]
def calibration_lines(block: dict[str, Any]) -> list[str]:
    """The calibration block in two lines: ECE, then the auto-accept threshold or why there is none."""
    if not block.get("available"):
        return [f"Calibration: not available ({block.get('reason', 'no reason given')})"] if block else []
    ece = block["ece"]
    ece_text = f"{ece['value']:.3f}" if ece.get("value") is not None else f"undefined ({ece.get('reason')})"
    lines = [f"Calibration: ECE {ece_text} on {block['n_labelled']} labelled items with a confidence"]
    threshold, target = block["threshold"], block["target"]
    if threshold.get("found"):
        lines.append(
            f"  Auto-accept at confidence >= {threshold['value']:.3f}: {threshold['agreed']} of {threshold['n']} "
            f"labelled items agreed, 95% lower bound {threshold['lower_bound']:.3f} >= target {target:.0%}; "
            f"covers {threshold['n_covered']} of {block['n_graded']} graded items ({threshold['coverage']:.0%})"
        )
    else:
        lines.append(f"  No auto-accept threshold for {target:.0%}: {threshold['reason']}")
    return lines


def adjudicated_summary(report: dict[str, Any]) -> str:
    """core.agreement.adjudicated_report in a few lines: each comparison with its item count and metrics."""
    scale = report.get("scale")
    scale_text = f"{scale['min']}-{scale['max']}" if scale else "none"
    lines = [
        f"Reference: adjudicated labels on {report['n_items_adjudicated']} of {report['n_items_total']} items   "
        f"Scale: {scale_text}",
        _scores_line(report),
    ]
    for comparison in report["comparisons"]:
        title = {"judge": "Judge vs adjudicated", "annotators": "Annotators (pooled item means) vs adjudicated"}.get(
            comparison["kind"], f"Annotator {comparison['name']} vs adjudicated")
        _lines(f"{title} (n={comparison['n_items']}):",
               [(label, comparison[key]) for key, label in HEADLINE_LABELS], lines)
    return "\n".join(lines)
