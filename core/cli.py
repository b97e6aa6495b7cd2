"""`python -m core COMMAND`: the command line of GLIDER Studio's core (no web UI needed)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser; each command module adds its own sub-command."""
    from core import (
        agreement_cli,
        audit_cli,
        compare_cli,
        grade_cli,
        people_cli,
        publish_cli,
        review_cli,
        runs_cli,
        studies_admin_cli,
        studies_cli,
        study_grading_cli,
    )

    parser = argparse.ArgumentParser(prog="python -m core", description="GLIDER Studio command line.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    agreement_cli.register(commands)
    grade_cli.register(commands)
    compare_cli.register(commands)
    studies_cli.register(commands)
    people_cli.register(commands)
    study_grading_cli.register(commands)
    studies_admin_cli.register(commands)
    review_cli.register(commands)
    publish_cli.register(commands)
    audit_cli.register(commands)
    runs_cli.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the process exit code."""
    args = build_parser().parse_args(argv)
    return int(args.run(args))
