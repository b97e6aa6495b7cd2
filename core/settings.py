"""Where GLIDER Studio keeps its data, read from the environment (no side effects on import)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from sqlalchemy.engine import URL

from core.storage import bucket_mount

DB_FILENAME = "glider-studio.db"
# A Space keeps data across restarts only on a Storage Bucket mounted as a volume (at /data unless
# GLIDER_BUCKET_MOUNT says otherwise); everything else there is wiped on restart (core.storage).
SPACES_PERSISTENT_DIR = Path("/data")


def _on_spaces_with_storage(env: Mapping[str, str], persistent_dir: Path) -> bool:
    """True on a Hugging Face Space whose bucket volume folder is there and writable."""
    return bool(env.get("SPACE_ID")) and persistent_dir.is_dir() and os.access(persistent_dir, os.W_OK | os.X_OK)


def default_data_dir(
    env: Mapping[str, str] | None = None, persistent_dir: Path | None = None
) -> Path:
    """GLIDER_DATA_DIR if set; else <bucket mount>/glider-studio on a Space with a writable bucket folder; else ./data.

    The bucket mount is `persistent_dir` when given, else GLIDER_BUCKET_MOUNT, else /data. Whether that folder
    really survives a restart is core.storage.storage_status's question (the banner says so when it does not).
    """
    env = os.environ if env is None else env
    if configured := env.get("GLIDER_DATA_DIR", "").strip():
        return Path(configured).expanduser()
    mount = bucket_mount(env) if persistent_dir is None else persistent_dir
    if _on_spaces_with_storage(env, mount):
        return mount / "glider-studio"
    return Path.cwd() / "data"


def default_db_url(env: Mapping[str, str] | None = None, persistent_dir: Path | None = None) -> str:
    """GLIDER_DB (any SQLAlchemy URL) if set; else a SQLite file in the default data directory."""
    env = os.environ if env is None else env
    if configured := env.get("GLIDER_DB", "").strip():
        return configured
    path = default_data_dir(env, persistent_dir) / DB_FILENAME
    # URL.create, not an f-string: a path containing '?' or '#' would otherwise be misread as a query.
    return URL.create("sqlite", database=str(path)).render_as_string(hide_password=False)
