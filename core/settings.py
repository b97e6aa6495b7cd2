"""Where GLIDER Studio keeps its data, read from the environment (no side effects on import)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from sqlalchemy.engine import URL

DB_FILENAME = "glider-studio.db"
# Hugging Face Spaces mounts paid persistent storage at /data; everything else there is wiped on restart.
SPACES_PERSISTENT_DIR = Path("/data")


def _on_spaces_with_storage(env: Mapping[str, str], persistent_dir: Path) -> bool:
    """True on a Hugging Face Space whose persistent storage is mounted and writable."""
    return bool(env.get("SPACE_ID")) and persistent_dir.is_dir() and os.access(persistent_dir, os.W_OK | os.X_OK)


def default_data_dir(
    env: Mapping[str, str] | None = None, persistent_dir: Path = SPACES_PERSISTENT_DIR
) -> Path:
    """GLIDER_DATA_DIR if set; else /data/glider-studio on a Space with persistent storage; else ./data."""
    env = os.environ if env is None else env
    if configured := env.get("GLIDER_DATA_DIR", "").strip():
        return Path(configured).expanduser()
    if _on_spaces_with_storage(env, persistent_dir):
        return persistent_dir / "glider-studio"
    return Path.cwd() / "data"


def default_db_url(env: Mapping[str, str] | None = None, persistent_dir: Path = SPACES_PERSISTENT_DIR) -> str:
    """GLIDER_DB (any SQLAlchemy URL) if set; else a SQLite file in the default data directory."""
    env = os.environ if env is None else env
    if configured := env.get("GLIDER_DB", "").strip():
        return configured
    path = default_data_dir(env, persistent_dir) / DB_FILENAME
    # URL.create, not an f-string: a path containing '?' or '#' would otherwise be misread as a query.
    return URL.create("sqlite", database=str(path)).render_as_string(hide_password=False)
