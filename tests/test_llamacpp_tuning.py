"""llama.cpp's CPU settings chosen by measurement (core.judge.llamacpp_tuning): the choice, the key, the cache.

Pure logic and files only, with measurements given as figures; tests/test_judge_llamacpp.py measures for
real on the tiny GGUF judges (class TestMeasuredSettings).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from core.judge.llamacpp_tuning import (
    CANDIDATES,
    FIXED_SETTINGS,
    TYPICAL_PROMPT_TOKENS,
    TYPICAL_WRITTEN_TOKENS,
    LlamaCppSettings,
    Measurement,
    SettingsCache,
    best_measurement,
    candidates,
    choose_settings,
    cpu_identity,
    cpu_label,
    default_settings_dir,
    file_identity,
    measure_prompt_ids,
    settings_key,
    typical_grade_seconds,
)

OFF_ON = LlamaCppSettings(weight_repacking=False, flash_attn=True)
OFF_OFF = LlamaCppSettings(weight_repacking=False, flash_attn=False)
ON_ON = LlamaCppSettings(weight_repacking=True, flash_attn=True)
ON_OFF = LlamaCppSettings(weight_repacking=True, flash_attn=False)
# Issue 14's figures on a 2-core AMD EPYC with AVX512-BF16: our fixed settings prefill faster, llama-cpp-python's
# defaults (repacking on, flash attention off) decode faster; a grade writes 300 tokens, so decode decides.
AMD = {OFF_ON: (55.3, 6.24), ON_OFF: (35.4, 8.32)}
CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9R14
flags\t\t: fpu sse4_1 sse4_2 avx f16c fma avx2 avx512f avx512_bf16 avx512_vnni sha_ni rdrand
processor\t: 1
model name\t: AMD EPYC 9R14
flags\t\t: fpu sse4_1 sse4_2 avx f16c fma avx2 avx512f avx512_bf16 avx512_vnni sha_ni rdrand
"""


def _measured(settings: LlamaCppSettings, prefill: float, decode: float) -> Measurement:
    return Measurement(settings, 1.0, prefill, decode)


def _key(tmp_path: Path, **change: object) -> object:
    fields: dict[str, dict] = {
        "file": {"path": str(tmp_path / "glider-Q4_K_M.gguf"), "size": 2393232608, "mtime_ns": 1},
        "cpu": {"model": "AMD EPYC 9R14", "flags": ["avx2", "avx512_bf16"], "machine": "x86_64"},
        "threads": {"n_threads": 2, "n_threads_batch": 2, "n_batch": 512},
        "engine": {"llama_cpp_python": "0.3.36", "system_info": "CPU : AVX2 = 1 | REPACK = 1 |"},
    }
    for name, value in change.items():
        part, _, field = name.partition("__")
        fields[part] = {**fields[part], field: value}
    return settings_key(fields["file"], fields["cpu"], fields["threads"], fields["engine"])


# -- the choice --------------------------------------------------------------------------------------
def test_a_typical_grade_is_400_prompt_tokens_and_300_written() -> None:
    assert (TYPICAL_PROMPT_TOKENS, TYPICAL_WRITTEN_TOKENS) == (400, 300)
    assert typical_grade_seconds(40.0, 6.0) == pytest.approx(400 / 40 + 300 / 6)
    assert typical_grade_seconds(0.0, 6.0) == typical_grade_seconds(40.0, -1.0) == float("inf")


def test_the_lower_typical_grade_wins_not_the_faster_prompt() -> None:
    measured = [_measured(settings, *speeds) for settings, speeds in AMD.items()]
    best = best_measurement(measured)
    assert best.settings == ON_OFF  # 11.3 + 36.1 = 47.4 s against 7.2 + 48.1 = 55.3 s
    assert best.grade_seconds == pytest.approx(400 / 35.4 + 300 / 8.32)
    # Where prompts are slow and decode speeds equal, the faster prompt wins.
    assert best_measurement([_measured(OFF_ON, 17.7, 3.5), _measured(ON_OFF, 15.0, 3.5)]).settings == OFF_ON
    assert best_measurement(measured, allowed=[OFF_ON, OFF_OFF]).settings == OFF_ON
    with pytest.raises(ValueError):
        best_measurement(measured, allowed=[ON_ON])


@pytest.mark.parametrize(
    ("repacking", "flash", "expected"),
    [(None, None, set(CANDIDATES)), (True, None, {ON_ON, ON_OFF}), (None, False, {OFF_OFF, ON_OFF}),
     (False, True, {OFF_ON})],
)
def test_candidates_respect_what_is_forced(repacking: bool | None, flash: bool | None, expected: set) -> None:
    assert set(candidates(repacking, flash)) == expected
    assert len(CANDIDATES) == 4 and FIXED_SETTINGS == OFF_ON


class Runs:
    """A measuring function that returns given figures and counts its calls."""

    def __init__(
        self, speeds: dict[LlamaCppSettings, tuple[float, float]], fail: tuple = (), busy_once: tuple = ()
    ) -> None:
        self.speeds, self.fail, self.busy_once, self.calls = speeds, fail, set(busy_once), []

    def __call__(self, settings: LlamaCppSettings) -> Measurement:
        self.calls.append(settings)
        if settings in self.fail:
            raise RuntimeError("cannot load")
        prefill, decode = self.speeds[settings]
        if settings in self.busy_once:  # another program had the CPU during this one measurement
            self.busy_once.discard(settings)
            prefill, decode = prefill / 10, decode / 10
        return _measured(settings, prefill, decode)


FOUR = {OFF_ON: (55.3, 6.24), OFF_OFF: (40.0, 6.0), ON_ON: (50.0, 8.0), ON_OFF: (35.4, 8.32)}


def _choose(tmp_path: Path, run: Runs, **given: object) -> object:
    options = {"weight_repacking": None, "flash_attn": None, "measure_settings": True, "on_gpu": False, **given}
    return choose_settings(**options, key=lambda: _key(tmp_path), run=run, cache=SettingsCache(tmp_path / "s"),
                           cpu="AMD EPYC 9R14 (avx2, avx512_bf16)")


def test_measured_once_then_read_from_the_cache(tmp_path: Path) -> None:
    run = Runs(FOUR)
    first = _choose(tmp_path, run)
    assert (first.source, first.settings) == ("measured", ON_ON)  # 8.0 + 37.5 = 45.5 s, the shortest
    assert set(run.calls) == set(CANDIDATES) and len(run.calls) == 4
    assert first.cache_path is not None and first.cache_path.is_file()
    assert first.reason.startswith("weight repacking on, flash attention on: measured at this start on AMD EPYC")
    assert "typical grade est. 45.5 s vs " in first.reason and f"cached at {first.cache_path}" in first.reason
    stored = json.loads(first.cache_path.read_text(encoding="utf-8"))
    assert stored["fastest"] == {"weight_repacking": True, "flash_attn": True}
    assert len(stored["measurements"]) == 4 and stored["key"]["cpu"]["model"] == "AMD EPYC 9R14"

    second = _choose(tmp_path, run)
    assert len(run.calls) == 4  # nothing measured again
    assert (second.source, second.settings, second.measurements) == ("cache", ON_ON, first.measurements)
    assert second.reason.startswith(f"weight repacking on, flash attention on: from the cache ({first.cache_path})")
    # One setting forced: the best cached candidate consistent with it, still without measuring.
    forced = _choose(tmp_path, run, flash_attn=False)
    assert (forced.source, forced.settings, len(run.calls)) == ("cache", ON_OFF, 4)
    assert "(flash attention off forced)" in forced.reason


def test_one_setting_forced_measures_only_its_two_candidates_then_the_rest(tmp_path: Path) -> None:
    run = Runs(FOUR)
    choice = _choose(tmp_path, run, weight_repacking=False)
    assert set(run.calls) == {OFF_ON, OFF_OFF} and choice.settings == OFF_ON and choice.source == "measured"
    choice = _choose(tmp_path, run)  # the cache lacks two candidates: those are measured and added
    assert run.calls[2:] == [ON_ON, ON_OFF] and choice.settings == ON_ON
    assert len(json.loads(choice.cache_path.read_text(encoding="utf-8"))["measurements"]) == 4


@pytest.mark.parametrize(
    ("given", "source", "expected"),
    [
        ({"weight_repacking": True, "flash_attn": False}, "forced", ON_OFF),
        ({"measure_settings": False}, "fixed", FIXED_SETTINGS),
        ({"measure_settings": False, "flash_attn": False}, "fixed", OFF_OFF),
        ({"on_gpu": True}, "gpu", FIXED_SETTINGS),
    ],
)
def test_forced_fixed_and_gpu_settings_measure_nothing(
    tmp_path: Path, given: dict, source: str, expected: LlamaCppSettings
) -> None:
    run = Runs(FOUR)
    choice = _choose(tmp_path, run, **given)
    assert (choice.source, choice.settings, run.calls) == (source, expected, [])
    assert not (tmp_path / "s").exists()
    assert choice.reason.startswith(expected.describe())


def test_a_candidate_that_fails_is_left_out_and_all_failing_falls_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        choice = _choose(tmp_path, Runs(FOUR, fail=(ON_ON,)))
    assert choice.settings == ON_OFF and {m.settings for m in choice.measurements} == {OFF_ON, OFF_OFF, ON_OFF}
    assert "Could not measure llama.cpp with weight repacking on, flash attention on" in caplog.text
    failing = _choose(tmp_path / "other", Runs(FOUR, fail=tuple(CANDIDATES)))
    assert (failing.source, failing.settings, failing.cache_path) == ("fixed", FIXED_SETTINGS, None)
    assert "measuring failed" in failing.reason and not (tmp_path / "other").exists()


def test_an_outlier_is_measured_once_more_and_the_faster_figure_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run = Runs(FOUR, busy_once=(ON_ON,))
    with caplog.at_level(logging.INFO):
        choice = _choose(tmp_path, run)
    assert run.calls == [*CANDIDATES, ON_ON]  # the busy one again, only it
    assert choice.settings == ON_ON and next(m for m in choice.measurements if m.settings == ON_ON).grade_seconds \
        == pytest.approx(45.5)
    assert "again (the first figure was 9.6× the fastest's; was the CPU busy?)" in caplog.text
    # Genuinely slower settings are measured twice too, and keep their figure.
    slow = Runs({**FOUR, OFF_OFF: (10.0, 2.0)})
    assert _choose(tmp_path / "slow", slow).settings == ON_ON and slow.calls == [*CANDIDATES, OFF_OFF]


# -- the key and the cache ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "change",
    [{"file__mtime_ns": 2}, {"file__size": 1}, {"file__path": "/elsewhere/glider-Q4_K_M.gguf"},
     {"cpu__model": "Intel(R) Xeon(R)"}, {"cpu__flags": ["avx2"]}, {"threads__n_threads": 1},
     {"threads__n_batch": 256}, {"engine__llama_cpp_python": "0.3.37"}, {"engine__system_info": "CPU : AVX2 = 1 |"}],
)
def test_every_part_of_the_key_decides_it(tmp_path: Path, change: dict) -> None:
    same, changed = _key(tmp_path), _key(tmp_path, **change)
    assert _key(tmp_path) == same and changed.digest != same.digest and changed.name != same.name
    assert same.name.startswith("glider-Q4_K_M-")


def test_the_file_is_identified_by_its_resolved_path_size_and_mtime(tmp_path: Path) -> None:
    model = tmp_path / "a.gguf"
    model.write_bytes(b"GGUF" * 10)
    link = tmp_path / "link.gguf"
    link.symlink_to(model)
    assert file_identity(link) == file_identity(model) == {
        "path": str(model.resolve()), "size": 40, "mtime_ns": model.stat().st_mtime_ns}


def test_cpu_identity_keeps_the_flags_that_choose_kernels() -> None:
    cpu = cpu_identity(CPUINFO)
    assert cpu["model"] == "AMD EPYC 9R14"
    assert cpu["flags"] == ["avx", "avx2", "avx512_bf16", "avx512_vnni", "avx512f", "f16c", "fma", "sse4_1", "sse4_2"]
    assert cpu_label(cpu) == "AMD EPYC 9R14 (avx2, avx512f, avx512_bf16, avx512_vnni)"
    assert cpu_identity("")["model"]  # no /proc/cpuinfo: still a name
    arm = cpu_identity("Features\t: fp asimd sve i8mm crc32\nCPU part\t: 0xd40\n")
    assert arm["flags"] == ["asimd", "i8mm", "sve"]


@pytest.mark.parametrize(
    "content",
    ["{not json", "[]", json.dumps({"format": 1, "digest": "0" * 64, "measurements": []}),
     "FIXTURE: right digest, no measurements", "FIXTURE: right digest, a broken measurement"],
)
def test_an_unreadable_cache_file_is_ignored_with_a_warning(
    tmp_path: Path, content: str, caplog: pytest.LogCaptureFixture
) -> None:
    key = _key(tmp_path)
    cache = SettingsCache(tmp_path / "s")
    if content.startswith("FIXTURE"):
        broken = [] if "no measurements" in content else [{"settings": {"weight_repacking": True}}]
        content = json.dumps({"format": 1, "digest": key.digest, "measurements": broken})
    cache.root.mkdir()
    cache.path(key).write_text(content, encoding="utf-8")
    run = Runs(FOUR)
    with caplog.at_level(logging.WARNING):
        choice = choose_settings(weight_repacking=None, flash_attn=None, measure_settings=True, on_gpu=False,
                                 key=lambda: key, run=run, cache=cache, cpu="cpu")
    assert "Ignoring the measured llama.cpp settings" in caplog.text
    assert choice.source == "measured" and len(run.calls) == 4
    assert cache.load(key) == choice.measurements  # rewritten whole


def test_a_cache_that_cannot_be_written_only_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder", encoding="utf-8")
    run = Runs(FOUR)
    with caplog.at_level(logging.WARNING):
        choice = choose_settings(weight_repacking=None, flash_attn=None, measure_settings=True, on_gpu=False,
                                 key=lambda: _key(tmp_path), run=run, cache=SettingsCache(blocker / "s"), cpu="cpu")
    assert (choice.source, choice.settings, choice.cache_path) == ("measured", ON_ON, None)
    assert "Could not save the measured llama.cpp settings" in caplog.text and "not cached" in choice.reason


def test_settings_live_beside_the_quantized_copies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLIDER_CACHE_DIR", str(tmp_path / "cache"))
    assert default_settings_dir() == tmp_path / "cache" / "llamacpp-settings"
    assert default_settings_dir(tmp_path / "x") == tmp_path / "x" / "llamacpp-settings"


def test_the_measuring_prompt_is_glider_text_of_a_fixed_length() -> None:
    from core.prompt import GLIDER_TEMPLATE

    seen: list[bytes] = []

    def tokenize(text: bytes) -> list[int]:
        seen.append(text)
        return list(range(50))

    ids = measure_prompt_ids(tokenize, 128)
    assert seen == [GLIDER_TEMPLATE.encode()]
    assert len(ids) == 128 and ids[:50] == ids[50:100] == list(range(50)) and ids[100:] == list(range(28))
    with pytest.raises(ValueError):
        measure_prompt_ids(lambda text: [], 128)
