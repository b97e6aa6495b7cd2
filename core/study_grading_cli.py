"""`python -m core grade-study STUDY_ID --as ADMIN`: grade a study's items from the command line.

The same work as the Studies tab's "Grade all items" / "Regrade failed" (core.studies.grading.grade_study):
batched generation, each judgment attached to its item after its batch, Ctrl-C stops after the batch
in progress and keeps what was graded; running the command again grades the rest. The judgments go into
the study's judge run of this judge configuration (core.studies.runs), a new one when no run has it or
with --new-run NAME; the judge is loaded first, since only it knows its configuration.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from core.errors import GliderError, JudgeError, StudyInputError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_SOME_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def register(subparsers: Any) -> None:
    """Add the `grade-study` sub-command to the `python -m core` parser."""
    from core.judge.options import add_judge_arguments, positive_int
    from core.settings import default_db_url

    parser = subparsers.add_parser(
        "grade-study",
        help="grade a study's ungraded items (or those whose answer failed to parse) with the judge",
        description=("Grade every item of study STUDY_ID that has no judgment yet (or, with --failed, every item "
                     "whose judgment failed to parse) and attach each judgment to its item, as the Studies tab's "
                     "Grade all items does. Ctrl-C stops after the batch in progress; run again to grade the rest."),
        epilog=("exit codes: 0 every chosen item was graded; 1 the judge or the database failed (what was graded "
                "is kept); 2 unusable options, an unknown study, or a user who is not an admin; 3 done, but some "
                "answers failed to parse or some items could not be graded; 130 stopped (run again to go on)"),
    )
    parser.add_argument("study_id", type=int, metavar="STUDY_ID", help="the study's number (#N in the Studies tab)")
    parser.add_argument("--as", dest="username", required=True, metavar="ADMIN",
                        help="the admin the judgments are attached by (study changes are made by a named admin)")
    parser.add_argument("--failed", action="store_true",
                        help="regrade only the items whose judgment failed to parse")
    parser.add_argument("--new-run", metavar="NAME",
                        help=("grade every item again as a new judge run called NAME (default: the study's run of this "
                              "judge configuration is continued, and a new run is made only when none has it)"))
    parser.add_argument("--db", default=default_db_url(),
                        help="SQLAlchemy URL of the app's database (env GLIDER_DB; default as the app)")
    parser.add_argument("--batch-size", type=positive_int, default=8, metavar="N",
                        help="items per model call (default %(default)s)")
    add_judge_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Grade the study; returns the exit code."""
    from core.judge import create_backend
    from core.judge.options import describe_options, judge_options
    from core.store import Store
    from core.studies import Studies
    from core.studies.grading import FAILED, UNGRADED, Which, select_items, summary_line
    from core.studies.runs import check_run_name

    which: Which = FAILED if args.failed else UNGRADED
    backend_name, options = judge_options(args)
    try:
        new_run = check_run_name(args.new_run) if args.new_run is not None else None
    except GliderError as error:
        return _fail(EXIT_USAGE, str(error))
    if args.new_run is not None and args.failed:
        return _fail(EXIT_USAGE, "--failed regrades a run's failed answers; a --new-run grades every item.")
    try:
        store = Store(args.db)
    except GliderError as error:
        return _fail(EXIT_FAILED, str(error))
    with store:
        studies = Studies(store)
        actor = studies.get_user(args.username)
        if actor is None:
            return _fail(EXIT_USAGE, f"There is no user {args.username!r} in {store.url}.")
        try:
            study = studies.get_study(actor, args.study_id)
            chosen, skipped = select_items(studies, actor, study.id, store, which)
        except GliderError as error:  # not an admin, no such study
            return _fail(EXIT_USAGE, str(error))
        if not chosen and not skipped:
            print("Nothing to grade: the study has no items.", file=sys.stderr)
            return EXIT_OK
        print(f"Loading the judge ({describe_options(backend_name, options)}) ...", file=sys.stderr)
        try:
            backend = create_backend(backend_name, **options)
        except JudgeError as error:
            return _fail(EXIT_FAILED, f"The judge could not be loaded: {error}")
        try:
            result = _grade(studies, actor, study, backend, store, which, args.batch_size,
                            (new_run or True) if args.new_run is not None else False)
        except KeyboardInterrupt:
            return _fail(EXIT_INTERRUPTED, "Interrupted; the batches finished before are kept. Run the same "
                                           "command again to grade the rest.")
        except StudyInputError as error:  # a taken run name; no run of this judge to regrade failures in
            return _fail(EXIT_USAGE, str(error))
        except GliderError as error:
            return _fail(EXIT_FAILED, f"{error}\nItems graded so far are kept; run the same command again.")
        if result.run is not None:
            made = "new judge run" if result.run_created else "judge run"
            print(f"{made} {result.run.label}", file=sys.stderr)
        if result.total == 0:
            print("Nothing to grade: " + ("no item's judgment failed to parse in this judge's run." if args.failed
                                          else "every item already has a judgment in this judge's run."),
                  file=sys.stderr)
            return EXIT_OK
        print(f"{summary_line(result)} ({result.done} of {result.total} items of {study.name!r} in "
              f"{result.seconds:.1f} s).", file=sys.stderr)
        for problem in result.errors:
            print(f"not graded: item {problem.label}: {problem.message}", file=sys.stderr)
        if result.failed_to_parse:
            print(f"{result.failed_to_parse} answer(s) failed to parse; regrade them with --failed.", file=sys.stderr)
        if result.halted:
            return _fail(EXIT_FAILED, f"The judge stopped working: {result.halted}\n"
                                      f"{result.pending} item(s) left; run the same command again.")
        if result.cancelled:
            return _fail(EXIT_INTERRUPTED, f"Stopped with {result.pending} item(s) left; run the same command again.")
        return EXIT_SOME_FAILED if result.failed_to_parse or result.errors else EXIT_OK


def _grade(studies: Any, actor: Any, study: Any, backend: Any, store: Any, which: Any, batch_size: int,
           new_run: bool | str) -> Any:
    """grade_study with the first Ctrl-C (or SIGTERM) asking it to stop after the batch in progress."""
    from core.stopping import stop_after_batch
    from core.studies.grading import grade_study

    def report(state: Any) -> None:
        print(f"{state.done} of {state.total} items: {state.graded} graded, {state.failed_to_parse} failed to parse, "
              f"{len(state.errors)} not graded", file=sys.stderr)

    with stop_after_batch() as should_stop:
        return grade_study(studies, actor, study.id, backend, store, which=which, batch_size=batch_size,
                           on_progress=report, should_stop=should_stop, new_run=new_run)


def _fail(code: int, message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code
