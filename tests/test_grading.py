"""A grade end to end with no fake anywhere: trained tiny judge → parse → spans → SQLite → reopen."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import InputError, RubricError
from core.grading import GradeRequest, GradeResult, GradeSink, grade, grade_batch, grade_stream, locate_in_fields
from core.judgments import Judgments
from core.store import Store
from tests.conftest import TEACH_CRITERIA, TEACH_FIELDS, TEACH_RUBRIC
from tests.fakes import ScriptedJudge


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(f"sqlite:///{tmp_path / 'judgments.db'}")


def test_real_grade_is_parsed_located_and_stored(trained_judge, store: Store) -> None:  # noqa: ANN001
    request = GradeRequest(dict(TEACH_FIELDS), TEACH_CRITERIA, TEACH_RUBRIC)
    result = grade(trained_judge, request, store)

    assert (result.judgment.status, result.judgment.score, result.scale) == ("ok", 1, (0, 1))
    assert result.judgment.highlights == ["Paris is the capital of France", "capital"]
    # Both fields hold the sentence: each highlight is located in each, by offsets into the user's text.
    for span in result.spans:
        text = TEACH_FIELDS[span.field]
        assert text[span.start : span.end].lower() == span.phrase.lower()
    assert {(s.field, s.phrase) for s in result.spans} == {
        (field, phrase) for field in TEACH_FIELDS for phrase in result.judgment.highlights
    }
    assert result.ungrounded == []
    assert result.expected_score is not None and result.expected_score > 0.5
    assert result.repro["model_id"] == trained_judge.info.model_id
    assert result.repro["quantization"] == "none" and len(result.repro["prompt_sha256"]) == 64

    stored = store.get_judgment(result.judgment_id)
    assert stored is not None
    assert stored.score == 1 and stored.status == "ok" and stored.raw_output == result.judgment.raw
    assert stored.fields == TEACH_FIELDS and stored.rubric == TEACH_RUBRIC
    assert stored.spans == [vars(span) for span in result.spans]
    assert stored.distribution == result.generation.distribution
    assert stored.repro["prompt_sha256"] == result.repro["prompt_sha256"]
    assert stored.timings["total_s"] >= stored.timings["generation_s"] > 0


def test_stream_then_result_matches_plain_grade(trained_judge, store: Store) -> None:  # noqa: ANN001
    request = GradeRequest(dict(TEACH_FIELDS), TEACH_CRITERIA, TEACH_RUBRIC)
    events = list(grade_stream(trained_judge, request, store))
    *deltas, final = events
    assert isinstance(final, GradeResult) and all(isinstance(d, str) for d in deltas)
    assert "".join(deltas) == final.judgment.raw
    assert final.judgment_id is not None and store.count_judgments() == 1


def test_to_dict_is_the_api_shape() -> None:
    result = grade(ScriptedJudge(), GradeRequest({"CONTEXT": "Paris is the capital of France.",
                                                   "MODEL OUTPUT": "The capital is Paris."},
                                                  "Faithful?", "0: no\n1: yes"))
    payload = result.to_dict()
    for key in ("score", "status", "problems", "reasoning", "highlights", "spans", "ungrounded", "distribution",
                "judgment_id"):
        assert key in payload
    assert payload["distribution"] == {"0": 0.1, "1": 0.9}
    assert payload["spans"][0].keys() == {"field", "start", "end", "phrase"}
    # 'Paris is the capital of France' is only in CONTEXT; 'capital' is in both fields.
    assert {(s["field"], s["phrase"]) for s in payload["spans"]} == {
        ("CONTEXT", "Paris is the capital of France"), ("CONTEXT", "capital"), ("MODEL OUTPUT", "capital")}


def test_unparseable_answer_is_failed_not_a_fake_score(store: Store) -> None:
    judge = ScriptedJudge(answer="I think it is pretty good overall.")
    result = grade(judge, GradeRequest({"MODEL OUTPUT": "x"}, "c", "1: bad\n5: good"), store)
    assert result.judgment.status == "failed" and result.judgment.score is None
    assert result.judgment.problems
    assert store.get_judgment(result.judgment_id).score is None


def test_ungrounded_highlights_are_reported() -> None:
    spans, ungrounded = locate_in_fields({"MODEL OUTPUT": "The sky is blue."}, ["sky", "faithful to the context"])
    assert [s.phrase for s in spans] == ["sky"] and ungrounded == ["faithful to the context"]


def test_ungrounded_highlights_follow_spans_ungrounded_once_each_and_never_blank() -> None:
    """Fields report what core.spans.ungrounded reports for one text: each phrase once, blanks left out."""
    phrases = ["sky", "faithful", "faithful", "  ", "sea"]
    spans, ungrounded = locate_in_fields({"MODEL OUTPUT": "The sky is blue.", "CONTEXT": "A grey sea."}, phrases)
    assert sorted(s.phrase for s in spans) == ["sea", "sky"] and ungrounded == ["faithful"]


@pytest.mark.parametrize(
    ("fields", "rubric", "error"),
    [({"MODEL OUTPUT": "x"}, "be nice", RubricError), ({"MODEL OUTPUT": " "}, "0: a\n1: b", InputError)],
)
def test_bad_requests_fail_before_the_model_is_called(fields, rubric, error) -> None:  # noqa: ANN001
    judge = ScriptedJudge()
    with pytest.raises(error):
        grade(judge, GradeRequest(fields, "criteria", rubric))
    assert judge.prompts == []


def test_real_grade_renders_the_same_fresh_and_reopened(trained_judge, store: Store) -> None:  # noqa: ANN001
    """The last step of the loop with no fake: the stored judgment renders exactly like the fresh one."""
    from webapp import render
    from webapp.view_models import JudgmentView

    result = grade(trained_judge, GradeRequest(dict(TEACH_FIELDS), TEACH_CRITERIA, TEACH_RUBRIC), store)
    fresh = JudgmentView.from_result(result)
    reopened = JudgmentView.from_stored(store.get_judgment(result.judgment_id))
    html = render.render_fields(fresh.fields, fresh.spans)
    assert html == render.render_fields(reopened.fields, reopened.spans)
    # Per field: the sentence, split around the nested 'capital' into three marks that never nest.
    assert html.count('<mark class="gl-hl') == 6 and "<mark" not in html.split("</mark>")[-1]
    overlap = '<mark class="gl-hl gl-hl-multi" title="Highlighted: Paris is the capital of France | capital">capital'
    assert html.count(overlap) == 2
    assert render.render_score_card(fresh) == render.render_score_card(reopened)


@pytest.mark.parametrize(
    "fields",
    [
        {"CONTEXT": "Paris is the capital of France.", "USER INPUT": "Capital?", "MODEL OUTPUT": "", "GOLD ANSWER": ""},
        {"CONTEXT": "Paris is the capital of France.", "MODEL OUTPUT": "  \n "},
        {"USER INPUT": "Capital?", "MODEL OUTPUT": "", "GOLD ANSWER": "Paris"},
    ],
)
def test_an_empty_model_output_is_refused_before_the_judge_runs(fields: dict[str, str], store: Store) -> None:
    judge = ScriptedJudge()
    request = GradeRequest(fields, "Is it faithful?", "0: no\n1: yes")
    with pytest.raises(InputError, match="The MODEL OUTPUT field is empty"):
        grade(judge, request, store)
    with pytest.raises(InputError, match="The MODEL OUTPUT field is empty"):
        list(grade_stream(judge, request, store))
    [outcome] = grade_batch(judge, [request], store)
    assert isinstance(outcome, InputError) and "MODEL OUTPUT field is empty" in str(outcome)
    assert judge.prompts == [] and store.count_judgments() == 0


@pytest.mark.parametrize(
    "fields",
    [
        {"MODEL OUTPUT": "Paris."},
        {"CONTEXT": "Paris is the capital of France.", "MODEL OUTPUT": "Paris."},
        # Custom tags: the user's criteria name the judged field; the form's unused default slots stay empty.
        {"QUESTION": "Capital?", "ANSWER": "Paris.", "MODEL OUTPUT": "", "GOLD ANSWER": ""},
    ],
)
def test_a_model_output_or_custom_fields_are_graded(fields: dict[str, str]) -> None:
    result = grade(ScriptedJudge(), GradeRequest(fields, "Is it faithful?", "0: no\n1: yes"))
    assert result.judgment.status == "ok"


class ListSink:
    """A GradeSink that keeps grades in a list: grading needs nothing from a database but save_grade."""

    def __init__(self) -> None:
        self.saved: list[GradeResult] = []

    def save_grade(self, result: GradeResult) -> int:
        self.saved.append(result)
        return 100 + len(self.saved)


def test_grades_go_to_any_grade_sink_and_the_repository_is_one(tmp_path: Path) -> None:
    sink: GradeSink = ListSink()
    request = GradeRequest({"CONTEXT": "Paris is the capital of France.", "MODEL OUTPUT": "The capital is Paris."},
                           "Faithful?", "0: no\n1: yes")
    one = grade(ScriptedJudge(), request, sink)
    *_, streamed = grade_stream(ScriptedJudge(), request, sink)
    batched = grade_batch(ScriptedJudge(), [request, request], sink)
    assert [one.judgment_id, streamed.judgment_id] + [r.judgment_id for r in batched] == [101, 102, 103, 104]
    assert [r.judgment.score for r in sink.saved] == [1, 1, 1, 1]
    assert all(r.judgment_id is None for r in sink.saved)  # the sink gets the result; the id comes back

    with Store.from_path(tmp_path / "judgments.db") as store:
        judgments: GradeSink = Judgments(store)
        stored = Judgments(store).get(grade(ScriptedJudge(), request, judgments).judgment_id)  # type: ignore[arg-type]
        assert stored is not None and stored.score == 1 and stored.fields == dict(request.fields)


def test_the_repro_record_names_the_kernel_that_multiplied_the_weights() -> None:
    """Two CPUs can run the same nf4 model through different 4-bit routines: the record says which one ran."""
    from dataclasses import replace

    judge = ScriptedJudge()
    judge.info = replace(judge.info, quantization="nf4",
                         kernel="nf4 via bitsandbytes (native CPU kernel, AVX512-BF16 path)")
    result = grade(judge, GradeRequest({"MODEL OUTPUT": "Paris."}, TEACH_CRITERIA, TEACH_RUBRIC))
    assert result.repro["kernel"] == "nf4 via bitsandbytes (native CPU kernel, AVX512-BF16 path)"
    assert result.to_dict()["backend"]["kernel"] == result.repro["kernel"]
