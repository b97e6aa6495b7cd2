"""`python -m core review STUDY --as REVIEWER`: a study's disagreements, most disputed first;
`python -m core adjudicate STUDY ITEM SCORE --note ... --as REVIEWER`: record an item's adjudicated label.

The same work as the Review tab (core.studies.review), by a named reviewer or admin.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from core.errors import GliderError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
TABLE_HEADERS = ("item", "external id", "human scores", "spread", "consensus", "judge", "|delta|", "confidence",
                 "adjudicated")


def register(subparsers: Any) -> None:
    """Add the `review` and `adjudicate` sub-commands to the `python -m core` parser."""
    from core.settings import default_db_url

    review = subparsers.add_parser(
        "review", help="a study's labelled items by disagreement (reviewers and admins)",
        description=("List the labelled items of study STUDY, most disputed first: --sort judge (default) by "
                     "|human consensus - judge|, the judge's confidence in its score breaking ties (confident and "
                     "wrong first); --sort humans by the spread of the annotators' scores. The consensus is the "
                     "median human score (of an even count, the two middle ones averaged, halves rounded up)."),
    )
    review.add_argument("study_id", type=int, metavar="STUDY", help="the study's number (#N in the Studies tab)")
    review.add_argument("--sort", choices=("judge", "humans"), default="judge", help="default: %(default)s")
    review.add_argument("--as", dest="username", required=True, metavar="REVIEWER",
                        help="a reviewer or admin (the list shows every annotator's labels)")
    review.add_argument("--db", default=default_db_url(),
                        help="SQLAlchemy URL of the app's database (env GLIDER_DB; default as the app)")
    review.set_defaults(run=run_review)

    settle = subparsers.add_parser(
        "adjudicate", help="record an item's adjudicated label (reviewers and admins)",
        description=("Record SCORE as the adjudicated label of item ITEM of study STUDY, with a note. The newest "
                     "adjudication of an item counts; older ones stay in its history. No annotator's label changes."),
    )
    settle.add_argument("study_id", type=int, metavar="STUDY", help="the study's number")
    settle.add_argument("item_id", type=int, metavar="ITEM", help="the item's number (the review list's item)")
    settle.add_argument("score", type=int, metavar="SCORE", help="a score on the study's scale")
    settle.add_argument("--note", default="", help="why (kept with the label; may be empty)")
    settle.add_argument("--as", dest="username", required=True, metavar="REVIEWER", help="a reviewer or admin")
    settle.add_argument("--db", default=default_db_url(),
                        help="SQLAlchemy URL of the app's database (env GLIDER_DB; default as the app)")
    settle.set_defaults(run=run_adjudicate)


def _fail(code: int, message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def run_review(args: argparse.Namespace) -> int:
    """Print the review table; 0 when done, 2 for an unknown user or study or a user who may not review."""
    from core.accounts import Accounts
    from core.store import Store
    from core.studies.review import Reviews

    try:
        store = Store(args.db)
    except GliderError as error:
        return _fail(EXIT_FAILED, str(error))
    with store:
        actor = Accounts(store).get_user(args.username)
        if actor is None:
            return _fail(EXIT_USAGE, f"There is no user {args.username!r} in {store.url}.")
        try:
            items = Reviews(store).review_list(actor, args.study_id, args.sort)
        except GliderError as error:
            return _fail(EXIT_USAGE, str(error))
    if not items:
        print("Nobody has labelled an item of this study yet.")
        return EXIT_OK
    print(table(items))
    return EXIT_OK


def table(items: list[Any]) -> str:
    """The review list as a plain-text table, one line per item."""
    rows = [TABLE_HEADERS]
    for item in items:
        settled = item.adjudication
        rows.append((
            str(item.item_id), item.external_id or "", " ".join(str(label.score) for label in item.labels),
            str(item.spread), "" if item.consensus is None else str(item.consensus),
            "" if item.judge_score is None else str(item.judge_score),
            "" if item.delta is None else str(item.delta),
            "" if item.judge_confidence is None else f"{item.judge_confidence:.2f}",
            "" if settled is None else f"{settled.score} by {settled.reviewer}",
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(TABLE_HEADERS))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
                     for row in rows)


def run_adjudicate(args: argparse.Namespace) -> int:
    """Record the adjudicated label; 0 when done, 2 for bad input or a user who may not adjudicate."""
    from core.accounts import Accounts
    from core.store import Store
    from core.studies.review import Reviews

    try:
        store = Store(args.db)
    except GliderError as error:
        return _fail(EXIT_FAILED, str(error))
    with store:
        actor = Accounts(store).get_user(args.username)
        if actor is None:
            return _fail(EXIT_USAGE, f"There is no user {args.username!r} in {store.url}.")
        reviews = Reviews(store)
        try:
            item = reviews.review_item(actor, args.item_id)
            if item.study_id != args.study_id:
                return _fail(EXIT_USAGE, f"Item {args.item_id} belongs to study {item.study_id}, not to study "
                                         f"{args.study_id}.")
            settled = reviews.adjudicate(actor, args.item_id, args.score, args.note)
        except GliderError as error:
            return _fail(EXIT_USAGE, str(error))
    print(f"Item {settled.item_id} of study {settled.study_id}: adjudicated score {settled.score} by "
          f"{settled.reviewer!r} at {settled.at.isoformat(timespec='seconds')}.")
    return EXIT_OK
