"""Whether the data survives a restart, and how SQLite must run where it lives (a Space's bucket volume).

Hugging Face Spaces keep data across restarts only on a Storage Bucket mounted as a volume (by default
at /data; GLIDER_BUCKET_MOUNT names another mount point). Everything else in a Space's container is
wiped when it restarts. This module answers two questions from the environment and the mount table,
with no side effects, so core.settings, core.store and the web app's banner agree:

- `storage_status(...)`: is the database persistent here, and why (shown in the banner and the Studies
  tab when it is not);
- `sqlite_mode(...)`: which SQLite settings the file needs. On a bucket volume (a network/FUSE mount)
  WAL's shared-memory file and memory-mapped I/O are not safe, so SQLite runs there with
  journal_mode=DELETE, locking_mode=EXCLUSIVE, mmap_size=0 and one connection behind one lock (the
  settings trackio uses for SQLite on Space buckets). Everywhere else WAL stays.

How "mounted" is decided, honestly: nothing on a Space says "this volume survives restarts", so a path
counts as on a volume when the deepest mount point containing it (read from /proc/mounts, or
`os.path.ismount` on its folders where /proc/mounts cannot be read) is a separate mount other than `/`
whose file system is not held in memory (tmpfs, ramfs). On a Space that is the attached bucket; a
folder on the container's own disk has `/` as its mount point and counts as not persistent.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

# Where a Space mounts an attached Storage Bucket unless the owner chose another path.
DEFAULT_BUCKET_MOUNT = Path("/data")
BUCKET_MOUNT_ENV = "GLIDER_BUCKET_MOUNT"
# "auto" (the default), "wal" or "volume": forces the SQLite settings, e.g. for a database on NFS at home.
SQLITE_MODE_ENV = "GLIDER_SQLITE_MODE"
SQLITE_MODES = ("auto", "wal", "volume")
MOUNTS_FILE = Path("/proc/mounts")
# File systems held in memory: a mount of one of these is lost at restart like the container's own disk.
_MEMORY_FILE_SYSTEMS = frozenset({"tmpfs", "ramfs", "devtmpfs"})


@dataclass(frozen=True)
class Mount:
    """One line of the mount table: where a file system is mounted and its type."""

    point: Path
    fs_type: str


@dataclass(frozen=True)
class StorageStatus:
    """Whether the database survives a restart here; `reason` says why, `advice` what to do when it does not."""

    persistent: bool
    on_space: bool
    where: str
    reason: str
    mount: Path = DEFAULT_BUCKET_MOUNT  # where a bucket volume is expected (GLIDER_BUCKET_MOUNT)

    @property
    def warn(self) -> bool:
        """Only a Space whose data is lost at restart is worth a warning (a laptop's ./data is kept)."""
        return self.on_space and not self.persistent

    @property
    def advice(self) -> str:
        """One line for the banner: what is lost and how to keep it (empty when nothing needs saying)."""
        if not self.warn:
            return ""
        return (f"Labels and judgments are not kept: {self.reason} Attach a Storage Bucket as a volume at "
                f"{self.mount} (Space settings) and restart, or publish each study to the Hub before the "
                "Space restarts.")


def on_space(env: Mapping[str, str] | None = None) -> bool:
    """True inside a Hugging Face Space (Spaces set SPACE_ID)."""
    env = os.environ if env is None else env
    return bool(env.get("SPACE_ID", "").strip())


def bucket_mount(env: Mapping[str, str] | None = None) -> Path:
    """Where the bucket volume is expected: GLIDER_BUCKET_MOUNT, else /data."""
    env = os.environ if env is None else env
    configured = env.get(BUCKET_MOUNT_ENV, "").strip()
    return Path(configured).expanduser() if configured else DEFAULT_BUCKET_MOUNT


def parse_mounts(text: str) -> list[Mount]:
    """The mount table in /proc/mounts format (device, mount point, type, ...; spaces escaped as \\040)."""
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3:
            point = fields[1].replace("\\040", " ").replace("\\011", "\t").replace("\\134", "\\")
            mounts.append(Mount(Path(point), fields[2]))
    return mounts


def read_mounts(mounts_file: Path = MOUNTS_FILE) -> list[Mount] | None:
    """This machine's mount table, or None where it cannot be read (not Linux)."""
    try:
        return parse_mounts(mounts_file.read_text())
    except OSError:
        return None


def _absolute(path: Path) -> Path:
    # resolve() follows symlinks (a /data link to elsewhere counts where it points); strict=False: it may not exist yet.
    return path.expanduser().resolve(strict=False)


def mount_of(path: Path, mounts: Iterable[Mount] | None) -> Mount | None:
    """The deepest mount containing `path`; with no table, the nearest folder `os.path.ismount` calls one."""
    target = _absolute(path)
    if mounts is None:
        for folder in (target, *target.parents):
            if folder.exists() and os.path.ismount(folder):
                return Mount(folder, "")
        return None
    best: Mount | None = None
    for mount in mounts:
        if (target == mount.point or mount.point in target.parents) and (
                best is None or len(mount.point.parts) >= len(best.point.parts)):
            best = mount  # a later line mounted over an earlier one at the same point wins
    return best


def on_volume(path: Path, mounts: Iterable[Mount] | None) -> bool:
    """Whether `path` lies on a separately mounted, not in-memory file system (on a Space: the bucket)."""
    mount = mount_of(path, mounts)
    return mount is not None and mount.point != Path("/") and mount.fs_type not in _MEMORY_FILE_SYSTEMS


def storage_status(
    sqlite_path: Path | None, backend: str, env: Mapping[str, str] | None = None,
    mounts: Iterable[Mount] | None = None, *, read_table: bool = True,
) -> StorageStatus:
    """Whether a database survives a restart: `sqlite_path` (None for in-memory) for SQLite, else `backend`'s name.

    `mounts` defaults to this machine's table (pass read_table=False to use `os.path.ismount` instead).
    """
    env = os.environ if env is None else env
    space, expected = on_space(env), bucket_mount(env)
    if backend != "sqlite":
        return StorageStatus(True, space, backend, f"the database is an external {backend} server.", expected)
    if sqlite_path is None:
        return StorageStatus(False, space, ":memory:", "the database is in memory.", expected)
    table = (read_mounts() if read_table else None) if mounts is None else list(mounts)
    where = str(sqlite_path)
    if not space:
        return StorageStatus(True, False, where, "a file on this machine.", expected)
    if on_volume(sqlite_path, table):
        mount = mount_of(sqlite_path, table)
        point = mount.point if mount else "?"
        return StorageStatus(True, True, where, f"the file is on the volume mounted at {point}.", expected)
    return StorageStatus(False, True, where,
                         f"the database ({where}) is on the Space's own disk, which is wiped at every restart.",
                         expected)


def sqlite_mode(
    sqlite_path: Path | None, env: Mapping[str, str] | None = None, mounts: Iterable[Mount] | None = None,
    *, read_table: bool = True,
) -> tuple[str, str]:
    """("wal" or "volume", why) for a SQLite file: "volume" on a Space when the file is on a mounted volume.

    GLIDER_SQLITE_MODE=wal|volume overrides the choice (e.g. a database on NFS outside Spaces).
    ValueError for another value.
    """
    env = os.environ if env is None else env
    forced = env.get(SQLITE_MODE_ENV, "").strip().lower() or "auto"
    if forced not in SQLITE_MODES:
        raise ValueError(f"{SQLITE_MODE_ENV} must be one of {', '.join(SQLITE_MODES)} (got {forced!r}).")
    if forced != "auto":
        return forced, f"{SQLITE_MODE_ENV}={forced}"
    if sqlite_path is None:
        return "wal", "an in-memory database"
    if not on_space(env):
        return "wal", "not on a Space"
    table = (read_mounts() if read_table else None) if mounts is None else list(mounts)
    if on_volume(sqlite_path, table):
        mount = mount_of(sqlite_path, table)
        return "volume", f"on a Space, the file is on the volume mounted at {mount.point if mount else '?'}"
    return "wal", "on a Space, but the file is on the container's own disk"
