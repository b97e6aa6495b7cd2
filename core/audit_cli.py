"""`python -m core audit STUDY_ID --as ADMIN`: the robustness audit of a study's judge, from the command line.

The same work as the Agreement tab's Audit panel (core.audit.runner.run_audit): the study's items (or a
seeded random sample) graded unperturbed and under each perturbation, every judgment saved, and one table:
per perturbation, the flip rate and kappa vs the unperturbed run with their intervals, and how agreement
with the human consensus changed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from core.errors import GliderError, InputError, JudgeError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def register(subparsers: Any) -> None:
    """Add the `audit` sub-command to the `python -m core` parser."""
    from core.audit.perturbations import PERTURBATIONS, TEXT_DEFAULTS
    from core.judge.options import BACKEND_CHOICES, QUANTIZATION_CHOICES, add_judge_arguments, positive_int
    from core.settings import default_db_url

    listing = "\n".join(f"  {name}: {p.description}" for name, p in PERTURBATIONS.items())
    parser = subparsers.add_parser(
        "audit",
        help="robustness audit: re-grade a study's items under perturbations that should not change the verdict",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=("Grade the items of study STUDY_ID (or a random sample of N) with the judge as they are, then "
                     "under each perturbation, saving every judgment (none replaces an item's own), and print per "
                     "perturbation: flips and the flip rate (exact 95% interval), weighted kappa vs the unperturbed "
                     "run (bootstrap 95% interval) and the change in agreement with the human consensus.\n\n"
                     f"perturbations:\n{listing}"),
        epilog="exit codes: 0 done; 1 the judge or the database failed; 2 unusable options, an unknown study, or a "
               "user who is not an admin; 130 interrupted",
    )
    parser.add_argument("study_id", type=int, metavar="STUDY_ID", help="the study's number (#N in the Studies tab)")
    parser.add_argument("--as", dest="username", required=True, metavar="ADMIN", help="the admin who runs the audit")
    parser.add_argument("--perturb", default=",".join(TEXT_DEFAULTS), metavar="NAMES",
                        help="comma-separated perturbations (default %(default)s)")
    parser.add_argument("--sample", type=positive_int, default=None, metavar="N",
                        help="audit a random sample of N items (default: every item)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample and the bootstrap (default 0)")
    parser.add_argument("--resamples", type=int, default=1000, metavar="B",
                        help="bootstrap resamples for the intervals (default %(default)s; 0: none)")
    parser.add_argument("--out", type=Path, default=None, metavar="JSON",
                        help="write the whole audit (the block, each run's scores and judgment ids) as JSON")
    parser.add_argument("--db", default=default_db_url(),
                        help="SQLAlchemy URL of the app's database (env GLIDER_DB; default as the app)")
    parser.add_argument("--batch-size", type=positive_int, default=8, metavar="N",
                        help="items per model call (default %(default)s)")
    add_judge_arguments(parser)
    other = parser.add_argument_group("other judge (the other-judge perturbation; default: transformers bf16 "
                                      "vs nf4, the other of the judge's own)")
    other.add_argument("--other-backend", choices=BACKEND_CHOICES, default=None, help="its back-end")
    other.add_argument("--other-model", default=None, help="its model (a Hub id, a directory or a .gguf file)")
    other.add_argument("--other-quantization", choices=QUANTIZATION_CHOICES, default=None,
                       help="its quantization (transformers)")
    other.add_argument("--other-gguf-file", default=None, help="its file inside a GGUF Hub repo (llamacpp)")
    parser.set_defaults(run=run)


def other_judge_config(args: argparse.Namespace, backend: str, options: dict[str, Any]) -> Any:
    """The other-judge perturbation's judge: the --other-* flags over the judge's own, else the default."""
    from core.audit.perturbations import JudgeConfig, default_other_judge
    from core.judge.options import judge_options

    given = (args.other_backend, args.other_model, args.other_quantization, args.other_gguf_file)
    if not any(given):
        return default_other_judge(backend, options)
    changed = argparse.Namespace(**vars(args))
    if args.other_model:
        changed.model, changed.backend = args.other_model, "auto"  # the model's kind picks the back-end
    if args.other_backend:
        changed.backend = args.other_backend
    if args.other_quantization:
        changed.quantization = args.other_quantization
    if args.other_gguf_file:
        changed.gguf_file = args.other_gguf_file
    other_backend, other_options = judge_options(changed)
    return JudgeConfig(other_backend, other_options)


def run(args: argparse.Namespace) -> int:
    """Run the audit; print the table (stdout) and progress (stderr); returns the exit code."""
    from core.audit.judge_runs import audit_study
    from core.audit.perturbations import OTHER_JUDGE, resolve
    from core.judge import create_backend
    from core.judge.options import describe_options, judge_options
    from core.store import Store
    from core.studies import Studies

    backend_name, options = judge_options(args)
    names = [name.strip() for name in str(args.perturb).split(",") if name.strip()]
    try:
        judge_config = other_judge_config(args, backend_name, options) if OTHER_JUDGE in names else None
        perturbations = resolve(names, judge_config)
        if args.resamples < 0:
            raise InputError(f"--resamples must be 0 or more (got {args.resamples}).")
    except InputError as error:
        return _fail(EXIT_USAGE, str(error))
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
            study = studies.get_study(actor, args.study_id)  # not an admin, no such study: refused before loading
            studies.list_items(actor, study.id)
        except GliderError as error:
            return _fail(EXIT_USAGE, str(error))
        print(f"Loading the judge ({describe_options(backend_name, options)}) ...", file=sys.stderr)
        try:
            judge = create_backend(backend_name, **options)
        except JudgeError as error:
            return _fail(EXIT_FAILED, f"The judge could not be loaded: {error}")

        def progress(name: str, done: int, total: int) -> None:
            print(f"{name}: {done} of {total} items", file=sys.stderr)

        try:
            result, kept = audit_study(studies, actor, study.id, judge, store, perturbations, sample=args.sample,
                                       seed=args.seed, batch_size=args.batch_size, n_resamples=args.resamples,
                                       on_progress=progress)
        except KeyboardInterrupt:
            return _fail(EXIT_INTERRUPTED, "Interrupted; the judgments graded so far are kept in the database.")
        except InputError as error:
            return _fail(EXIT_USAGE, str(error))
        except GliderError as error:
            return _fail(EXIT_FAILED, f"{error}\nThe judgments graded so far are kept in the database.")
    print(f"Audit of {result.study_name!r} (#{result.study_id}): {result.sample['note']}; judge "
          f"{result.baseline.judge}; {result.seconds:.1f} s. Kept with the study as audit #{kept.id} "
          f"(judge runs 'Audit {kept.label}: ...').")
    print(format_table(result.block))
    if args.out is not None:
        args.out.write_text(json.dumps(result.to_dict(), indent=2, ensure_ascii=False, default=str) + "\n",
                            encoding="utf-8")
        print(f"Wrote {args.out}.", file=sys.stderr)
    return EXIT_OK


def _interval(value: Any, low: Any, high: Any, percent: bool = False) -> str:
    if value is None:
        return "—"
    shown = (lambda number: f"{number:.1%}") if percent else (lambda number: f"{number:.3f}")
    return shown(value) if low is None or high is None else f"{shown(value)} [{shown(low)}, {shown(high)}]"


def _change(value: Any) -> str:
    return "—" if value is None else f"{value:+.3f}"


def format_table(block: Any) -> str:
    """The audit's summary table (core.audit.report.summary_table) as aligned plain text."""
    from core.audit.report import summary_table

    header = ("perturbation", "items", "flips", "flip rate [95% CI]", "kappa vs unperturbed [95% CI]",
              "Δ exact vs people", "Δ kappa vs people", "note")
    lines = [header]
    for row in summary_table(block):
        lines.append((str(row["perturbation"]), str(row["n_items"]), str(row["flips"]),
                      _interval(row["flip_rate"], row["flip_ci_low"], row["flip_ci_high"], percent=True),
                      _interval(row["kappa"], row["kappa_ci_low"], row["kappa_ci_high"]),
                      _change(row["human_exact_change"]), _change(row["human_kappa_change"]),
                      str(row["note"] or (f"{row['n_unscored']} without a score" if row["n_unscored"] else ""))))
    widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
                     for line in lines)


def _fail(code: int, message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code
