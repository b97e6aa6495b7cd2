"""`python -m core agreement STUDY --as ADMIN [--run RUN]`: a study's agreement report from the app's database.

For a pairwise study this is the pairwise report (core.studies.pair_reports: accuracy vs the human majority,
kappa among people and vs the judge, position consistency and position bias); for a single-response study the
numeric report of `python -m core agreement FILE` on the study's ratings. `--run` picks the judge run (default:
the study's first run).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from core.errors import GliderError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _fail(code: int, message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def run_study(args: argparse.Namespace) -> int:
    """Print the report of study args.file (a number) as args.username; 0 when done, 2 for bad arguments."""
    from core.accounts import Accounts
    from core.store import Store
    from core.studies import Studies
    from core.studies.reports import jsonable

    text = str(args.file).strip().lstrip("#")
    if not text.isdigit():
        return _fail(EXIT_USAGE, f"With --as, name a study by its number (#N in the Studies tab), not {args.file}.")
    from core.settings import default_db_url

    try:
        store = Store(args.db or default_db_url())
    except GliderError as error:
        return _fail(EXIT_FAILED, str(error))
    with store:
        actor = Accounts(store).get_user(args.username)
        if actor is None:
            return _fail(EXIT_USAGE, f"There is no user {args.username!r} in {store.url}.")
        studies = Studies(store)
        try:
            report = study_report(studies, actor, int(text), args.judge_run, n_resamples=args.resamples, seed=args.seed)
        except GliderError as error:
            return _fail(EXIT_USAGE, str(error))
    summary_to = sys.stderr if args.out == "-" else sys.stdout
    if report.get("mode") == "pairwise":
        print(pairwise_summary(report), file=summary_to)
    else:
        from core.agreement_cli import summary

        print(summary(report), file=summary_to)
    dumped = json.dumps(jsonable(report), allow_nan=False, ensure_ascii=False, indent=2)
    if args.out == "-":
        sys.stdout.write(dumped + "\n")
    elif args.out:
        try:
            Path(args.out).write_text(dumped + "\n", encoding="utf-8")
        except OSError as error:
            return _fail(EXIT_USAGE, f"cannot write {args.out}: {error.strerror or error}")
        print(f"Report written to {args.out}", file=summary_to)
    return EXIT_OK


def study_report(studies: Any, actor: Any, study_id: int, run: str | None, *, n_resamples: int,
                 seed: int) -> dict[str, Any]:
    """The pairwise report of a pairwise study, else the numeric report of the study's ratings (run `run`)."""
    study = studies.get_study(actor, study_id)
    if study.pairwise:
        from core.studies.pair_reports import pair_report

        return pair_report(studies, actor, study_id, run, n_resamples=n_resamples, seed=seed)
    from core.agreement import agreement_report

    rows = studies.ratings(actor, study_id, run=run)
    return agreement_report(rows, scale=study.scale, n_resamples=n_resamples, seed=seed, blind=study.blind)


def _format(metric: dict[str, Any], percent: bool = False) -> str:
    if metric.get("value") is None:
        return f"undefined ({metric.get('reason', 'no reason given')})"
    show = (lambda v: f"{v:.1%}") if percent else (lambda v: f"{v:.3f}")
    text = show(metric["value"])
    if "k" in metric:
        text += f" ({metric['k']} of {metric['n']})"
    elif metric.get("n") is not None:
        text += f" (n={metric['n']})"
    if metric.get("ci_low") is not None:
        text += f"  95% CI [{show(metric['ci_low'])}, {show(metric['ci_high'])}]"
    return text


def pairwise_summary(report: dict[str, Any]) -> str:
    """The pairwise report in a few readable lines."""
    judge, human = report["judge"], report["human_human"]
    run = report.get("run")
    lines = [
        f"Pairwise study: {report['n_items']} items, {report['n_items_labelled']} labelled, "
        f"{report['n_labels']} choices by {report['n_annotators']} annotators; ties "
        f"{'allowed' if report['allow_tie'] else 'not allowed'}",
        f"Judge: {run['label'] if run else 'no judge run yet'}",
        f"  verdicts: A {judge['A']}, B {judge['B']}, inconsistent {judge['inconsistent']}, "
        f"undecided {judge['undecided']}, not graded {judge['ungraded']}",
        f"Items with a strict human majority: {report['n_items_majority']} "
        f"(no majority: {report['n_items_no_majority']}); compared with the judge: {report['n_items_compared']}",
        f"  Accuracy vs the human majority: {_format(report['accuracy'], True)}",
        f"  Accuracy on consistent verdicts: {_format(report['accuracy_consistent'], True)}",
        f"  Judge vs majority Cohen's kappa: {_format(report['judge_vs_majority_kappa'])}",
    ]
    if human["statistic"] == "fleiss_kappa":
        lines.append(f"Human vs human Fleiss' kappa: {_format(human['fleiss_kappa'])}")
    else:
        lines.append(f"Human vs human Cohen's kappa (mean over pairs): {_format(human['mean_pairwise_cohen_kappa'])}")
    lines += [
        "Position consistency",
        f"  Judge's consistency rate (both orders agree): {_format(report['position_consistency'], True)}",
        f"  Position bias (inconsistent verdicts picking slot 1): {_format(report['position_bias'], True)}",
        f"  Humans' own slot-1 rate: {_format(report['human_slot_1_rate'], True)}",
        f"Ties and inconsistent verdicts: {report['ties_rule']}",
    ]
    return "\n".join(lines)
