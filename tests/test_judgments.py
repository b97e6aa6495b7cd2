"""The judgments repository (core.judgments): stored grades round-trip exactly, list, count and delete.

Tested on real SQLite files (no mocks).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from core.grading import FieldSpan, GradeRequest, GradeResult
from core.judge.base import Generation
from core.judgments import JudgmentRow, Judgments
from core.parse import parse_output
from core.store import Store
from tests.fakes import WELL_FORMED

ANSWER = WELL_FORMED

REPRO = {
    "backend": "transformers",
    "model_id": "PatronusAI/glider",
    "revision": "abc123",
    "quantization": "nf4",
    "dtype": "bfloat16",
    "device": "cuda:0",
    "decoding": {"strategy": "greedy", "temperature": 0.0},
    "max_new_tokens": 1024,
    "prompt_sha256": "0" * 64,
    "app_version": "0.1.0",
}

CREATED = datetime(2025, 3, 1, 12, 30, 45, 123456, tzinfo=UTC)


def make_result(
    fields: dict[str, str] | None = None,
    raw: str = ANSWER,
    created_at: datetime = CREATED,
    distribution: dict[int, float] | None = None,
    pass_criteria: str = "Is the response faithful to the context?",
    rubric: str = "0: The response is not faithful.\n1: The response is faithful.",
) -> GradeResult:
    """A complete GradeResult built from the real value types and a really parsed answer."""
    fields = fields if fields is not None else {
        "CONTEXT": "France's capital is Paris.",
        "USER INPUT": "What is the capital of France?",
        "MODEL OUTPUT": "Paris is the capital of France.",
    }
    distribution = distribution if distribution is not None else {0: 0.125, 1: 0.875}
    generation = Generation(text=raw, prompt_tokens=412, completion_tokens=57, finish_reason="stop",
                            distribution=distribution, distribution_mass=0.97, seconds=1.25,
                            first_token_seconds=0.5, settings={"top_k": None})
    return GradeResult(
        request=GradeRequest(fields=fields, pass_criteria=pass_criteria, rubric=rubric),
        prompt="<the rendered GLIDER prompt>",
        scale=(0, 1),
        judgment=parse_output(raw, (0, 1)),
        spans=[FieldSpan("MODEL OUTPUT", 0, 30, "Paris is the capital of France"),
               FieldSpan("CONTEXT", 10, 17, "capital")],
        ungrounded=["not in any field"],
        generation=generation,
        repro=dict(REPRO),
        created_at=created_at,
        timings={"total_s": 1.5, "generation_s": 1.25, "first_token_s": 0.5},
        warnings=("The prompt is long.",),
    )


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "nested" / "glider.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    with Store.from_path(db_path) as opened:
        yield opened


@pytest.fixture
def judgments(store: Store) -> Judgments:
    return Judgments(store)


# ---- round trip


def test_full_grade_round_trips(judgments: Judgments) -> None:
    result = make_result()
    judgment_id = judgments.save_grade(result)
    stored = judgments.get(judgment_id)

    assert stored is not None
    assert stored.id == judgment_id
    assert stored.created_at == CREATED
    assert stored.fields == dict(result.request.fields)
    assert stored.pass_criteria == result.request.pass_criteria
    assert stored.rubric == result.request.rubric
    assert stored.scale == (0, 1)
    assert stored.raw_output == ANSWER
    assert stored.reasoning == result.judgment.reasoning
    assert stored.highlights == ["Paris is the capital of France", "capital"]
    assert stored.score == 1
    assert stored.status == "ok"
    assert stored.problems == []
    assert stored.spans == [
        {"field": "MODEL OUTPUT", "start": 0, "end": 30, "phrase": "Paris is the capital of France"},
        {"field": "CONTEXT", "start": 10, "end": 17, "phrase": "capital"},
    ]
    assert stored.ungrounded == ["not in any field"]
    assert stored.distribution == {0: 0.125, 1: 0.875}
    assert stored.distribution_mass == 0.97
    assert stored.expected_score == pytest.approx(0.875)
    assert stored.confidence == 0.875
    assert stored.prompt_tokens == 412
    assert stored.completion_tokens == 57
    assert stored.timings == {"total_s": 1.5, "generation_s": 1.25, "first_token_s": 0.5}
    assert stored.repro == REPRO
    assert stored.warnings == ["The prompt is long."]


def test_repro_is_also_in_indexed_columns(judgments: Judgments, db_path: Path) -> None:
    judgments.save_grade(make_result())
    with sqlite3.connect(db_path) as raw:
        row = raw.execute("SELECT model_id, backend, prompt_sha256 FROM judgments").fetchone()
        indexes = {r[1] for r in raw.execute("PRAGMA index_list(judgments)")}
    assert row == ("PatronusAI/glider", "transformers", "0" * 64)
    assert {"ix_judgments_model_id", "ix_judgments_backend", "ix_judgments_prompt_sha256",
            "ix_judgments_created_at"} <= indexes


def test_missing_distribution_and_score_are_none(judgments: Judgments) -> None:
    result = make_result(raw="no tags at all", distribution={})
    stored = judgments.get(judgments.save_grade(result))
    assert stored is not None
    assert stored.distribution is None
    assert stored.expected_score is None and stored.confidence is None
    assert stored.raw_output == "no tags at all"
    assert (stored.score, stored.status, stored.reasoning, stored.highlights) == (None, "failed", None, [])
    assert stored.problems == result.judgment.problems and stored.problems


PAYLOADS = [
    "<script>alert('x')</script>",
    '<img src=x onerror="alert(1)">',
    "Ünïcödé — “quotes” ‘single’ … 中文 العربية עברית",
    "emoji 🧪👩🏽‍🔬 and combining e\u0301 vs \u00e9",
    "line\r\nbreaks\rand\ttabs\n\n  trailing spaces  ",
    "json-ish {\"a\": [1, 2]} and back\\slashes \\u0000",
    "nul \x00 inside",
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_text_survives_byte_exact(judgments: Judgments, payload: str) -> None:
    fields = {f"TAG {payload[:3]}": payload, "MODEL OUTPUT": payload}
    result = make_result(fields=fields, raw=payload + ANSWER, pass_criteria=payload, rubric="0: " + payload)
    stored = judgments.get(judgments.save_grade(result))
    assert stored is not None
    assert stored.fields == fields
    assert stored.raw_output == payload + ANSWER
    assert stored.pass_criteria == payload
    assert stored.rubric == "0: " + payload
    assert all(a.encode() == b.encode() for a, b in zip(stored.fields.values(), fields.values(), strict=True))


def test_field_order_is_preserved(judgments: Judgments) -> None:
    fields = {"Zeta": "z", "MODEL OUTPUT": "out", "Alpha": "a", "10": "ten", "2": "two"}
    stored = judgments.get(judgments.save_grade(make_result(fields=fields)))
    assert stored is not None
    assert list(stored.fields.items()) == list(fields.items())


def test_distribution_keys_are_ints(judgments: Judgments) -> None:
    result = make_result(distribution={1: 0.1, 2: 0.2, 3: 0.3, 4: 0.25, 5: 0.15})
    stored = judgments.get(judgments.save_grade(result))
    assert stored is not None and stored.distribution is not None
    assert stored.distribution == {1: 0.1, 2: 0.2, 3: 0.3, 4: 0.25, 5: 0.15}
    assert all(type(key) is int for key in stored.distribution)


def test_datetimes_are_aware_utc(judgments: Judgments) -> None:
    india = timezone(timedelta(hours=5, minutes=30))
    local = datetime(2025, 3, 1, 18, 0, 45, 123456, tzinfo=india)
    stored = judgments.get(judgments.save_grade(make_result(created_at=local)))
    assert stored is not None
    assert stored.created_at.tzinfo is UTC
    assert stored.created_at == local == CREATED
    summary = judgments.summaries()[0]
    assert summary.created_at.tzinfo is UTC and summary.created_at == CREATED
    assert all(applied_at.tzinfo is UTC for _, _, applied_at in judgments.store.applied_migrations())


def test_naive_created_at_is_refused(judgments: Judgments) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        judgments.save_grade(make_result(created_at=datetime(2025, 3, 1, 12, 0)))
    assert judgments.count() == 0


# ---- listing, counting, deleting


def test_list_is_newest_first_with_paging(judgments: Judgments) -> None:
    days = [3, 1, 4, 2]
    ids = {day: judgments.save_grade(make_result(fields={"MODEL OUTPUT": f"answer of day {day}"},
                                             created_at=CREATED + timedelta(days=day))) for day in days}
    listed = judgments.summaries()
    assert [s.id for s in listed] == [ids[4], ids[3], ids[2], ids[1]]
    assert [s.preview for s in listed] == [f"answer of day {d}" for d in (4, 3, 2, 1)]
    assert [s.id for s in judgments.summaries(limit=2, offset=1)] == [ids[3], ids[2]]
    assert judgments.summaries(limit=10, offset=10) == []
    assert judgments.count() == 4
    first = listed[0]
    assert (first.score, first.status, first.model_id) == (1, "ok", "PatronusAI/glider")


def test_same_timestamp_breaks_ties_by_id(judgments: Judgments) -> None:
    ids = [judgments.save_grade(make_result()) for _ in range(3)]
    assert [s.id for s in judgments.summaries()] == ids[::-1]


@pytest.mark.parametrize(
    ("fields", "preview"),
    [
        ({"CONTEXT": "ctx", "MODEL OUTPUT": "the  output\n text"}, "the output text"),
        ({"CONTEXT": "  ", "USER INPUT": "first non-blank", "GOLD ANSWER": "x"}, "first non-blank"),
        ({"MODEL OUTPUT": "   ", "CONTEXT": "fallback"}, "fallback"),
        ({"MODEL OUTPUT": "word " * 40}, ("word " * 16).strip() + "…"),
    ],
)
def test_preview(judgments: Judgments, fields: dict[str, str], preview: str) -> None:
    judgments.save_grade(make_result(fields=fields))
    got = judgments.summaries()[0].preview
    assert got == preview
    assert len(got) <= 80


def test_delete(judgments: Judgments) -> None:
    keep, gone = judgments.save_grade(make_result()), judgments.save_grade(make_result())
    assert judgments.delete(gone) is True
    assert judgments.delete(gone) is False
    assert judgments.get(gone) is None
    assert judgments.get(keep) is not None
    assert judgments.count() == 1


def test_missing_id_is_none(judgments: Judgments) -> None:
    assert judgments.get(12345) is None


def test_negative_paging_is_refused(judgments: Judgments) -> None:
    with pytest.raises(ValueError):
        judgments.summaries(limit=-1)



def test_orm_model_matches_migrated_schema(store: Store, db_path: Path) -> None:
    with sqlite3.connect(db_path) as raw:
        columns = [row[1] for row in raw.execute("PRAGMA table_info(judgments)")]
    assert columns == [column.name for column in JudgmentRow.__table__.columns]
