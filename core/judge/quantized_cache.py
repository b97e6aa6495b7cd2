"""A local cache of quantized model copies, so that bitsandbytes quantizes each model only once.

Quantizing GLIDER to nf4 while loading takes about 400 s on a 2-core CPU; loading a copy saved with
`save_pretrained` takes about 9 s. An entry is keyed by everything that decides its bytes: the model (a
hub id and its commit, or a local directory's path and a fingerprint of its files), the quantization
settings, the device kind and the transformers and bitsandbytes versions. Entries appear atomically
(written into a temporary sibling directory, then renamed), so a crash never leaves one that loads
later; an entry whose files do not match its manifest is discarded.

Only `hub_commit` and `library_versions` import third-party code, lazily.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# Bump when the layout of an entry or the meaning of its key changes: old entries then stop matching.
FORMAT = 1
META_FILE = "glider-cache.json"
TEMP_PREFIX = ".tmp-"
# A temporary directory lives only while save_pretrained writes (seconds); one this old was left by a crash.
STALE_TEMP_SECONDS = 3600.0
# The files of a model directory that decide the quantized weights (the tokenizer does not).
_FINGERPRINT_NAMES = ("config.json",)
_FINGERPRINT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".index.json")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_SLUG = re.compile(r"[^A-Za-z0-9._-]+")


def default_cache_dir() -> Path:
    """$GLIDER_CACHE_DIR, else $XDG_CACHE_HOME/glider-studio/quantized (XDG's default: ~/.cache)."""
    explicit = os.environ.get("GLIDER_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "glider-studio" / "quantized"


@dataclass(frozen=True)
class ModelSource:
    """Which model a quantized copy was made from: `version` changes whenever its weights may have."""

    source: str  # the hub id, or the resolved absolute path of a local directory
    version: str  # "commit:<sha>" for the hub, "files:<fingerprint>" for a local directory
    commit: str | None = None  # the hub commit, when the source is a hub id


@dataclass(frozen=True)
class CacheKey:
    """A cache entry's identity: `digest` hashes `fields`; `name` is the entry's directory name."""

    name: str
    digest: str
    fields: Mapping[str, Any]


def directory_fingerprint(directory: str | os.PathLike[str]) -> str:
    """SHA-256 over config.json's bytes and the weight files' names, sizes and modification times.

    Reading only metadata keeps this instant for multi-GB weights; any rewrite of a weight file changes
    its mtime, which is enough to rebuild the copy (a needless rebuild costs minutes, a stale copy a
    wrong judge).
    """
    root = Path(directory)
    digest = hashlib.sha256()
    for path in sorted(root.iterdir(), key=lambda p: p.name):
        if not path.is_file():
            continue
        if path.name in _FINGERPRINT_NAMES:
            digest.update(f"{path.name}\0".encode())
            digest.update(path.read_bytes())
        elif path.name.endswith(_FINGERPRINT_SUFFIXES):
            stat = path.stat()
            digest.update(f"{path.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def hub_commit(model: str, revision: str | None, local_files_only: bool) -> str | None:
    """The commit `revision` of a hub model resolves to (from its config.json's snapshot), or None."""
    if revision is not None and _COMMIT.match(revision):
        return revision
    try:
        from transformers.utils.hub import cached_file, extract_commit_hash

        resolved = cached_file(model, "config.json", revision=revision, local_files_only=local_files_only)
        return extract_commit_hash(resolved, None)
    except Exception as exc:  # offline, unknown repo, gated: the caller loads without the cache
        log.debug("Could not resolve the commit of %s@%s: %s", model, revision, exc)
        return None


def identify_source(model: str, revision: str | None, local_files_only: bool) -> ModelSource | None:
    """What the copy would be made from; None when the hub commit is unknown (nothing safe to key on)."""
    local = Path(model).expanduser()
    if local.is_dir():
        resolved = local.resolve()
        return ModelSource(str(resolved), "files:" + directory_fingerprint(resolved))
    commit = hub_commit(model, revision, local_files_only)
    if commit is None:
        return None
    return ModelSource(model, "commit:" + commit, commit)


def library_versions() -> dict[str, str]:
    """Versions of the libraries whose quantization and serialization decide an entry's bytes."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for name in ("transformers", "bitsandbytes"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "absent"
    return versions


def cache_key(source: ModelSource, settings: Mapping[str, Any], libraries: Mapping[str, str]) -> CacheKey:
    """The key of the quantized copy of `source` made with `settings` by `libraries` (pure)."""
    fields = {
        "format": FORMAT,
        "source": source.source,
        "version": source.version,
        "settings": dict(settings),
        "libraries": dict(libraries),
    }
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()
    label = _SLUG.sub("-", Path(source.source.rstrip("/\\")).name or "model").strip("-.") or "model"
    quantization = _SLUG.sub("-", str(settings.get("quantization", "quantized")))
    return CacheKey(name=f"{label[:48]}-{quantization}-{digest[:20]}", digest=digest, fields=fields)


def _manifest(directory: Path) -> dict[str, int]:
    return {path.name: path.stat().st_size for path in sorted(directory.iterdir()) if path.is_file()}


class QuantizedCache:
    """A directory of quantized copies, one complete `save_pretrained` directory per key."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()

    def path(self, key: CacheKey) -> Path:
        """Where the entry for `key` lives (whether or not it exists)."""
        return self.root / key.name

    def lookup(self, key: CacheKey) -> Path | None:
        """The entry's directory when it is complete and matches its manifest; a damaged one is discarded."""
        entry = self.path(key)
        if not entry.is_dir():
            return None
        problem = self._problem(entry, key)
        if problem is None:
            return entry
        self.discard(key, problem)
        return None

    def _problem(self, entry: Path, key: CacheKey) -> str | None:
        """Why the entry cannot be trusted, or None."""
        try:
            meta = json.loads((entry / META_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            return f"its {META_FILE} is missing or unreadable ({exc})"
        if meta.get("format") != FORMAT or meta.get("digest") != key.digest:
            return "it was written for another key"
        files = meta.get("files")
        if not isinstance(files, dict) or not files:
            return "its manifest lists no files"
        for name, size in files.items():
            try:
                actual = (entry / name).stat().st_size
            except OSError:
                return f"{name} is missing"
            if actual != size:
                return f"{name} has {actual} bytes instead of {size} (truncated or overwritten)"
        return None

    def metadata(self, key: CacheKey) -> dict[str, Any]:
        """The entry's recorded metadata (empty when unreadable)."""
        try:
            meta = json.loads((self.path(key) / META_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return meta if isinstance(meta, dict) else {}

    def discard(self, key: CacheKey, reason: str) -> None:
        """Remove the entry for `key`, logging why; renamed away first so no half-deleted entry remains."""
        entry = self.path(key)
        log.warning("Discarding the quantized copy %s: %s. It will be rebuilt.", entry, reason)
        try:
            doomed = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}discard-{key.name}-", dir=self.root))
            os.replace(entry, doomed / "entry")
            shutil.rmtree(doomed, ignore_errors=True)
        except OSError as exc:
            log.warning("Could not remove %s (%s)", entry, exc)
            shutil.rmtree(entry, ignore_errors=True)

    def save(self, key: CacheKey, write: Callable[[Path], None], extra: Mapping[str, Any] | None = None) -> Path | None:
        """Create the entry: `write(directory)` fills a temporary directory, which is then renamed into place.

        Returns the entry's path, or None (with a logged warning) when it could not be written; a failure
        never leaves a partial entry behind. When another process created the entry meanwhile, theirs is kept.
        """
        temporary: Path | None = None
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self._remove_stale_temporaries()
            temporary = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{key.name}-", dir=self.root))
            write(temporary)
            meta = {
                "format": FORMAT,
                "digest": key.digest,
                "key": dict(key.fields),
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                **dict(extra or {}),
                "files": _manifest(temporary),
            }
            (temporary / META_FILE).write_text(json.dumps(meta, indent=2, default=str), encoding="utf-8")
            _fsync_tree(temporary)
            entry = self.path(key)
            try:
                os.rename(temporary, entry)  # atomic; fails when the entry exists
            except OSError:
                if self.lookup(key) is not None:  # another process saved it first: keep theirs
                    shutil.rmtree(temporary, ignore_errors=True)
                    return entry
                os.rename(temporary, entry)  # lookup discarded a damaged one; the name is free now
            return entry
        except Exception as exc:  # disk full, read-only, a model that cannot be serialized: keep going without
            log.warning("Could not save the quantized copy to %s (%s: %s); continuing with the model in memory.",
                        self.root, type(exc).__name__, exc)
            if temporary is not None:
                shutil.rmtree(temporary, ignore_errors=True)
            return None

    def _remove_stale_temporaries(self) -> None:
        """Delete temporary directories that crashed saves left behind (multi-GB each for GLIDER)."""
        now = time.time()
        for path in self.root.glob(f"{TEMP_PREFIX}*"):
            try:
                if path.is_dir() and now - path.stat().st_mtime > STALE_TEMP_SECONDS:
                    shutil.rmtree(path, ignore_errors=True)
            except OSError:
                continue


def _fsync_tree(directory: Path) -> None:
    """Flush the entry's files before the rename publishes it, so a power cut cannot publish empty files."""
    for path in directory.iterdir():
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
