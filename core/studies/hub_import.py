"""Items for a study from a Hugging Face dataset repo: one of its data files, columns mapped as for a CSV import.

The file (CSV, TSV, JSON Lines, JSON or Parquet) is downloaded with huggingface_hub's hf_hub_download, a
Parquet file is turned into JSON Lines, and the rows go through Studies.import_items (core.studies.imports):
the same column mapping, checks, duplicate detection and row report as a file uploaded in the Studies tab.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from core.accounts import User, require_admin
from core.errors import StudyInputError
from core.hub_dataset import HubError, check_repo_id
from core.studies.service import Studies
from core.studies.types import ImportReport


def parquet_to_jsonl(path: str | Path, target: str | Path) -> Path:
    """The rows of a Parquet file as JSON Lines (values as JSON has them; other values as text)."""
    import pyarrow.parquet as pq  # heavy; only needed here

    try:
        rows = pq.read_table(path).to_pylist()
    except (OSError, ValueError) as error:
        raise StudyInputError(f"Could not read the Parquet file {Path(path).name}: {error}") from error
    target = Path(target)
    target.write_text("".join(json.dumps(row, ensure_ascii=False, default=str) + "\n" for row in rows),
                      encoding="utf-8")
    return target


def import_file_items(studies: Studies, actor: User, study_id: int, path: str | Path, mapping: Mapping[str, str],
                      *, id_column: str | None = None) -> ImportReport:
    """Studies.import_items, with Parquet files read too."""
    path = Path(path)
    if path.suffix.lower() != ".parquet":
        return studies.import_items(actor, study_id, path, mapping, id_column=id_column)
    with tempfile.TemporaryDirectory(prefix="glider-import-") as folder:
        rows = parquet_to_jsonl(path, Path(folder) / f"{path.stem}.jsonl")
        return studies.import_items(actor, study_id, rows, mapping, id_column=id_column)


def import_hub_items(studies: Studies, store: Any, actor: User, study_id: int, repo_id: str, filename: str,
                     mapping: Mapping[str, str], *, id_column: str | None = None, revision: str | None = None,
                     token: str | None = None, endpoint: str | None = None) -> ImportReport:
    """Import the items of `filename` in the dataset repo `repo_id` (admins only; refused before downloading)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    repo_id = check_repo_id(repo_id)
    if not isinstance(filename, str) or not filename.strip():
        raise StudyInputError("Name the data file of the dataset repo to import (e.g. data/train.csv).")
    with store.session("read") as session:
        require_admin(session, actor, "import items")
    with tempfile.TemporaryDirectory(prefix="glider-hub-import-") as folder:  # not kept in a cache
        try:
            path = hf_hub_download(repo_id, filename.strip(), repo_type="dataset", revision=revision,
                                   token=token or None, endpoint=endpoint, local_dir=folder)
        except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as error:
            raise HubError(f"Could not download {filename} from the dataset {repo_id}: {error}") from error
        return import_file_items(studies, actor, study_id, path, mapping, id_column=id_column)
