"""The shipped presets are well formed, and the loader rejects bad files with a message naming the problem."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from core.errors import InputError
from core.presets import DEFAULT_PRESETS_PATH, Preset, UnknownPresetError, get_preset, load_presets
from core.prompt import DEFAULT_TAGS, build_prompt, infer_scale, rubric_scores

PRESETS = load_presets()
IDS = [preset.key for preset in PRESETS]


def _good_entry(key: str = "demo") -> dict:
    return {
        "key": key,
        "name": "Demo (0-1)",
        "description": "A preset used only by the tests.",
        "pass_criteria": "Is the MODEL OUTPUT faithful to the CONTEXT?",
        "rubric": "0: The MODEL OUTPUT is not faithful to the CONTEXT.\n"
        "1: The MODEL OUTPUT is faithful to the CONTEXT.",
        "example": {"CONTEXT": "The sky is blue.", "MODEL OUTPUT": "The sky is blue."},
    }


def _write(tmp_path: Path, data) -> Path:
    path = tmp_path / "presets.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


# --- the shipped file -------------------------------------------------------------------------------------


def test_default_path_points_into_assets():
    assert DEFAULT_PRESETS_PATH == Path(__file__).resolve().parent.parent / "assets" / "presets.json"
    assert DEFAULT_PRESETS_PATH.is_file()


def test_at_least_ten_presets():
    assert len(PRESETS) >= 10
    assert all(isinstance(p, Preset) for p in PRESETS)


def test_keys_unique():
    assert len(IDS) == len(set(IDS))


def test_each_scale_present_at_least_twice():
    counts = Counter(infer_scale(p.rubric) for p in PRESETS)
    for scale in [(0, 1), (1, 3), (1, 5)]:
        assert counts[scale] >= 2, f"scale {scale} appears {counts[scale]} time(s)"
    assert set(counts) <= {(0, 1), (1, 3), (1, 5)}


@pytest.mark.parametrize("preset", PRESETS, ids=IDS)
def test_rubric_has_one_line_per_score_and_name_shows_scale(preset: Preset):
    low, high = infer_scale(preset.rubric)
    lines = [line for line in preset.rubric.splitlines() if line.strip()]
    assert rubric_scores(preset.rubric) == list(range(low, high + 1))
    assert len(lines) == high - low + 1
    assert [line.split(":", 1)[0] for line in lines] == [str(v) for v in range(low, high + 1)]
    assert f"({low}-{high})" in preset.name


@pytest.mark.parametrize("preset", PRESETS, ids=IDS)
def test_example_builds_a_valid_prompt(preset: Preset):
    assert set(preset.example) <= set(DEFAULT_TAGS)
    assert all(text.strip() for text in preset.example.values())
    prompt = build_prompt(preset.example, preset.pass_criteria, preset.rubric)
    for tag, text in preset.example.items():
        assert f"<{tag}>\n{text}\n</{tag}>" in prompt
    assert preset.pass_criteria in prompt and preset.rubric in prompt


@pytest.mark.parametrize("preset", PRESETS, ids=IDS)
def test_pass_criteria_names_the_example_tags(preset: Preset):
    named = [tag for tag in preset.example if tag in preset.pass_criteria]
    assert named, f"{preset.key}: pass criteria name none of {list(preset.example)}"
    # A tag named by the criteria should be present in the example, so the judge can see it.
    for tag in DEFAULT_TAGS:
        if tag in preset.pass_criteria:
            assert tag in preset.example, f"{preset.key}: criteria name {tag} but the example lacks it"


def test_required_topics_covered():
    by_key = {p.key: p for p in PRESETS}
    assert infer_scale(by_key["faithfulness"].rubric) == (0, 1)
    assert infer_scale(by_key["helpfulness"].rubric) == (1, 5)
    assert infer_scale(by_key["safety"].rubric) == (0, 1)
    assert infer_scale(by_key["coherence"].rubric) == (1, 5)
    assert infer_scale(by_key["instruction_following"].rubric) == (1, 5)
    assert infer_scale(by_key["correctness_gold"].rubric) == (1, 3)
    assert infer_scale(by_key["conciseness"].rubric) == (1, 3)
    assert infer_scale(by_key["answer_relevance"].rubric) in {(1, 3), (1, 5)}
    assert "GOLD ANSWER" in by_key["correctness_gold"].example
    assert "summary" in by_key["summary_faithfulness"].pass_criteria.lower()
    # The multilingual example asks in French and is answered in English.
    assert "Bonjour" in by_key["language_match"].example["USER INPUT"]


def test_load_returns_fresh_objects():
    first, second = load_presets(), load_presets()
    assert first == second and first is not second
    first[0].example["MODEL OUTPUT"] = "changed"
    first.clear()
    assert load_presets() == second


def test_get_preset():
    assert get_preset("faithfulness").key == "faithfulness"
    with pytest.raises(UnknownPresetError, match="no-such-preset") as info:
        get_preset("no-such-preset")
    assert isinstance(info.value, InputError) and isinstance(info.value, KeyError)
    assert "faithfulness" in str(info.value)  # lists the known keys


# --- malformed files ----------------------------------------------------------------------------------------


def test_good_tmp_file_loads(tmp_path):
    presets = load_presets(_write(tmp_path, [_good_entry("a"), _good_entry("b")]))
    assert [p.key for p in presets] == ["a", "b"]
    assert get_preset("b", _write(tmp_path, [_good_entry("a"), _good_entry("b")])).key == "b"


def test_missing_key_raises(tmp_path):
    entry = _good_entry("broken")
    del entry["pass_criteria"]
    with pytest.raises(InputError, match=r"'broken'.*missing required key\(s\): pass_criteria"):
        load_presets(_write(tmp_path, [_good_entry(), entry]))


def test_rubric_without_scores_raises(tmp_path):
    entry = _good_entry("no_scores")
    entry["rubric"] = "Good answers pass.\nBad answers fail."
    with pytest.raises(InputError, match=r"'no_scores'.*rubric.*names no scores"):
        load_presets(_write(tmp_path, [entry]))


def test_rubric_with_single_score_raises(tmp_path):
    entry = _good_entry("one_score")
    entry["rubric"] = "1: Fine."
    with pytest.raises(InputError, match=r"'one_score'.*only the score 1"):
        load_presets(_write(tmp_path, [entry]))


def test_duplicate_key_raises(tmp_path):
    with pytest.raises(InputError, match=r"'twin'.*duplicate key"):
        load_presets(_write(tmp_path, [_good_entry("twin"), _good_entry("other"), _good_entry("twin")]))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda e: e.update(name="  "), r"'name' must be a non-empty string"),
        (lambda e: e.update(example={}), r"'example' must be a non-empty object"),
        (lambda e: e.update(example={"MODEL OUTPUT": 3}), r"example field 'MODEL OUTPUT' must be a string"),
        (lambda e: e.update(example={"MODEL OUTPUT": "   "}), r"example does not build a prompt"),
        (lambda e: e.update(extra="x"), r"unknown key\(s\): extra"),
        (lambda e: e.update(key="Bad Key"), r"lower-case"),
    ],
)
def test_other_bad_entries_raise(tmp_path, mutate, message):
    entry = _good_entry()
    mutate(entry)
    with pytest.raises(InputError, match=message):
        load_presets(_write(tmp_path, [entry]))


def test_entry_without_key_is_named_by_position(tmp_path):
    entry = _good_entry()
    del entry["key"]
    with pytest.raises(InputError, match=r"preset #2.*missing required key\(s\): key"):
        load_presets(_write(tmp_path, [_good_entry("first"), entry]))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", r"not valid JSON"),
        ('{"presets": []}', r"top level must be a JSON list"),
        ("[]", r"no presets"),
        ('["just a string"]', r"preset #1: must be a JSON object"),
    ],
)
def test_bad_file_shapes_raise(tmp_path, content, message):
    path = tmp_path / "presets.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=message):
        load_presets(path)


def test_missing_file_raises(tmp_path):
    with pytest.raises(InputError, match="Cannot read the presets file"):
        load_presets(tmp_path / "absent.json")
