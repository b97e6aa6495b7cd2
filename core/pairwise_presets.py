"""Pairwise criteria presets, shipped in assets/pairwise_presets.json.

A file of its own, so the single-response presets (assets/presets.json, core.presets) stay as they are. The
format is core.presets' (key, name, description, pass_criteria, rubric, example), read by its loader; each
rubric must also be a pairwise 0/1 scale (core.pairwise.check_pair_rubric) and each example must hold both
responses (MODEL OUTPUT 1 and MODEL OUTPUT 2).
"""

from __future__ import annotations

from pathlib import Path

from core.errors import InputError
from core.pairwise import OUTPUT_1, OUTPUT_2, check_pair_rubric
from core.presets import DEFAULT_PRESETS_PATH, Preset, load_presets

PAIRWISE_PRESETS_PATH = DEFAULT_PRESETS_PATH.with_name("pairwise_presets.json")


def load_pairwise_presets(path: Path | None = None) -> list[Preset]:
    """Read and validate the pairwise presets; InputError names the preset and the problem."""
    source = Path(path) if path is not None else PAIRWISE_PRESETS_PATH
    presets = load_presets(source)
    for preset in presets:
        try:
            check_pair_rubric(preset.rubric)
        except InputError as error:
            raise InputError(f"{source}: preset {preset.key!r}: {error}") from error
        missing = [tag for tag in (OUTPUT_1, OUTPUT_2) if not preset.example.get(tag, "").strip()]
        if missing:
            raise InputError(f"{source}: preset {preset.key!r}: the example needs text for {', '.join(missing)}.")
    return presets
