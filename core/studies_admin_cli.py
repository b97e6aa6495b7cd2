"""`python -m core edit-study | queue-order | duplicate-study | archive-study | unarchive-study | delete-study | items |
remove-item | restore-item | progress`: run a study from the command line, as a named admin (`--as ADMIN`).

The same actions as the web app's Manage tab (core.studies.admin): each checks in the database that the named
user is an admin now. Exit codes: 0 done; 1 refused (not an admin, a locked setting, a wrong confirmation ...);
2 unusable options or an unknown user.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.errors import GliderError

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2


def register(subparsers: Any) -> None:
    """Add the study administration sub-commands to the `python -m core` parser."""
    from core.studies.items_browser import STATES
    from core.studies.queue_order import ORDERS

    def command(name: str, text: str, run: Callable[[Any, Any, argparse.Namespace], int],
                target: str = "study_id") -> argparse.ArgumentParser:
        parser = subparsers.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        if target == "study_id":
            parser.add_argument("study_id", type=int, metavar="STUDY_ID", help="the study's number (#N in the app)")
        else:
            parser.add_argument("item_id", type=int, metavar="ITEM_ID", help="the item's number (#N in the app)")
        parser.add_argument("--as", dest="username", required=True, metavar="ADMIN", help="the admin acting")
        parser.add_argument("--db", default=None,
                            help="SQLAlchemy URL (env GLIDER_DB; default a SQLite file in GLIDER_DATA_DIR or ./data)")
        parser.set_defaults(run=lambda args: _run(args, run))
        return parser

    edit = command("edit-study", "change a study's name, description, guidelines or (before any label) its "
                                 "pass criteria, rubric and blind mode", _edit)
    edit.add_argument("--name")
    edit.add_argument("--description")
    edit.add_argument("--guidelines-file", metavar="PATH", help="Markdown guidelines for annotators ('-': stdin)")
    edit.add_argument("--pass-criteria")
    edit.add_argument("--rubric-file", metavar="PATH", help="the rubric as text ('-': stdin)")
    edit.add_argument("--blind", dest="blind", action="store_true", default=None)
    edit.add_argument("--not-blind", dest="blind", action="store_false")
    edit.add_argument("--overlap", type=int, metavar="K", help="annotators per item")
    order = command("queue-order", "set a study's queue order: random (unbiased agreement) or least-confident "
                                   "judgment first; prints every change so far", _queue_order)
    order.add_argument("--order", choices=ORDERS, required=True,
                       help="random: unbiased agreement numbers; uncertainty: people label first where the judge is "
                            "least sure (agreement on those items is biased toward hard items)")
    order.add_argument("--random-first", type=int, metavar="N",
                       help="with --order uncertainty: the first N items handed out still come at random")
    duplicate = command("duplicate-study", "copy a study's settings and items (no labels) into a new study",
                        _duplicate)
    duplicate.add_argument("--name", help="the new study's name (default: the old one with ' (copy)')")
    command("archive-study", "hide a study from annotators and stop its labelling; everything is kept",
            lambda admin, actor, args: _archive(admin, actor, args, True))
    command("unarchive-study", "open an archived study to annotators again",
            lambda admin, actor, args: _archive(admin, actor, args, False))
    delete = command("delete-study", "delete an archived study with its items and labels (export it first)",
                     _delete)
    delete.add_argument("--confirm", required=True, metavar="NAME", help="the study's exact name")
    items = command("items", "list a study's items with their labelling state", _items)
    items.add_argument("--state", choices=STATES, help="only items in this state")
    items.add_argument("--search", default="", help="text in a field or the external id, or an item number")
    items.add_argument("--json", action="store_true", help="one JSON object per line")
    command("remove-item", "take an item out of the labelling queue and the report (its labels stay in exports)",
            lambda admin, actor, args: _remove(admin, actor, args, True), target="item_id")
    command("restore-item", "put a removed item back", lambda admin, actor, args: _remove(admin, actor, args, False),
            target="item_id")
    progress = command("progress", "per-annotator progress in a study", _progress)
    progress.add_argument("--json", action="store_true", help="one JSON object per line")


def _run(args: argparse.Namespace, action: Callable[[Any, Any, argparse.Namespace], int]) -> int:
    from core.settings import default_db_url
    from core.store import Store
    from core.studies import Studies

    try:
        with Store(args.db or default_db_url()) as store:
            studies = Studies(store)
            actor = studies.get_user(args.username)
            if actor is None:
                return _fail(EXIT_USAGE, f"There is no user {args.username!r} in {store.url}.")
            return action(studies.admin, actor, args)
    except OSError as error:
        return _fail(EXIT_USAGE, str(error))
    except GliderError as error:
        return _fail(EXIT_REFUSED, str(error))


def _read(path: str | None) -> str | None:
    if path is None:
        return None
    return sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")


def _edit(admin: Any, actor: Any, args: argparse.Namespace) -> int:
    study = admin.update_study(actor, args.study_id, name=args.name, description=args.description,
                               guidelines=_read(args.guidelines_file), pass_criteria=args.pass_criteria,
                               rubric=_read(args.rubric_file), blind=args.blind, overlap_target=args.overlap)
    print(f"Study #{study.id} {study.name!r}: saved (scale {study.scale[0]}-{study.scale[1]}, "
          f"{'blind' if study.blind else 'not blind'}, {study.overlap_target} annotator(s) per item, "
          f"{len(study.guidelines)} characters of guidelines).")
    return EXIT_OK


def _queue_order(admin: Any, actor: Any, args: argparse.Namespace) -> int:
    study = admin.set_queue_order(actor, args.study_id, args.order, args.random_first)
    first = f", the first {study.random_first} item(s) at random" if study.queue_order == "uncertainty" else ""
    print(f"Study #{study.id} {study.name!r}: queue order {study.queue_order}{first}. Items already handed out keep "
          "how they were drawn.")
    for change in admin.queue_order_history(actor, study.id):
        said = ", ".join(f"{key} {old} -> {new}" for key, (old, new) in change.changes.items())
        print(f"  {change.at.isoformat(timespec='seconds')} {change.editor}: {said}")
    return EXIT_OK


def _duplicate(admin: Any, actor: Any, args: argparse.Namespace) -> int:
    study = admin.duplicate_study(actor, args.study_id, args.name)
    print(f"Created study #{study.id} {study.name!r}, a copy of #{args.study_id} without labels or verdicts.")
    return EXIT_OK


def _archive(admin: Any, actor: Any, args: argparse.Namespace, archived: bool) -> int:
    study = admin.set_archived(actor, args.study_id, archived)
    print(f"Study #{study.id} {study.name!r} is " + ("archived: hidden from annotators, nothing deleted."
                                                     if archived else "open to annotators again."))
    return EXIT_OK


def _delete(admin: Any, actor: Any, args: argparse.Namespace) -> int:
    gone = admin.delete_study(actor, args.study_id, args.confirm)
    print(f"Deleted study #{gone.study_id} {gone.name!r}: {gone.items} item(s) and {gone.labels} label(s).")
    return EXIT_OK


def _items(admin: Any, actor: Any, args: argparse.Namespace) -> int:
    found = admin.browse_items(actor, args.study_id, state=args.state, search=args.search)
    for item in found:
        if args.json:
            print(json.dumps({"item_id": item.id, "external_id": item.external_id, "labels": item.labels,
                              "scores": list(item.scores), "judge_score": item.judge_score,
                              "judge_status": item.judge_status, "removed": item.removed,
                              "states": sorted(item.states), "preview": item.preview}, ensure_ascii=False))
        else:
            scores = ",".join(map(str, item.scores)) or "-"
            judge = "-" if item.judge_status is None else str(item.judge_score if item.judge_score is not None
                                                                 else item.judge_status)
            print(f"#{item.id}\t{item.external_id or ''}\tlabels {scores}\tjudge {judge}\t"
                  f"{'; '.join(sorted(item.states))}\t{item.preview[:60]}")
    print(f"{len(found)} item(s).", file=sys.stderr)
    return EXIT_OK


def _remove(admin: Any, actor: Any, args: argparse.Namespace, removed: bool) -> int:
    item = admin.set_item_removed(actor, args.item_id, removed)
    print(f"Item #{item.id} " + ("removed: out of the labelling queue and the report; its labels stay in exports."
                                 if removed else "is back in the study."))
    return EXIT_OK


def _progress(admin: Any, actor: Any, args: argparse.Namespace) -> int:
    for row in admin.annotator_progress(actor, args.study_id):
        last = row.last_active.isoformat(timespec="seconds") if row.last_active else None
        if args.json:
            print(json.dumps({"annotator": row.username, "role": row.role, "active": row.active,
                              "labelled": row.labelled, "assigned": row.assigned,
                              "median_seconds": row.median_seconds, "last_active": last,
                              "changed_at_reveal": row.changed_at_reveal, "edited": row.edited}))
        else:
            median = "-" if row.median_seconds is None else f"{row.median_seconds:.1f} s"
            print(f"{row.username}\t{row.labelled}/{row.assigned}\tmedian {median}\tlast active {last or '-'}\t"
                  f"changed at reveal {row.changed_at_reveal}\tedited {row.edited}")
    return EXIT_OK


def _fail(code: int, message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code
