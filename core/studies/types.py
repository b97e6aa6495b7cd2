"""The value objects of studies, frozen: what the UI, the CLI and the reports code against."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.errors import PermissionDenied
from core.prompt import DEFAULT_TAGS
from core.tabular import RowError


@dataclass(frozen=True)
class StudySpec:
    """What an admin fills in to create a study."""

    name: str
    pass_criteria: str
    rubric: str
    tags: tuple[str, ...] = DEFAULT_TAGS  # CONTEXT, USER INPUT, MODEL OUTPUT, GOLD ANSWER
    description: str = ""
    overlap_target: int = 3  # how many different annotators should label each item
    blind: bool = True  # hide the model's verdict until the human has submitted
    judge_settings: Mapping[str, Any] = field(default_factory=dict)
    # "random" (unbiased agreement) or "uncertainty" (least-confident judgment first; core.studies.queue_order),
    # whose first `random_first` items handed out still come from the random order.
    queue_order: str = "random"
    random_first: int = 0
    # "single": each item's response is graded on the rubric; "pairwise": each item holds two responses
    # (RESPONSE A, RESPONSE B; core.studies.pairs), annotators choose the better one, the judge compares them in
    # both orders. `allow_tie`: pairwise annotators may answer "tie".
    mode: str = "single"
    allow_tie: bool = False


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
    guidelines: str = ""  # Markdown for annotators, shown on the Label tab
    archived_at: datetime | None = None  # archived: hidden from annotators, kept
    assignment: str = "open"  # "open": every annotator; "chosen": only the study's chosen annotators
    split_items: bool = False  # items split among the allowed annotators, each to overlap_target of them
    queue_order: str = "random"  # "random" or "uncertainty" (least-confident judgment first)
    random_first: int = 0  # with "uncertainty": the first N items handed out come from the random order
    mode: str = "single"  # "single" or "pairwise" (core.studies.pairs)
    allow_tie: bool = False  # pairwise: annotators may answer "tie"

    @property
    def pairwise(self) -> bool:
        return self.mode == "pairwise"

    @property
    def archived(self) -> bool:
        return self.archived_at is not None


@dataclass(frozen=True)
class Item:
    id: int
    study_id: int
    fields: dict[str, str]  # tag -> text, in the study's tag order; blank fields may be absent
    external_id: str | None  # the id column of an imported file, if any
    judgment_id: int | None  # the model's stored judgment (core.store), once graded
    order_key: int  # stable pseudo-random position in the labelling queue
    removed_at: datetime | None = None  # removed by an admin: out of the queue and the report, kept in exports
    # How the queue first handed it out: "random" / "uncertainty"; None: not yet. A record of the queue's history,
    # not part of what the item is: left out of ==, so an item compares equal before and after it is handed out.
    drawn_by: str | None = field(default=None, compare=False)


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
    # Pairwise studies: the choice in the item's terms ("A", "B", "tie"; score is its index in pairs.CHOICES) and
    # the order the responses were shown in ("AB": A first). None in single-response studies.
    choice: str | None = None
    shown_order: str | None = None


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
    # The items this user may label (core.studies.assignment): all of them in an open study, their share when
    # the items are split; None: not counted (the same as total_items).
    assigned_to_me: int | None = None


@dataclass(frozen=True)
class ImportReport:
    added: int
    item_ids: list[int]
    errors: list[RowError]


def fingerprint(texts: Iterable[object]) -> Counter[str]:
    """The non-blank texts of an item or a grade request, whitespace collapsed, as a multiset.

    Tags are left out on purpose: the same texts under renamed tags still ask the judge about the item.
    """
    found: Counter[str] = Counter()
    for value in texts:
        words = " ".join(str(value).split()) if value is not None else ""
        if words:
            found[words] += 1
    return found


@dataclass(frozen=True)
class BlindGuard:
    """What one user may not see of the judge's verdicts: the items of blind studies they have not labelled.

    Built by Studies.blind_guard; empty for an admin (who may see everything).
    """

    username: str
    hidden_judgments: frozenset[int] = frozenset()  # judgments attached to such items
    items: tuple[tuple[int, Counter[str]], ...] = ()  # (item id, fingerprint) of such items

    def covers(self, fields: Mapping[str, str] | Sequence[Sequence[str]]) -> int | None:
        """The id of the hidden item whose every text the given fields contain, or None."""
        pairs = fields.items() if isinstance(fields, Mapping) else fields
        asked = fingerprint(pair[1] for pair in pairs)
        for item_id, item in self.items:
            if item and not item - asked:  # every text of the item is in the request
                return item_id
        return None

    def hides(self, judgment_id: int, fields: Mapping[str, str] | Sequence[Sequence[str]]) -> bool:
        """Whether a stored judgment is a verdict this user may not see (attached to, or graded on, a hidden item)."""
        return judgment_id in self.hidden_judgments or self.covers(fields) is not None

    def check(self, fields: Mapping[str, str]) -> None:
        """PermissionDenied when these fields are (or contain) a blind item this user has not labelled."""
        item_id = self.covers(fields)
        if item_id is not None:
            raise PermissionDenied(
                f"These fields are item #{item_id} of a blind study that {self.username!r} has not labelled yet: "
                "its verdict stays hidden until you have labelled it in the Label tab.")
