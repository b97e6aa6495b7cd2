"""`python -m core grade DATA --rubric RUBRIC --out RESULTS`: grade a whole file, resumably.

Running the same command again after an interruption (Ctrl-C, kill -9, a power cut) continues the
same job and then writes the complete RESULTS file.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from core.errors import GliderError, InputError, JudgeError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_ROW_ERRORS, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def _mapping(text: str) -> tuple[str, str]:
    tag, sep, column = text.partition("=")
    if not sep or not tag.strip() or not column.strip():
        raise argparse.ArgumentTypeError(f"expected TAG=COLUMN, e.g. 'MODEL OUTPUT=answer' (got {text!r})")
    return tag.strip(), column.strip()


def register(subparsers: Any) -> None:
    """Add the `grade` sub-command to the `python -m core` parser."""
    from core.judge.options import add_judge_arguments, positive_int
    from core.settings import default_db_url

    parser = subparsers.add_parser(
        "grade",
        help="grade every row of a CSV/JSONL file (resumable)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Grade every row of DATA with the rubric in RUBRIC_FILE and write one result row per input row, "
            "in input order, to RESULTS (.csv or .jsonl).\n\n"
            "DATA is a CSV, TSV or JSONL file (or a Hugging Face dataset 'owner/name[:split]' when the datasets "
            "package is installed and the machine is online). Its columns are the field tags in snake case "
            "(context, user_input, model_output, gold_answer) unless mapped with --map. RUBRIC_FILE (YAML, JSON "
            "or TOML) holds pass_criteria, rubric and optionally tags.\n\n"
            "Progress is stored in the database after every batch: run the same command again after an "
            "interruption and it resumes, grading no row twice."
        ),
        epilog=(
            "exit codes: 0 every row has a judgment (failed parses count, with status 'failed'); "
            "1 the judge failed or another process holds the job (run again to resume); "
            "2 unusable input or options; 3 finished, but some rows could not be graded (see the 'error' column); "
            "130 interrupted (run again to resume)"
        ),
    )
    parser.add_argument("data", metavar="DATA", help="CSV/TSV/JSONL file, or a Hugging Face dataset name")
    parser.add_argument("--rubric", required=True, type=Path, metavar="RUBRIC_FILE",
                        help="YAML, JSON or TOML with pass_criteria, rubric and optional tags")
    parser.add_argument("--out", required=True, type=Path, metavar="RESULTS", help="results file: .csv or .jsonl")
    parser.add_argument("--map", action="append", type=_mapping, default=[], metavar="TAG=COLUMN",
                        help="read the field TAG from COLUMN (repeatable), e.g. --map 'MODEL OUTPUT=answer'")
    parser.add_argument("--db", default=default_db_url(),
                        help="SQLAlchemy URL where jobs and judgments are kept (env GLIDER_DB; default as the app)")
    parser.add_argument("--batch-size", type=positive_int, default=8, metavar="N",
                        help="rows per model call (default %(default)s); may change between runs of a job")
    parser.add_argument("--max-new-tokens", type=positive_int, default=1024, metavar="N",
                        help="generation limit per row (default %(default)s)")
    parser.add_argument("--name", default="", help="a name for the job (default: the data file's name)")
    parser.add_argument("--restart", action="store_true",
                        help="forget the stored job for this command and grade every row again")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_judge_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Open (or resume) the job, grade what is pending, write RESULTS; returns the exit code."""
    from core.batch import BatchJobs, JobSpec, load_rubric_file
    from core.judge.options import describe_options, judge_identity, judge_options
    from core.store import Store

    out_suffix = args.out.suffix.lower()
    if out_suffix not in (".csv", ".jsonl", ".ndjson"):
        return _fail(EXIT_USAGE, f"--out must end in .csv or .jsonl (got {args.out.name!r}).")
    backend_name, options = judge_options(args)
    try:
        rubric = load_rubric_file(args.rubric)
        spec = JobSpec(pass_criteria=rubric["pass_criteria"], rubric=rubric["rubric"], tags=tuple(rubric["tags"]),
                       mapping=dict(args.map), max_new_tokens=args.max_new_tokens, name=args.name)
        store = Store(args.db)
        jobs = BatchJobs(store)
        identity = judge_identity(backend_name, options)
        if args.restart:
            jobs.forget(args.data, spec, identity)
        opened = jobs.open(args.data, spec, identity)
    except InputError as error:
        return _fail(EXIT_USAGE, str(error))
    except GliderError as error:  # the database could not be opened
        return _fail(EXIT_FAILED, str(error))
    job = opened.job
    for note in opened.notes:
        print(f"note: {note}", file=sys.stderr)
    progress = jobs.progress(job.id)
    verb = "Created" if opened.created else "Resuming"
    print(f"{verb} job {job.id} ({job.name}): {progress.done + progress.errors} of {progress.total} rows done, "
          f"{progress.errors} with errors.", file=sys.stderr)

    if progress.pending:
        print(f"Loading the judge ({describe_options(backend_name, options)}) ...", file=sys.stderr)
        from core.judge import create_backend

        try:
            backend = create_backend(backend_name, **options)
        except JudgeError as error:
            return _fail(EXIT_FAILED, f"The judge could not be loaded: {error}")
        code = _grade(jobs, job.id, backend, args, progress)
        if code is not None:
            return code
        progress = jobs.progress(job.id)

    try:
        jobs.export(job.id, args.out)
    except InputError as error:
        return _fail(EXIT_FAILED, str(error))
    print(f"Wrote {progress.total} rows to {args.out}.", file=sys.stderr)
    if progress.errors:
        print(f"{progress.errors} row(s) could not be graded; their 'error' column says why.", file=sys.stderr)
        return EXIT_ROW_ERRORS
    return EXIT_OK


def _grade(jobs: Any, job_id: int, backend: Any, args: argparse.Namespace, progress: Any) -> int | None:
    """Run the job with a progress bar; an exit code when it did not finish, None when it did."""
    from tqdm import tqdm

    from core.batch import STOPPED, JobBusyError
    from core.stopping import stop_after_batch

    started = time.perf_counter()
    bar = tqdm(total=progress.total, initial=progress.done + progress.errors, unit="row", dynamic_ncols=True,
               disable=args.quiet, file=sys.stderr, desc=f"job {job_id}")

    def on_progress(now: Any, finished: list[Any]) -> None:
        bar.update(len(finished))
        bar.set_postfix(errors=now.errors, refresh=False)

    # The first Ctrl-C or SIGTERM (a scheduler stopping us) lets the current batch finish and be stored,
    # then stops; a second one stops at once (that batch is lost, nothing else: the job stays resumable).
    try:
        with stop_after_batch() as should_stop:
            final = jobs.run(job_id, backend, batch_size=args.batch_size, on_progress=on_progress,
                             should_stop=should_stop)
    except KeyboardInterrupt:
        bar.close()
        return _fail(EXIT_INTERRUPTED, f"Interrupted. Run the same command again to resume job {job_id}.")
    except JobBusyError as error:
        bar.close()
        return _fail(EXIT_FAILED, str(error))
    except JudgeError as error:
        bar.close()
        return _fail(EXIT_FAILED, f"{error}\nRows graded so far are kept; run the same command again to resume.")
    if final.status == STOPPED:
        bar.close()
        return _fail(EXIT_INTERRUPTED, f"Stopped after {final.done + final.errors} of {final.total} rows. "
                                       f"Run the same command again to resume job {job_id}.")
    bar.close()
    seconds = time.perf_counter() - started
    graded = final.done + final.errors - (progress.done + progress.errors)
    rate = f" ({graded / seconds:.2f} rows/s)" if seconds > 0 and graded else ""
    print(f"Graded {graded} row(s) in {seconds:.1f} s{rate}.", file=sys.stderr)
    return None


def _fail(code: int, message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code
