"""The Studies tab's pairwise choices (core.studies.pairs): the mode picker's options, the boxes a mode switch
refills, and how the study list names a study's scale."""

from __future__ import annotations

from functools import cache

from core.errors import InputError
from core.pairwise import DEFAULT_PAIR_RUBRIC
from core.pairwise_presets import load_pairwise_presets
from core.presets import Preset
from core.prompt import DEFAULT_TAGS
from core.studies import Study
from core.studies.pairs import PAIR_STUDY_TAGS, PAIRWISE, SINGLE
from webapp.view_models import parse_tags

MODE_CHOICES = [("Grade one response", SINGLE), ("Compare two responses (pairwise)", PAIRWISE)]


@cache
def pair_presets() -> tuple[Preset, ...]:
    """The pairwise criteria presets (assets/pairwise_presets.json), offered while a pairwise study is set up; none
    when the file cannot be read (the Compare panel says why)."""
    try:
        return tuple(load_pairwise_presets())
    except InputError:
        return ()


def pair_preset(key: str | None) -> Preset | None:
    return next((preset for preset in pair_presets() if preset.key == key), None)


def mode_criteria(criteria: str, old: Preset | None) -> str:
    """The pass criteria box after a mode switch: emptied when it holds the previous preset's criteria (they were
    written for the other mode), else kept."""
    return "" if old is not None and criteria.strip() == old.pass_criteria.strip() else criteria


def mode_defaults(mode: str, tags: str, rubric: str, preset_rubric: str) -> tuple[str, str]:
    """The tags and rubric boxes after switching to `mode`. Pairwise: the 0/1 pairwise rubric (a one-response
    rubric compares nothing), and PAIR_STUDY_TAGS where the tags box holds the default tags; one response: the
    default tags and the chosen preset's rubric where the boxes hold the pairwise defaults. Tags the admin typed
    are kept, and so is a rubric they typed for one response."""
    single_tags, pair_tags = ", ".join(DEFAULT_TAGS), ", ".join(PAIR_STUDY_TAGS)
    typed = parse_tags(tags)
    if mode == PAIRWISE:
        new_tags = pair_tags if typed in ((), DEFAULT_TAGS) else tags
        new_rubric = DEFAULT_PAIR_RUBRIC
    else:
        new_tags = single_tags if typed in ((), PAIR_STUDY_TAGS) else tags
        new_rubric = preset_rubric if rubric.strip() in ("", DEFAULT_PAIR_RUBRIC) else rubric
    return new_tags, new_rubric


def scale_column(study: Study) -> str:
    """The study list's Scale column: the score range, or "pairwise" (", ties allowed") for a pairwise study."""
    if study.pairwise:
        return "pairwise, ties allowed" if study.allow_tie else "pairwise"
    return f"{study.scale[0]}\u2013{study.scale[1]}"
