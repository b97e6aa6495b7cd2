"""CPU thread count at load: one torch thread per physical core, unless the user chose a count."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.judge import create_backend, transformers_backend
from core.judge.hardware import logical_cpus
from core.judge.transformers_backend import configure_cpu_threads


@pytest.fixture
def torch_threads(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """torch, with its thread count restored afterwards and no thread variables set."""
    import torch

    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(variable, raising=False)
    before = torch.get_num_threads()
    yield torch
    torch.set_num_threads(before)


LOGICAL = logical_cpus()


def test_the_default_count_becomes_the_physical_core_count(torch_threads, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    torch_threads.set_num_threads(LOGICAL)  # torch's own default
    monkeypatch.setattr(transformers_backend, "physical_cores", lambda: 1)
    assert configure_cpu_threads("cpu") == "1 CPU thread (one per physical core)"
    assert torch_threads.get_num_threads() == 1


def test_an_explicit_count_is_kept(torch_threads, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(transformers_backend, "physical_cores", lambda: 64)
    chosen = max(LOGICAL, os.cpu_count() or 1) + 1  # neither torch's default nor the core count: the user's
    torch_threads.set_num_threads(chosen)
    assert configure_cpu_threads("cpu") == f"{chosen} CPU threads (set with torch.set_num_threads)"
    assert torch_threads.get_num_threads() == chosen
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    note = configure_cpu_threads("cpu")
    assert note is not None and "OMP_NUM_THREADS=1" in note and torch_threads.get_num_threads() == chosen


def test_gpus_are_left_alone() -> None:
    assert configure_cpu_threads("cuda:0") is None


def test_a_judge_notes_its_thread_count(untrained_model_dir: Path) -> None:
    judge = create_backend("transformers", model=str(untrained_model_dir), quantization="none", device="cpu")
    assert any("CPU thread" in note for note in judge.info.notes)
