"""`python -m core compare DATA --out RESULTS`: compare two responses on every row of a file (core.pairwise).

Each row's pair is graded in both orders (unless --single-order), several rows per batched generation, and
both judgments of every row are stored with their reproducibility record. Unlike `grade`, a compare run is
not resumable: run it again and every row is compared again (the stored judgments of the first run stay).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from core.errors import GliderError, InputError, JudgeError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_ROW_ERRORS, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
RESULT_COLUMNS = ("verdict", "reason", "preferred_ab", "preferred_ba", "reasoning_ab", "reasoning_ba",
                  "judgment_id_ab", "judgment_id_ba", "error")
# The optional fields and the column each is read from unless mapped.
OPTIONAL_COLUMNS = {"context": "context", "user_input": "user_input", "gold_answer": "gold_answer"}


def register(subparsers: Any) -> None:
    """Add the `compare` sub-command to the `python -m core` parser."""
    from core.judge.options import add_judge_arguments, positive_int
    from core.settings import default_db_url

    parser = subparsers.add_parser(
        "compare",
        help="compare two responses on every row of a CSV/JSONL file (pairwise, both orders)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "For every row of DATA (CSV, TSV or JSONL), ask GLIDER which of two responses is better, in both "
            "orders (A as MODEL OUTPUT 1, then B), and write one result row per input row, in input order, to "
            "RESULTS (.csv or .jsonl): verdict A, B, inconsistent (the orders disagree) or undecided (an answer "
            "had no readable score), with each order's preference, reasoning and stored judgment id.\n\n"
            "The responses are read from the columns response_a and response_b (--a/--b to change); context, "
            "user_input and gold_answer are used when present. The criteria come from --preset (a pairwise "
            "preset) or --rubric (a YAML/JSON/TOML file with pass_criteria and a 0/1 rubric). Not resumable: "
            "a second run compares every row again."
        ),
        epilog="exit codes: 0 every row has a verdict; 1 the judge failed; 2 unusable input or options; "
               "3 finished, but some rows could not be compared (see the 'error' column); 130 interrupted",
    )
    parser.add_argument("data", metavar="DATA", help="CSV/TSV/JSONL file")
    parser.add_argument("--out", required=True, type=Path, metavar="RESULTS", help="results file: .csv or .jsonl")
    criteria = parser.add_mutually_exclusive_group()
    criteria.add_argument("--preset", default=None, metavar="KEY",
                          help="a pairwise preset (assets/pairwise_presets.json; default pair-helpfulness)")
    criteria.add_argument("--rubric", type=Path, default=None, metavar="RUBRIC_FILE",
                          help="YAML, JSON or TOML with pass_criteria and a 0/1 rubric "
                               "(0: MODEL OUTPUT 1 is better, 1: MODEL OUTPUT 2 is better)")
    parser.add_argument("--a", default="response_a", metavar="COLUMN",
                        help="column of response A (default %(default)s)")
    parser.add_argument("--b", default="response_b", metavar="COLUMN",
                        help="column of response B (default %(default)s)")
    parser.add_argument("--single-order", action="store_true",
                        help="grade only the order A,B (twice as fast; position consistency is not checked)")
    parser.add_argument("--db", default=default_db_url(),
                        help="SQLAlchemy URL where judgments are kept (env GLIDER_DB; default as the app)")
    parser.add_argument("--batch-size", type=positive_int, default=4, metavar="N",
                        help="rows per model call, each row one or two prompts (default %(default)s)")
    parser.add_argument("--max-new-tokens", type=positive_int, default=1024, metavar="N",
                        help="generation limit per prompt (default %(default)s)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_judge_arguments(parser)
    parser.set_defaults(run=run)


def criteria_of(args: argparse.Namespace) -> tuple[str, str]:
    """(pass_criteria, rubric) from --rubric or --preset; InputError when unusable."""
    from core.pairwise import check_pair_rubric

    if args.rubric is not None:
        from core.batch_inputs import load_rubric_file

        loaded = load_rubric_file(args.rubric)
        return loaded["pass_criteria"], check_pair_rubric(loaded["rubric"])
    from core.pairwise_presets import load_pairwise_presets

    presets = {preset.key: preset for preset in load_pairwise_presets()}
    key = args.preset or "pair-helpfulness"
    if key not in presets:
        raise InputError(f"No pairwise preset is named {key!r}. Known: {', '.join(presets)}.")
    return presets[key].pass_criteria, presets[key].rubric


def check_columns(columns: Sequence[str], a: str, b: str) -> None:
    """InputError naming the response column(s) the data lacks, and the columns it has."""
    missing = [f"{column!r} (response {name})" for name, column in (("A", a), ("B", b)) if column not in columns]
    if missing:
        raise InputError(f"The data has no column {' or '.join(missing)}. Its columns are: "
                         f"{', '.join(map(repr, columns))}; name the response columns with --a and --b.")


def pair_request(values: Mapping[str, Any], args: argparse.Namespace, pass_criteria: str, rubric: str) -> Any:
    """The PairRequest of one row (blank cells are empty text; core.pairwise refuses a blank response)."""
    from core.pairwise import PairRequest
    from core.tabular import is_blank

    def text(column: str) -> str:
        value = values.get(column)
        return "" if is_blank(value) else str(value)

    return PairRequest(response_a=text(args.a), response_b=text(args.b), pass_criteria=pass_criteria,
                       rubric=rubric, context=text("context"), user_input=text("user_input"),
                       gold_answer=text("gold_answer"), both_orders=not args.single_order,
                       max_new_tokens=args.max_new_tokens)


def result_record(outcome: Any) -> dict[str, Any]:
    """The result columns of one row: a PairResult's verdict and orders, or an error's message."""
    from core.pairwise import PairResult

    record: dict[str, Any] = dict.fromkeys(RESULT_COLUMNS)
    if not isinstance(outcome, PairResult):
        record["error"] = str(outcome)
        return record
    record.update(verdict=outcome.verdict, reason=outcome.reason)
    for order in outcome.orders:
        suffix = "ab" if order.label == "A,B" else "ba"
        record[f"preferred_{suffix}"] = order.preferred
        record[f"reasoning_{suffix}"] = order.result.judgment.reasoning
        record[f"judgment_id_{suffix}"] = order.result.judgment_id
    return record


def write_results(path: Path, columns: Sequence[str], records: Sequence[Mapping[str, Any]]) -> None:
    """Write the records as CSV or JSONL by the file's extension, atomically (readers never see half a file)."""
    import pandas as pd

    frame = pd.DataFrame({column: pd.Series([record.get(column) for record in records], dtype=object)
                          for column in columns}, columns=list(columns))
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix.lower() == ".csv":
            frame.to_csv(temporary, index=False)
        else:
            frame.to_json(temporary, orient="records", lines=True, force_ascii=False)
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise InputError(f"Could not write {path}: {error.strerror or error}.") from error


def run(args: argparse.Namespace) -> int:
    """Read DATA, compare every row, write RESULTS; returns the exit code."""
    from core.judge.options import describe_options, judge_options
    from core.store import Store
    from core.tabular import read_table

    if args.out.suffix.lower() not in (".csv", ".jsonl", ".ndjson"):
        return _fail(EXIT_USAGE, f"--out must end in .csv or .jsonl (got {args.out.name!r}).")
    backend_name, options = judge_options(args)
    try:
        pass_criteria, rubric = criteria_of(args)
        table = read_table(args.data)
        check_columns(table.columns, args.a, args.b)
        store = Store(args.db)
    except InputError as error:
        return _fail(EXIT_USAGE, str(error))
    except GliderError as error:  # the database could not be opened
        return _fail(EXIT_FAILED, str(error))
    for note in table.notes:
        print(f"note: {note}", file=sys.stderr)
    requests = [pair_request(values, args, pass_criteria, rubric) for _, values in table.rows]
    print(f"Loading the judge ({describe_options(backend_name, options)}) ...", file=sys.stderr)
    from core.judge import create_backend

    try:
        backend = create_backend(backend_name, **options)
    except JudgeError as error:
        return _fail(EXIT_FAILED, f"The judge could not be loaded: {error}")
    try:
        outcomes = _compare_all(backend, requests, store, args)
    except KeyboardInterrupt:
        return _fail(EXIT_INTERRUPTED, "Interrupted; the rows compared so far are stored, no RESULTS were written.")
    except JudgeError as error:
        return _fail(EXIT_FAILED, f"{error}\nThe rows compared so far are stored; no RESULTS were written.")
    input_columns = [column for column in table.columns if column not in RESULT_COLUMNS]
    records = [{**{c: values.get(c) for c in input_columns}, **result_record(outcome)}
               for (_, values), outcome in zip(table.rows, outcomes, strict=True)]
    records += [{"error": f"{table.row_word} {error.row}: {error.message}"} for error in table.errors]
    try:
        write_results(args.out, [*input_columns, *RESULT_COLUMNS], records)
    except InputError as error:
        return _fail(EXIT_FAILED, str(error))
    errors = sum(1 for record in records if record.get("error"))
    print(f"Wrote {len(records)} rows to {args.out}.", file=sys.stderr)
    if errors:
        print(f"{errors} row(s) could not be compared; their 'error' column says why.", file=sys.stderr)
        return EXIT_ROW_ERRORS
    return EXIT_OK


def _compare_all(backend: Any, requests: Sequence[Any], store: Any, args: argparse.Namespace) -> list[Any]:
    """Compare the rows in batches of --batch-size with a progress bar; one outcome per row, in order."""
    from tqdm import tqdm

    from core.pairwise import compare_many

    outcomes: list[Any] = []
    with tqdm(total=len(requests), unit="row", dynamic_ncols=True, disable=args.quiet, file=sys.stderr,
              desc="compare") as bar:
        for start in range(0, len(requests), args.batch_size):
            chunk = requests[start : start + args.batch_size]
            outcomes.extend(compare_many(backend, chunk, store))
            bar.update(len(chunk))
    return outcomes


def _fail(code: int, message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code
