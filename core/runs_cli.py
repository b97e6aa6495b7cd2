"""`python -m core runs STUDY --as ADMIN`: a study's judge runs;
`python -m core compare-runs STUDY RUN_A RUN_B --as ADMIN [--out FILE]`: judge vs judge on two runs.

The same work as the Agreement tab's judge-run picker and "Compare runs" panel (core.studies.runs and
core.agreement.judge_vs_judge), by a named admin. A run is named by its id (#N in the list) or its name.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from core.agreement_labels import ascii_label
from core.errors import GliderError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
RUN_HEADERS = ("run", "name", "judge", "graded", "created", "by")
# The report's own metric names (core.agreement_labels), and the two that only judge vs judge has.
METRIC_NAMES = (("exact", ascii_label("exact")), ("flip_rate", "Flip rate"), ("mean_abs_diff", "Mean |delta|"),
                ("weighted_kappa", ascii_label("weighted_kappa")))


def register(subparsers: Any) -> None:
    """Add the `runs` and `compare-runs` sub-commands to the `python -m core` parser."""
    from core.settings import default_db_url

    listing = subparsers.add_parser(
        "runs", help="a study's judge runs (admins)",
        description=("List the judge runs of study STUDY: each is one judge configuration (back-end, model, "
                     "quantization, prompt variant, decoding) that grades every item once. The first run is the "
                     "default judge of the study (the Label tab's reveal, the exports, the agreement report)."),
    )
    listing.add_argument("study_id", type=int, metavar="STUDY", help="the study's number (#N in the Studies tab)")
    listing.add_argument("--as", dest="username", required=True, metavar="ADMIN", help="an admin")
    listing.add_argument("--db", default=default_db_url(),
                         help="SQLAlchemy URL of the app's database (env GLIDER_DB; default as the app)")
    listing.set_defaults(run=run_list)

    compare = subparsers.add_parser(
        "compare-runs", help="judge vs judge: how two judge runs of a study agree (admins)",
        description=("Compare two judge runs of study STUDY on the items both scored: exact agreement, flip rate "
                     "(share of items whose score changed), mean |score difference| and quadratic-weighted kappa, "
                     "each with a 95%% percentile-bootstrap interval over items, and the items that changed."),
    )
    compare.add_argument("study_id", type=int, metavar="STUDY", help="the study's number")
    compare.add_argument("run_a", metavar="RUN_A", help="a run's id (see `runs`) or name")
    compare.add_argument("run_b", metavar="RUN_B", help="a run's id or name")
    compare.add_argument("--as", dest="username", required=True, metavar="ADMIN", help="an admin")
    compare.add_argument("--out", type=Path, metavar="FILE", help="also write the whole comparison as JSON here")
    compare.add_argument("--resamples", type=int, default=1000, metavar="N",
                         help="bootstrap resamples (default %(default)s; 0: no intervals)")
    compare.add_argument("--seed", type=int, default=0, help="the bootstrap's seed (default %(default)s)")
    compare.add_argument("--db", default=default_db_url(),
                         help="SQLAlchemy URL of the app's database (env GLIDER_DB; default as the app)")
    compare.set_defaults(run=run_compare)


def _fail(code: int, message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def _open(args: argparse.Namespace) -> tuple[Any, Any] | int:
    """(store, actor), or the exit code of a failure already reported."""
    from core.accounts import Accounts
    from core.store import Store

    try:
        store = Store(args.db)
    except GliderError as error:
        return _fail(EXIT_FAILED, str(error))
    actor = Accounts(store).get_user(args.username)
    if actor is None:
        store.close()
        return _fail(EXIT_USAGE, f"There is no user {args.username!r} in {store.url}.")
    return store, actor


def run_list(args: argparse.Namespace) -> int:
    """Print the study's runs; 0 when done, 2 for an unknown user or study or a user who is not an admin."""
    from core.studies.runs import Runs

    opened = _open(args)
    if isinstance(opened, int):
        return opened
    store, actor = opened
    with store:
        try:
            runs = Runs(store).list_runs(actor, args.study_id)
        except GliderError as error:
            return _fail(EXIT_USAGE, str(error))
    if not runs:
        print("This study has no judge run yet: grade it (python -m core grade-study) to make one.")
        return EXIT_OK
    print(run_table(runs))
    return EXIT_OK


def run_table(runs: list[Any]) -> str:
    """The runs as a plain-text table, one line per run."""
    from core.studies.runs import describe_config

    rows = [RUN_HEADERS]
    for run in runs:
        rows.append((f"#{run.id}" + (" (first)" if run.is_default else ""), run.name, describe_config(run.config),
                     str(run.graded), run.created_at.strftime("%Y-%m-%d %H:%M"), run.created_by or "(before runs)"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(RUN_HEADERS))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
                     for row in rows)


def run_compare(args: argparse.Namespace) -> int:
    """Print judge vs judge on two runs (and write it as JSON with --out); 0 when done, 2 for bad arguments."""
    from core.studies.reports import jsonable
    from core.studies.runs import Runs

    if args.resamples < 0:
        return _fail(EXIT_USAGE, "--resamples must be 0 or more.")
    opened = _open(args)
    if isinstance(opened, int):
        return opened
    store, actor = opened
    with store:
        try:
            report = Runs(store).compare(actor, args.study_id, args.run_a, args.run_b, n_resamples=args.resamples,
                                         seed=args.seed)
        except GliderError as error:
            return _fail(EXIT_USAGE, str(error))
    print(comparison_text(report))
    if args.out is not None:
        try:
            args.out.write_text(json.dumps(jsonable(report), ensure_ascii=False, indent=2), encoding="utf-8")
        except OSError as error:
            return _fail(EXIT_FAILED, f"Could not write {args.out}: {error.strerror or error}")
        print(f"Wrote {args.out}", file=sys.stderr)
    return EXIT_OK


def _metric(metric: dict[str, Any]) -> str:
    if metric.get("value") is None:
        return f"undefined ({metric.get('reason', 'no value')})"
    text = f"{metric['value']:.3f}"
    if metric.get("ci_low") is not None:
        text += f"  [{metric['ci_low']:.3f}, {metric['ci_high']:.3f}]"
    return text


def comparison_text(report: dict[str, Any]) -> str:
    """The comparison as plain text: the two runs, the metrics with their intervals, the changed items."""
    first, second = report["runs"]
    lines = [f"A: {first['label']}", f"B: {second['label']}",
             f"{report['n_items']} item(s) scored by both runs; left out: {report['left_out']['only_a']} scored only "
             f"by A, {report['left_out']['only_b']} only by B, {report['left_out']['neither']} by neither."]
    lines += [f"{label:<28}{_metric(report[name])}" for name, label in METRIC_NAMES]
    changed = report["changed"]
    lines.append(f"{len(changed)} item(s) changed" + (":" if changed else "."))
    for entry in changed:
        known = f" [{entry['external_id']}]" if entry.get("external_id") is not None else ""
        lines.append(f"  item {entry['item_id']}{known}: {entry['score_a']} -> {entry['score_b']}")
    return "\n".join(lines)
