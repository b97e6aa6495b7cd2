"""Storage on a Space (core.storage, core.settings, core.store): which SQLite settings a file gets, whether the
data survives a restart, and the pragmas actually in effect on real SQLite files.

The choice is tested with fake environments and fake mount tables (/proc/mounts format); the pragmas on
real files opened by Store. SQLite only, every test: they are about a SQLite file as such (its folder, journal
mode, locking mode, GLIDER_DATA_DIR); what holds on PostgreSQL too is tested on both in tests/test_store.py.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from core.errors import StorageError
from core.judgments import Judgments
from core.settings import default_data_dir, default_db_url
from core.storage import (
    Mount,
    bucket_mount,
    mount_of,
    on_volume,
    parse_mounts,
    sqlite_mode,
    storage_status,
)
from core.store import Store
from tests.test_judgments import make_result

SPACE = {"SPACE_ID": "team/glider"}
# A Space's container with a bucket mounted at /data (the bucket's file system type is whatever Spaces use).
SPACE_MOUNTS = parse_mounts(
    "overlay / overlay rw,relatime 0 0\n"
    "tmpfs /dev tmpfs rw,nosuid 0 0\n"
    "tmpfs /tmp tmpfs rw 0 0\n"
    "hf-bucket /data fuse.hf-mount rw,nosuid,nodev 0 0\n"
    "hf-bucket /mnt/my\\040bucket fuse rw 0 0\n"
)
NO_BUCKET = parse_mounts("overlay / overlay rw 0 0\ntmpfs /tmp tmpfs rw 0 0\n")


def _pragmas(store: Store) -> dict[str, object]:
    with store.session("read") as session:
        return {name: session.execute(text(f"PRAGMA {name}")).scalar()
                for name in ("journal_mode", "locking_mode", "mmap_size")}


# ---- the mount table and the choice


def test_parse_mounts_reads_points_types_and_escaped_spaces() -> None:
    assert Mount(Path("/data"), "fuse.hf-mount") in SPACE_MOUNTS
    assert Mount(Path("/mnt/my bucket"), "fuse") in SPACE_MOUNTS


@pytest.mark.parametrize(("path", "expected"), [
    ("/data/glider-studio/glider-studio.db", True),
    ("/data", True),
    ("/mnt/my bucket/x.db", True),
    ("/home/user/app/data/glider-studio.db", False),  # the container's own disk (mounted at /)
    ("/tmp/glider.db", False),  # in memory
    ("/database/x.db", False),  # /data is not a prefix of /database
])
def test_on_volume_by_the_deepest_mount(path: str, expected: bool) -> None:
    assert on_volume(Path(path), SPACE_MOUNTS) is expected


def test_without_a_mount_table_ismount_decides(tmp_path: Path) -> None:
    assert mount_of(tmp_path / "x.db", None) is not None  # some folder above it is a mount point (at least /)
    assert on_volume(Path("/"), None) is False


@pytest.mark.parametrize(("env", "path", "mounts", "mode"), [
    (SPACE, "/data/glider-studio/glider-studio.db", SPACE_MOUNTS, "volume"),
    (SPACE, "/home/user/app/data/glider-studio.db", SPACE_MOUNTS, "wal"),
    (SPACE, "/data/glider-studio/glider-studio.db", NO_BUCKET, "wal"),  # /data exists but is not mounted
    ({}, "/data/glider-studio/glider-studio.db", SPACE_MOUNTS, "wal"),  # locally nothing changes
    ({**SPACE, "GLIDER_SQLITE_MODE": "wal"}, "/data/x.db", SPACE_MOUNTS, "wal"),
    ({"GLIDER_SQLITE_MODE": "volume"}, "/home/x.db", NO_BUCKET, "volume"),  # e.g. NFS at home
])
def test_sqlite_mode_choice(env: dict[str, str], path: str, mounts: list[Mount], mode: str) -> None:
    chosen, why = sqlite_mode(Path(path), env, mounts)
    assert chosen == mode and why


def test_sqlite_mode_refuses_an_unknown_setting() -> None:
    with pytest.raises(ValueError, match="GLIDER_SQLITE_MODE must be one of auto, wal, volume"):
        sqlite_mode(Path("/x.db"), {"GLIDER_SQLITE_MODE": "fast"}, [])


def test_storage_status_per_case() -> None:
    kept = storage_status(Path("/data/glider-studio/glider-studio.db"), "sqlite", SPACE, SPACE_MOUNTS)
    assert kept.persistent and not kept.warn and kept.advice == "" and "/data" in kept.reason
    lost = storage_status(Path("/home/user/app/data/glider-studio.db"), "sqlite", SPACE, SPACE_MOUNTS)
    assert not lost.persistent and lost.warn
    assert "wiped at every restart" in lost.advice and "Storage Bucket" in lost.advice and "/data" in lost.advice
    assert "publish" in lost.advice and "\n" not in lost.advice  # one line, with both ways out
    assert "/custom" in storage_status(Path("/x.db"), "sqlite", {**SPACE, "GLIDER_BUCKET_MOUNT": "/custom"},
                                       NO_BUCKET).advice
    assert storage_status(None, "sqlite", SPACE, SPACE_MOUNTS).warn  # in memory on a Space
    postgres = storage_status(None, "postgresql", SPACE, NO_BUCKET)
    assert postgres.persistent and not postgres.warn
    local = storage_status(Path("/home/me/data/glider-studio.db"), "sqlite", {}, NO_BUCKET)
    assert local.persistent and not local.warn


# ---- settings: where the data directory is


def test_data_dir_on_a_space_uses_the_bucket_mount(tmp_path: Path) -> None:
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    env = {**SPACE, "GLIDER_BUCKET_MOUNT": str(bucket)}
    assert bucket_mount(env) == bucket and bucket_mount({}) == Path("/data")
    assert default_data_dir(env) == bucket / "glider-studio"
    assert default_db_url(env) == f"sqlite:///{bucket / 'glider-studio' / 'glider-studio.db'}"
    assert default_data_dir({"GLIDER_BUCKET_MOUNT": str(bucket)}) == Path.cwd() / "data"  # not on a Space
    assert default_data_dir({**SPACE, "GLIDER_BUCKET_MOUNT": str(tmp_path / "none")}) == Path.cwd() / "data"
    assert default_data_dir({**env, "GLIDER_DATA_DIR": str(tmp_path / "d")}) == tmp_path / "d"


# ---- the pragmas in effect on real files


def test_local_file_keeps_wal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.delenv("GLIDER_SQLITE_MODE", raising=False)
    with Store.from_path(tmp_path / "local.db") as store:
        assert store.sqlite_mode == "wal"
        assert _pragmas(store) == {"journal_mode": "wal", "locking_mode": "normal", "mmap_size": 0}


def test_volume_file_runs_delete_exclusive_no_mmap(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "bucket" / "glider.db"
    with caplog.at_level(logging.INFO, logger="core.store"), Store.from_path(path, sqlite_mode="volume") as store:
        assert store.sqlite_mode == "volume"
        assert _pragmas(store) == {"journal_mode": "delete", "locking_mode": "exclusive", "mmap_size": 0}
        judgments = Judgments(store)
        # One connection behind one lock: writers on several threads queue instead of failing.
        errors: list[BaseException] = []

        def write() -> None:
            try:
                for _ in range(5):
                    judgments.save_grade(make_result())
            except BaseException as error:  # noqa: BLE001 - reported below
                errors.append(error)

        threads = [threading.Thread(target=write) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == [] and judgments.count() == 20
    assert "journal_mode=DELETE, locking_mode=EXCLUSIVE, mmap_size=0" in caplog.text
    assert not (path.parent / "glider.db-wal").exists()
    with Store.from_path(path, sqlite_mode="volume") as reopened:  # the data is in the main file, reopened
        assert Judgments(reopened).count() == 20


def test_the_environment_chooses_volume_mode_on_a_space(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SPACE_ID plus a file on a mount: Store picks the volume settings itself (the mount table is faked)."""
    monkeypatch.setenv("SPACE_ID", "team/glider")
    monkeypatch.delenv("GLIDER_SQLITE_MODE", raising=False)
    fake = [Mount(Path("/"), "overlay"), Mount(tmp_path.resolve(), "fuse.hf-mount")]
    monkeypatch.setattr("core.storage.read_mounts", lambda *_: fake)
    with Store.from_path(tmp_path / "glider.db") as store:
        assert store.sqlite_mode == "volume" and _pragmas(store)["journal_mode"] == "delete"
    fake[1] = Mount(tmp_path.resolve(), "tmpfs")  # a RAM disk is no volume
    with Store.from_path(tmp_path / "other.db") as store:
        assert store.sqlite_mode == "wal" and _pragmas(store)["journal_mode"] == "wal"


def test_bad_sqlite_mode_is_a_storage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLIDER_SQLITE_MODE", "fast")
    with pytest.raises(StorageError, match="GLIDER_SQLITE_MODE"):
        Store.from_path(tmp_path / "x.db")


def test_any_sqlalchemy_url_still_works_in_memory() -> None:
    with Store("sqlite://") as store:
        assert store.sqlite_path is None and store.sqlite_mode is None and store.backend == "sqlite"
