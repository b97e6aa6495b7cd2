"""Human-agreement studies: annotators, studies, items, blind annotations with edit history.

CONTRACT STUB — the value types, the exception and the public method signatures below are fixed
(the UI codes against them); the bodies are to be written. Every method that reads or changes labels
takes the signed-in `actor` and checks it: annotators only ever see and change their own labels,
admins see everything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from core.errors import GliderError, InputError
from core.store import Store

ADMIN, ANNOTATOR = "admin", "annotator"
ROLES = (ADMIN, ANNOTATOR)


class PermissionDenied(GliderError):
    """The signed-in user may not see or change this."""


class StudyInputError(InputError):
    """A study, item, file or label is not acceptable as given; the message says why."""


@dataclass(frozen=True)
class User:
    id: int
    username: str
    role: str  # "admin" | "annotator"
    created_at: datetime

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN


@dataclass(frozen=True)
class StudySpec:
    """What an admin fills in to create a study."""

    name: str
    pass_criteria: str
    rubric: str
    tags: tuple[str, ...] = ("CONTEXT", "USER INPUT", "MODEL OUTPUT", "GOLD ANSWER")
    description: str = ""
    overlap_target: int = 3  # how many different annotators should label each item
    blind: bool = True  # hide the model's verdict until the human has submitted
    judge_settings: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Study:
    id: int
    name: str
    description: str
    pass_criteria: str
    rubric: str
    scale: tuple[int, int]
    tags: tuple[str, ...]
    overlap_target: int
    blind: bool
    judge_settings: dict[str, Any]
    created_by: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Item:
    id: int
    study_id: int
    fields: dict[str, str]  # tag -> text, in the study's tag order; blank fields may be absent
    external_id: str | None  # the id column of an imported file, if any
    judgment_id: int | None  # the model's stored judgment (core.store), once graded
    order_key: int  # stable pseudo-random position in the labelling queue


@dataclass(frozen=True)
class Annotation:
    id: int
    study_id: int
    item_id: int
    annotator: str  # username
    score: int  # the current score: the revised one when revised, else the first one
    score_before_reveal: int  # the score given before the model's verdict was shown
    score_after_reveal: int | None  # the (possibly equal) score confirmed after the reveal; None if not yet
    spans: list[dict[str, Any]]  # human evidence: each {"field", "start", "end"} (character offsets)
    comment: str
    seconds: float  # time spent on the item
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class AnnotationEdit:
    annotation_id: int
    editor: str
    at: datetime
    changes: dict[str, tuple[Any, Any]]  # field name -> (old, new)


@dataclass(frozen=True)
class Progress:
    labelled_by_me: int
    total_items: int
    items_complete: int  # items with >= overlap_target labels
    overlap_target: int
    annotators: int  # distinct annotators with at least one label


@dataclass(frozen=True)
class RowError:
    row: int  # 1-based data row number in the file (header not counted)
    message: str


@dataclass(frozen=True)
class ImportReport:
    added: int
    item_ids: list[int]
    errors: list[RowError]


class Studies:
    """Studies, items, users and annotations, stored in the same database as judgments."""

    def __init__(self, store: Store) -> None:
        raise NotImplementedError

    # -- users -----------------------------------------------------------------------------------
    def create_user(self, username: str, password: str, role: str = ANNOTATOR) -> User:
        raise NotImplementedError

    def authenticate(self, username: str, password: str) -> User | None:
        raise NotImplementedError

    def get_user(self, username: str) -> User | None:
        raise NotImplementedError

    def list_users(self, actor: User) -> list[User]:
        raise NotImplementedError

    # -- studies and items -----------------------------------------------------------------------
    def create_study(self, actor: User, spec: StudySpec) -> Study:
        raise NotImplementedError

    def list_studies(self, actor: User) -> list[Study]:
        raise NotImplementedError

    def get_study(self, actor: User, study_id: int) -> Study:
        raise NotImplementedError

    def add_item(
        self, actor: User, study_id: int, fields: Mapping[str, str], *, external_id: str | None = None,
        judgment_id: int | None = None,
    ) -> Item:
        raise NotImplementedError

    def preview_file(self, path: str | Path, rows: int = 5) -> tuple[list[str], list[dict[str, Any]]]:
        """(column names, first rows) of a CSV or JSONL file, for the column-mapping step."""
        raise NotImplementedError

    def import_items(
        self, actor: User, study_id: int, path: str | Path, mapping: Mapping[str, str], *, id_column: str | None = None
    ) -> ImportReport:
        """Import CSV/JSONL rows; `mapping` is field tag -> column. Bad rows are reported, good rows kept."""
        raise NotImplementedError

    def list_items(self, actor: User, study_id: int) -> list[Item]:
        raise NotImplementedError

    def get_item(self, actor: User, item_id: int) -> Item:
        raise NotImplementedError

    def attach_judgment(self, actor: User, item_id: int, judgment_id: int) -> None:
        raise NotImplementedError

    # -- labelling -------------------------------------------------------------------------------
    def next_item(self, actor: User, study_id: int) -> Item | None:
        """An item this annotator has not labelled that has < overlap_target labels, in stable random order."""
        raise NotImplementedError

    def progress(self, actor: User, study_id: int) -> Progress:
        raise NotImplementedError

    def submit(
        self, actor: User, item_id: int, score: int, *, spans: Sequence[Mapping[str, Any]] = (), comment: str = "",
        seconds: float = 0.0,
    ) -> Annotation:
        """Store the annotator's (blind) label; committed before returning."""
        raise NotImplementedError

    def confirm_after_reveal(self, actor: User, annotation_id: int, score: int) -> Annotation:
        """Record the score after the model's verdict was revealed (once); the first score is kept."""
        raise NotImplementedError

    def edit(
        self, actor: User, annotation_id: int, *, score: int | None = None, comment: str | None = None,
        spans: Sequence[Mapping[str, Any]] | None = None,
    ) -> Annotation:
        """Change one's own label later; every change is kept in the edit history."""
        raise NotImplementedError

    def my_annotations(self, actor: User, study_id: int) -> list[Annotation]:
        raise NotImplementedError

    def get_annotation(self, actor: User, annotation_id: int) -> Annotation:
        raise NotImplementedError

    def history(self, actor: User, annotation_id: int) -> list[AnnotationEdit]:
        raise NotImplementedError

    # -- reporting (admins) ----------------------------------------------------------------------
    def ratings(self, actor: User, study_id: int) -> list[dict[str, Any]]:
        """One row per annotation, the input of core.agreement.agreement_report (see its docstring)."""
        raise NotImplementedError

    def export_rows(self, actor: User, study_id: int) -> list[dict[str, Any]]:
        """One row per annotation with the item's fields and the model's outputs, for CSV/JSONL export."""
        raise NotImplementedError
