"""Rubric presets shipped in assets/presets.json.

The file is a JSON list of objects, each with exactly the keys ``key``, ``name``, ``description``,
``pass_criteria``, ``rubric`` and ``example`` (an object mapping field tag to text). Every load
re-reads and re-validates the file and returns fresh objects, so callers may mutate what they get.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import InputError
from core.prompt import build_prompt, infer_scale

DEFAULT_PRESETS_PATH = Path(__file__).resolve().parent.parent / "assets" / "presets.json"

REQUIRED_KEYS: tuple[str, ...] = ("key", "name", "description", "pass_criteria", "rubric", "example")

_KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


@dataclass(frozen=True)
class Preset:
    key: str  # stable identifier, e.g. "faithfulness"
    name: str  # shown in the picker, e.g. "Faithfulness to context (0-1)"
    description: str
    pass_criteria: str
    rubric: str
    example: dict[str, str]  # field tag -> text, a worked example one click away


class UnknownPresetError(InputError, KeyError):
    """No preset is stored under the requested key."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def _label(entry: Any, index: int) -> str:
    """How an entry is named in error messages: its key when it has a usable one, else its position."""
    if isinstance(entry, dict) and isinstance(entry.get("key"), str) and entry["key"].strip():
        return f"preset {entry['key']!r}"
    return f"preset #{index + 1}"


def _validate_entry(entry: Any, index: int, source: Path) -> Preset:
    label = _label(entry, index)

    def fail(problem: str) -> InputError:
        return InputError(f"{source}: {label}: {problem}")

    if not isinstance(entry, dict):
        raise fail(f"must be a JSON object, not {type(entry).__name__}.")
    missing = [name for name in REQUIRED_KEYS if name not in entry]
    if missing:
        raise fail(f"missing required key(s): {', '.join(missing)}.")
    unknown = sorted(set(entry) - set(REQUIRED_KEYS))
    if unknown:
        raise fail(f"unknown key(s): {', '.join(unknown)}.")
    for name in REQUIRED_KEYS[:-1]:
        value = entry[name]
        if not isinstance(value, str) or not value.strip():
            raise fail(f"{name!r} must be a non-empty string.")
    if not _KEY_PATTERN.match(entry["key"]):
        raise fail("'key' must use only lower-case letters, digits, '_' and '-'.")

    try:
        infer_scale(entry["rubric"])
    except InputError as exc:  # RubricError is an InputError
        raise fail(f"rubric is unreadable: {exc}") from exc

    example = entry["example"]
    if not isinstance(example, dict) or not example:
        raise fail("'example' must be a non-empty object mapping field tags to text.")
    for tag, text in example.items():
        if not isinstance(text, str):
            raise fail(f"example field {tag!r} must be a string.")
    try:
        build_prompt(example, entry["pass_criteria"], entry["rubric"])
    except InputError as exc:
        raise fail(f"example does not build a prompt: {exc}") from exc

    return Preset(
        key=entry["key"],
        name=entry["name"],
        description=entry["description"],
        pass_criteria=entry["pass_criteria"],
        rubric=entry["rubric"],
        example=dict(example),
    )


def load_presets(path: Path | None = None) -> list[Preset]:
    """Read, validate and return the presets; InputError names the preset and the problem."""
    source = Path(path) if path is not None else DEFAULT_PRESETS_PATH
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"Cannot read the presets file {source}: {exc.strerror or exc}.") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{source}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}).") from exc
    if not isinstance(data, list):
        raise InputError(f"{source}: the top level must be a JSON list of presets.")
    if not data:
        raise InputError(f"{source}: the file contains no presets.")

    presets: list[Preset] = []
    seen: set[str] = set()
    for index, entry in enumerate(data):
        preset = _validate_entry(entry, index, source)
        if preset.key in seen:
            raise InputError(f"{source}: preset {preset.key!r}: duplicate key; every preset needs a unique key.")
        seen.add(preset.key)
        presets.append(preset)
    return presets


def get_preset(key: str, path: Path | None = None) -> Preset:
    """The preset stored under ``key``; UnknownPresetError (an InputError and a KeyError) when none is."""
    presets = load_presets(path)
    for preset in presets:
        if preset.key == key:
            return preset
    known = ", ".join(p.key for p in presets)
    raise UnknownPresetError(f"No preset is named {key!r}. Known presets: {known}.")
