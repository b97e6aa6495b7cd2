"""Continuous backup of every study to a private dataset repo (huggingface_hub's CommitScheduler).

For a Space without a storage bucket: with GLIDER_BACKUP_REPO=owner/name set, every `every` minutes each
study is exported (core.studies.dataset, real usernames, so `reopen-study` gives the labels back to the same
people) into study-N/ of a local folder, and the files that changed are committed to the repo, which is
created private. A restart then loses at most the last few minutes of labels. This is the server's own
configuration, not a user's action: it runs without an actor, like the database owner's CLI commands.
"""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import select

from core.hub_dataset import check_repo_id
from core.store import Store
from core.studies import dataset
from core.studies.audits import latest_in
from core.studies.card import dataset_card
from core.studies.rows import StudyRow

BACKUP_REPO_ENV, BACKUP_MINUTES_ENV = "GLIDER_BACKUP_REPO", "GLIDER_BACKUP_MINUTES"
_EXPORTING = threading.Lock()  # one export at a time into a backup folder


def export_all(store: Store, folder: str | Path) -> list[Path]:
    """Write every study into folder/study-N/ (its tables, every judge run included, study.json, the newest
    audit's audit.json and the card; no report: it is recomputed on reopening); the study folders written."""
    written = []
    with store.session("read") as session:
        studies = list(session.scalars(select(StudyRow).order_by(StudyRow.id)))
        everything = [(dataset.read_tables(session, study, real_names=True), latest_in(session, study.id))
                      for study in studies]
    for tables, kept in everything:
        target = Path(folder) / f"study-{tables.study['study_id']}"
        counts = {name: len(rows) for name, rows in tables.tables.items()}
        files = [f"{name}.parquet" for name, rows in tables.tables.items() if rows or name not in dataset.OPTIONAL]
        audit = kept.block() if kept is not None else None  # the newest robustness audit's summary (audit.json)
        files += [dataset.AUDIT_FILE] * (audit is not None)
        dataset.write_folder(tables, target, report=None, report_html=None, audit=audit,
                             card=dataset_card(tables.study, counts, None, files=files, audit=audit))
        written.append(target)
    return written


def start_backup(store: Store, repo_id: str, *, every: float = 5, token: str | None = None,
                 folder: str | Path | None = None, endpoint: str | None = None) -> Any:
    """Start the scheduled backup (a huggingface_hub CommitScheduler; its first push starts at once); returns it."""
    from huggingface_hub import CommitScheduler, HfApi

    class StudyBackup(CommitScheduler):
        def push_to_hub(self) -> Any:
            with _EXPORTING:
                export_all(store, self.folder_path)
                return super().push_to_hub()

    local = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="glider-backup-"))
    local.mkdir(parents=True, exist_ok=True)
    return StudyBackup(repo_id=check_repo_id(repo_id), folder_path=local, every=every, repo_type="dataset",
                       private=True, token=token, hf_api=HfApi(endpoint=endpoint, token=token))


def backup_from_env(store: Store) -> Any | None:
    """start_backup when GLIDER_BACKUP_REPO is set (every GLIDER_BACKUP_MINUTES, default 5; HF_TOKEN); else None."""
    repo = os.environ.get(BACKUP_REPO_ENV, "").strip()
    if not repo:
        return None
    return start_backup(store, repo, every=float(os.environ.get(BACKUP_MINUTES_ENV) or 5))
