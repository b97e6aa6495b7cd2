"""Saved quantized copies: the first nf4/int8 load saves one, later loads read it; damaged ones are rebuilt."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from core.judge import create_backend
from core.judge.quantized_cache import (
    META_FILE,
    TEMP_PREFIX,
    CacheKey,
    ModelSource,
    QuantizedCache,
    cache_key,
    default_cache_dir,
    directory_fingerprint,
    identify_source,
)
from core.judge.transformers_backend import TransformersJudge
from tests.fakes import WELL_FORMED

NF4 = {"quantization": "nf4", "config": {"bnb_4bit_quant_type": "nf4"}, "dtype": "default", "device": "cpu"}
LIBRARIES = {"transformers": "5.0.0", "bitsandbytes": "0.50.0"}
COMMIT_A, COMMIT_B = "a" * 40, "b" * 40


def _judge(model_dir: Path, cache_dir: Path, quantization: str = "nf4", **options: object) -> TransformersJudge:
    return create_backend("transformers", model=str(model_dir), quantization=quantization, cache_dir=cache_dir,
                          **options)


def _entries(cache_dir: Path) -> list[Path]:
    return sorted(p for p in cache_dir.iterdir() if not p.name.startswith(TEMP_PREFIX)) if cache_dir.exists() else []


def _assert_no_temporaries(cache_dir: Path) -> None:
    assert not list(cache_dir.glob(f"{TEMP_PREFIX}*"))


# -- through the judge -------------------------------------------------------------------------------
def test_first_load_saves_a_copy_and_the_second_reads_it(
    trained_model_dir: Path, tmp_path: Path, taught_prompt: str
) -> None:
    import bitsandbytes as bnb
    import torch

    first = _judge(trained_model_dir, tmp_path)
    assert not first.loaded_from_quantized_cache
    assert first.quantized_cache_path is not None and first.quantized_cache_path.parent == tmp_path
    assert (first.quantized_cache_path / META_FILE).is_file()
    assert (first.quantized_cache_path / "model.safetensors").is_file()
    assert any("saved to the cache" in note for note in first.info.notes)
    assert _entries(tmp_path) == [first.quantized_cache_path]
    _assert_no_temporaries(tmp_path)

    second = _judge(trained_model_dir, tmp_path)
    assert second.loaded_from_quantized_cache and second.quantized_cache_path == first.quantized_cache_path
    assert any("loaded from the cache" in note for note in second.info.notes)
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in second.model.modules())
    assert (second.info.quantization, second.info.dtype) == (first.info.quantization, first.info.dtype)
    # The same bytes in every tensor, hence the same tokens and the same distribution.
    saved, loaded = first.model.state_dict(), second.model.state_dict()
    assert saved.keys() == loaded.keys()
    for name in saved:
        assert saved[name].dtype == loaded[name].dtype and torch.equal(saved[name], loaded[name]), name
    one = first.generate(taught_prompt, scale=(0, 1), max_new_tokens=120)
    two = second.generate(taught_prompt, scale=(0, 1), max_new_tokens=120)
    assert one.text == two.text and one.completion_tokens == two.completion_tokens
    assert one.distribution == two.distribution
    assert first.tokenizer(one.text)["input_ids"] == second.tokenizer(two.text)["input_ids"]


def test_int8_copies_round_trip(trained_model_dir: Path, tmp_path: Path, taught_prompt: str) -> None:
    import bitsandbytes as bnb

    first = _judge(trained_model_dir, tmp_path, "int8")
    second = _judge(trained_model_dir, tmp_path, "int8")
    assert not first.loaded_from_quantized_cache and second.loaded_from_quantized_cache
    assert any(isinstance(m, bnb.nn.Linear8bitLt) for m in second.model.modules())
    assert second.info.dtype == first.info.dtype == "float16"
    assert first.generate(taught_prompt, max_new_tokens=6).text == second.generate(taught_prompt, max_new_tokens=6).text


def test_nf4_and_int8_copies_are_separate_entries(trained_model_dir: Path, tmp_path: Path) -> None:
    nf4, int8 = _judge(trained_model_dir, tmp_path), _judge(trained_model_dir, tmp_path, "int8")
    assert nf4.quantized_cache_path != int8.quantized_cache_path
    assert len(_entries(tmp_path)) == 2


def test_a_truncated_copy_is_discarded_and_rebuilt(
    trained_model_dir: Path, tmp_path: Path, taught_prompt: str, caplog: pytest.LogCaptureFixture
) -> None:
    entry = _judge(trained_model_dir, tmp_path).quantized_cache_path
    assert entry is not None
    weights = entry / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with caplog.at_level(logging.WARNING):
        rebuilt = _judge(trained_model_dir, tmp_path)
    assert not rebuilt.loaded_from_quantized_cache
    assert "Discarding the quantized copy" in caplog.text and "truncated" in caplog.text
    assert rebuilt.quantized_cache_path == entry and _entries(tmp_path) == [entry]
    assert rebuilt.generate(taught_prompt, scale=(0, 1), max_new_tokens=120).text == WELL_FORMED
    assert _judge(trained_model_dir, tmp_path).loaded_from_quantized_cache
    _assert_no_temporaries(tmp_path)


def test_a_copy_that_fails_to_load_is_discarded_and_rebuilt(
    trained_model_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    entry = _judge(trained_model_dir, tmp_path).quantized_cache_path
    assert entry is not None
    weights = entry / "model.safetensors"
    weights.write_bytes(b"\xff" * weights.stat().st_size)  # same size, so only loading can tell
    with caplog.at_level(logging.WARNING):
        rebuilt = _judge(trained_model_dir, tmp_path)
    assert not rebuilt.loaded_from_quantized_cache and "could not be loaded" in caplog.text
    assert _judge(trained_model_dir, tmp_path).loaded_from_quantized_cache


def test_an_entry_without_its_metadata_is_not_trusted(trained_model_dir: Path, tmp_path: Path) -> None:
    entry = _judge(trained_model_dir, tmp_path).quantized_cache_path
    assert entry is not None
    (entry / META_FILE).unlink()  # what a half-copied entry would look like
    again = _judge(trained_model_dir, tmp_path)
    assert not again.loaded_from_quantized_cache and (entry / META_FILE).is_file()


def test_quantized_cache_off_writes_nothing(trained_model_dir: Path, tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    judge = _judge(trained_model_dir, cache_dir, quantized_cache=False)
    assert not judge.loaded_from_quantized_cache and judge.quantized_cache_path is None
    assert not cache_dir.exists()
    assert not any("cache" in note for note in judge.info.notes)


def test_unquantized_models_are_never_cached(trained_model_dir: Path, tmp_path: Path) -> None:
    judge = _judge(trained_model_dir, tmp_path / "cache", "none")
    assert judge.quantized_cache_path is None and not (tmp_path / "cache").exists()


def test_a_cache_that_cannot_be_written_only_warns(
    trained_model_dir: Path, tmp_path: Path, taught_prompt: str, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the cache directory should be")  # fails for root too, unlike chmod
    with caplog.at_level(logging.WARNING):
        judge = _judge(trained_model_dir, blocked)
    assert "Could not save the quantized copy" in caplog.text
    assert judge.quantized_cache_path is None and any("could not be saved" in n for n in judge.info.notes)
    assert judge.generate(taught_prompt, scale=(0, 1), max_new_tokens=120).text == WELL_FORMED


def test_the_cache_directory_follows_the_environment(
    trained_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GLIDER_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "glider-studio" / "quantized"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "glider-studio" / "quantized"
    monkeypatch.setenv("GLIDER_CACHE_DIR", str(tmp_path / "glider"))
    assert default_cache_dir() == tmp_path / "glider"
    judge = create_backend("transformers", model=str(trained_model_dir), quantization="nf4")
    assert judge.quantized_cache_path is not None and judge.quantized_cache_path.parent == tmp_path / "glider"


# -- keys ---------------------------------------------------------------------------------------------
def test_keys_change_with_everything_that_changes_the_bytes() -> None:
    base = cache_key(ModelSource("PatronusAI/glider", f"commit:{COMMIT_A}", COMMIT_A), NF4, LIBRARIES)
    variants = [
        cache_key(ModelSource("PatronusAI/glider", f"commit:{COMMIT_B}", COMMIT_B), NF4, LIBRARIES),
        cache_key(ModelSource("someone/glider", f"commit:{COMMIT_A}", COMMIT_A), NF4, LIBRARIES),
        cache_key(ModelSource("PatronusAI/glider", f"commit:{COMMIT_A}", COMMIT_A), {**NF4, "quantization": "int8"},
                  LIBRARIES),
        cache_key(ModelSource("PatronusAI/glider", f"commit:{COMMIT_A}", COMMIT_A),
                  {**NF4, "config": {"bnb_4bit_quant_type": "fp4"}}, LIBRARIES),
        cache_key(ModelSource("PatronusAI/glider", f"commit:{COMMIT_A}", COMMIT_A), {**NF4, "device": "cuda"},
                  LIBRARIES),
        cache_key(ModelSource("PatronusAI/glider", f"commit:{COMMIT_A}", COMMIT_A), NF4,
                  {**LIBRARIES, "bitsandbytes": "0.51.0"}),
        cache_key(ModelSource("PatronusAI/glider", f"commit:{COMMIT_A}", COMMIT_A), NF4,
                  {**LIBRARIES, "transformers": "5.1.0"}),
    ]
    assert len({base.digest, *(v.digest for v in variants)}) == len(variants) + 1
    assert len({base.name, *(v.name for v in variants)}) == len(variants) + 1
    same = cache_key(ModelSource("PatronusAI/glider", f"commit:{COMMIT_A}", COMMIT_A), dict(NF4), dict(LIBRARIES))
    assert same == base and base.name.startswith("glider-nf4-")


def test_local_directories_are_keyed_by_their_files(trained_model_dir: Path, tmp_path: Path) -> None:
    import shutil

    copy = Path(shutil.copytree(trained_model_dir, tmp_path / "model"))
    source = identify_source(str(copy), None, local_files_only=True)
    assert source is not None and source.source == str(copy.resolve()) and source.commit is None
    assert source.version == "files:" + directory_fingerprint(copy)
    assert identify_source(str(copy), None, local_files_only=True) == source  # stable
    (copy / "tokenizer_config.json").write_text("{}")  # not a weight or config file: same copy
    assert identify_source(str(copy), None, local_files_only=True) == source
    weights = copy / "model.safetensors"
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # rewritten weights
    changed = identify_source(str(copy), None, local_files_only=True)
    assert changed is not None and changed.version != source.version


def test_hub_models_are_keyed_by_their_commit() -> None:
    source = identify_source("PatronusAI/glider", COMMIT_B, local_files_only=True)
    assert source == ModelSource("PatronusAI/glider", f"commit:{COMMIT_B}", COMMIT_B)
    # Offline with nothing in the Hugging Face cache, the commit is unknown: no key, so no cache.
    assert identify_source("nobody/no-such-model-xyz", None, local_files_only=True) is None


# -- atomic saving -------------------------------------------------------------------------------------
def _key(name: str = "demo") -> CacheKey:
    return cache_key(ModelSource(f"/models/{name}", "files:0"), NF4, LIBRARIES)


def test_a_failed_write_leaves_no_entry_and_no_temporary(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store, key = QuantizedCache(tmp_path), _key()

    def write(directory: Path) -> None:
        (directory / "model.safetensors").write_bytes(b"half")
        raise OSError(28, "No space left on device")

    with caplog.at_level(logging.WARNING):
        assert store.save(key, write) is None
    assert "No space left on device" in caplog.text
    assert store.lookup(key) is None and not list(tmp_path.iterdir())


def test_a_saved_entry_is_found_and_a_second_save_keeps_the_first(tmp_path: Path) -> None:
    store, key = QuantizedCache(tmp_path), _key()
    entry = store.save(key, lambda d: (d / "model.safetensors").write_bytes(b"first"), extra={"model": "demo"})
    assert entry == store.path(key) and store.lookup(key) == entry
    assert store.metadata(key)["files"] == {"model.safetensors": 5} and store.metadata(key)["model"] == "demo"
    assert store.save(key, lambda d: (d / "model.safetensors").write_bytes(b"second")) == entry
    assert (entry / "model.safetensors").read_bytes() == b"first"
    assert _entries(tmp_path) == [entry]
    _assert_no_temporaries(tmp_path)


def test_stale_temporaries_are_cleaned_and_fresh_ones_kept(tmp_path: Path) -> None:
    stale, fresh = tmp_path / f"{TEMP_PREFIX}crashed", tmp_path / f"{TEMP_PREFIX}writing"
    stale.mkdir()
    fresh.mkdir()
    os.utime(stale, (0, 0))
    QuantizedCache(tmp_path).save(_key(), lambda d: (d / "model.safetensors").write_bytes(b"x"))
    assert not stale.exists() and fresh.exists()


def test_an_entry_for_another_key_is_not_used(tmp_path: Path) -> None:
    store = QuantizedCache(tmp_path)
    one, two = _key("one"), _key("two")
    entry = store.save(one, lambda d: (d / "model.safetensors").write_bytes(b"x"))
    assert entry is not None
    entry.rename(store.path(two))  # e.g. copied by hand under the wrong name
    assert store.lookup(two) is None and not store.path(two).exists()
