"""`python -m core publish STUDY_ID --repo OWNER/NAME`, `reopen-study SOURCE` and `import-hub STUDY_ID OWNER/NAME`.

publish: the study as a Hugging Face dataset (core.studies.publish): Parquet tables, the agreement report and
a dataset card, uploaded as one commit with HF_TOKEN (or a saved `hf auth login`); `--out DIR` only writes the
folder. reopen-study: a new study from a published one (a folder, or a dataset repo id). import-hub: items
from a data file of a dataset repo. All act as a named admin (`--as ADMIN`). Exit codes: 0 done;
1 refused (not an admin, the Hub said no, not a published study); 2 unusable options or an unknown user.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from core.errors import GliderError

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2


def register(subparsers: Any) -> None:
    """Add the `publish` and `reopen-study` sub-commands to the `python -m core` parser."""
    publish = subparsers.add_parser(
        "publish", help="publish a study to the Hugging Face Hub as a dataset (Parquet, report, dataset card)",
        description="Publish a study as a Hugging Face dataset repo: items, labels with their edit history, the "
                    "judge's judgments with their reproducibility record, adjudications, the agreement report and "
                    "a dataset card. Publishing again makes a new commit that replaces the files (no duplicate "
                    "rows). Uses HF_TOKEN (or the token saved by `hf auth login`).")
    publish.add_argument("study_id", type=int, metavar="STUDY_ID", help="the study's number (#N in the app)")
    publish.add_argument("--repo", metavar="OWNER/NAME", help="the dataset repo (created if needed)")
    publish.add_argument("--private", action="store_true", help="create the repo private (an existing repo keeps "
                                                                 "its visibility)")
    publish.add_argument("--real-names", action="store_true",
                         help="name annotators by their usernames (default: annotator-1, annotator-2, ...)")
    publish.add_argument("--out", metavar="DIR", help="only write the dataset folder here; upload nothing")
    _common(publish)
    publish.set_defaults(run=_publish)

    reopen = subparsers.add_parser(
        "reopen-study", help="create a study from a published one (a dataset folder or a Hub dataset repo)",
        description="Create a new study from a study published with `publish`: items, judgments, labels with "
                    "their edit history and adjudications. SOURCE is the dataset folder, or OWNER/NAME of the "
                    "dataset repo (downloaded with HF_TOKEN). Annotators unknown to this database become "
                    "deactivated accounts with the dataset's names.")
    reopen.add_argument("source", metavar="SOURCE", help="a dataset folder, or OWNER/NAME on the Hub")
    reopen.add_argument("--name", help="the new study's name (default: the published name with ' (reopened)')")
    _common(reopen)
    reopen.set_defaults(run=_reopen)

    hub = subparsers.add_parser(
        "import-hub", help="add items to a study from a data file of a Hugging Face dataset repo",
        description="Download one data file (CSV, TSV, JSON Lines, JSON or Parquet) of a dataset repo and import "
                    "its rows as the study's items, columns mapped to field tags as in the Studies tab's import.")
    hub.add_argument("study_id", type=int, metavar="STUDY_ID", help="the study's number (#N in the app)")
    hub.add_argument("repo", metavar="OWNER/NAME", help="the dataset repo")
    hub.add_argument("--file", required=True, metavar="PATH", help="the data file in the repo, e.g. data/test.csv")
    hub.add_argument("--map", action="append", type=_pair, default=[], metavar="TAG=COLUMN", required=True,
                     help="a field tag and the column that fills it (repeat for each tag)")
    hub.add_argument("--id-column", metavar="COLUMN", help="the column with each row's own id")
    hub.add_argument("--revision", help="a branch, tag or commit of the repo (default: main)")
    _common(hub)
    hub.set_defaults(run=_import_hub)


def _pair(text: str) -> tuple[str, str]:
    tag, sep, column = text.partition("=")
    if not sep or not tag.strip() or not column.strip():
        raise argparse.ArgumentTypeError(f"expected TAG=COLUMN (got {text!r})")
    return tag.strip(), column.strip()


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--as", dest="username", required=True, metavar="ADMIN", help="the admin acting")
    parser.add_argument("--db", default=None,
                        help="SQLAlchemy URL (env GLIDER_DB; default a SQLite file in GLIDER_DATA_DIR or ./data)")


def _run(args: argparse.Namespace, action: Any) -> int:
    from core.settings import default_db_url
    from core.store import Store
    from core.studies import Studies

    try:
        with Store(args.db or default_db_url()) as store:
            actor = Studies(store).get_user(args.username)
            if actor is None:
                return _fail(EXIT_USAGE, f"There is no user {args.username!r} in {store.url}.")
            return int(action(store, actor))
    except OSError as error:
        return _fail(EXIT_USAGE, str(error))
    except GliderError as error:
        return _fail(EXIT_REFUSED, str(error))


def _publish(args: argparse.Namespace) -> int:
    from core.studies.publish import export_study, publish_study

    if not args.out and not args.repo:
        return _fail(EXIT_USAGE, "Name the dataset repo with --repo OWNER/NAME (or write the folder with --out DIR).")

    def action(store: Any, actor: Any) -> int:
        if args.out:
            done = export_study(store, actor, args.study_id, args.out, real_names=args.real_names,
                                repo_id=args.repo)
            print(f"Wrote study #{args.study_id} to {args.out}: " + ", ".join(
                f"{n} {name}" for name, n in done.counts.items()) + ".")
            return EXIT_OK
        published, done = publish_study(store, actor, args.study_id, args.repo, private=args.private,
                                        real_names=args.real_names)
        print(f"Published study #{args.study_id} to {published.url} (commit {published.commit_oid[:12]}): "
              + ", ".join(f"{n} {name}" for name, n in done.counts.items()) + ".")
        return EXIT_OK

    return _run(args, action)


def _reopen(args: argparse.Namespace) -> int:
    from core.studies.publish import reopen_study

    def action(store: Any, actor: Any) -> int:
        study = reopen_study(store, actor, args.source, name=args.name)
        print(f"Created study #{study.id} {study.name!r} from {args.source}.")
        return EXIT_OK

    return _run(args, action)


def _import_hub(args: argparse.Namespace) -> int:
    from core.studies import Studies
    from core.studies.hub_import import import_hub_items

    def action(store: Any, actor: Any) -> int:
        report = import_hub_items(Studies(store), store, actor, args.study_id, args.repo, args.file,
                                  dict(args.map), id_column=args.id_column, revision=args.revision)
        for error in report.errors:
            print(f"row {error.row}: {error.message}", file=sys.stderr)
        print(f"Imported {report.added} item(s) into study #{args.study_id} from {args.repo}/{args.file}.")
        return EXIT_OK

    return _run(args, action)


def _fail(code: int, message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code
