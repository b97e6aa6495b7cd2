"""One grade end to end: prompt → judge → parse → locate spans → store.

The UI, the HTTP API and the CLI all call these functions, so a grade means the same thing
whichever way it was asked for.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from core import __version__
from core.errors import GliderError, InputError
from core.judge.base import DEFAULT_MAX_NEW_TOKENS, Generation, JudgeBackend, generate_many
from core.parse import Judgment, parse_output
from core.prompt import DEFAULT_TAGS, MODEL_OUTPUT, build_prompt, infer_scale, prompt_sha256
from core.spans import locate, ungrounded


@dataclass(frozen=True)
class FieldSpan:
    """A highlight located in one input field, by character offsets into that field's original text."""

    field: str
    start: int
    end: int
    phrase: str


@dataclass(frozen=True)
class GradeRequest:
    """What the user asked to grade. `fields` maps tag → text in display order; blank fields are omitted."""

    fields: Mapping[str, str]
    pass_criteria: str
    rubric: str
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS


@dataclass(frozen=True)
class GradeResult:
    """A finished grade: the parsed judgment, where its highlights are, and how it was produced."""

    request: GradeRequest
    prompt: str
    scale: tuple[int, int]
    judgment: Judgment
    spans: list[FieldSpan]
    ungrounded: list[str]
    generation: Generation
    repro: dict[str, Any]  # the reproducibility record: model, revision, quantization, decoding, prompt SHA-256
    created_at: datetime
    timings: dict[str, float] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    judgment_id: int | None = None

    @property
    def expected_score(self) -> float | None:
        """Probability-weighted mean score, when the back-end gave a distribution."""
        dist = self.generation.distribution
        return sum(score * p for score, p in dist.items()) if dist else None

    @property
    def confidence(self) -> float | None:
        """Probability of the most likely score value."""
        dist = self.generation.distribution
        return max(dist.values()) if dist else None

    def to_dict(self) -> dict[str, Any]:
        """The JSON object the HTTP API returns (keys are stable: scripts depend on them)."""
        dist = self.generation.distribution
        return {
            "judgment_id": self.judgment_id,
            "score": self.judgment.score,
            "status": self.judgment.status,
            "problems": list(self.judgment.problems),
            "reasoning": self.judgment.reasoning,
            "highlights": list(self.judgment.highlights),
            "spans": [vars(span) for span in self.spans],
            "ungrounded": list(self.ungrounded),
            "distribution": {str(k): v for k, v in dist.items()} if dist else None,
            "expected_score": self.expected_score,
            "confidence": self.confidence,
            "scale": list(self.scale),
            "raw_output": self.judgment.raw,
            "prompt_tokens": self.generation.prompt_tokens,
            "completion_tokens": self.generation.completion_tokens,
            "timings": dict(self.timings),
            "warnings": list(self.warnings),
            "backend": dict(self.repro),  # the API's key for the record (unchanged)
        }


class GradeSink(Protocol):
    """Where finished grades are kept: core.judgments.Judgments, or a core.store.Store (which delegates to it).

    Grading depends only on this method, not on the store, so core.grading never imports core.store.
    """

    def save_grade(self, result: GradeResult) -> int:
        """Persist one finished grade; return its judgment id."""
        ...


def locate_in_fields(fields: Mapping[str, str], phrases: list[str]) -> tuple[list[FieldSpan], list[str]]:
    """Find each phrase in every non-blank field; return the spans and the phrases found nowhere."""
    spans: list[FieldSpan] = []
    for tag, text in fields.items():
        if text and text.strip():
            spans.extend(FieldSpan(tag, s.start, s.end, s.phrase) for s in locate(text, phrases))
    return spans, ungrounded(phrases, spans)


def check_graded_text(fields: Mapping[str, str]) -> None:
    """InputError when the text to be judged is empty: MODEL OUTPUT is blank while only the other default
    fields (context, user input, gold answer) have text.

    The batch and the CLI refuse such a row too (core.batch.row_fields). With custom tags the user's
    criteria say which field is judged, so only an all-empty form is refused then (by build_prompt).
    """
    filled = {tag.strip() for tag, text in fields.items() if text and text.strip()}
    tags = {tag.strip() for tag in fields}
    if MODEL_OUTPUT in tags and MODEL_OUTPUT not in filled and filled and filled <= set(DEFAULT_TAGS):
        raise InputError(f"The {MODEL_OUTPUT} field is empty: paste the text to be judged there "
                         f"(the other fields only give it context).")


def _prepare(request: GradeRequest) -> tuple[str, tuple[int, int], dict[str, str]]:
    check_graded_text(request.fields)
    fields = {tag: text for tag, text in request.fields.items() if text and text.strip()}
    scale = infer_scale(request.rubric)
    prompt = build_prompt(fields, request.pass_criteria, request.rubric)
    return prompt, scale, fields


def _context_warnings(generation: Generation) -> tuple[str, ...]:
    # The context guard's warnings (past GLIDER's 8,192 training tokens, a lowered max_new_tokens) come with
    # the Generation: every back-end applies core.judge.common's guard, so they are worded once, here none.
    warnings = list(generation.warnings)
    if generation.finish_reason == "length":
        warnings.append("The answer hit the max-new-tokens limit and was cut off; raise the limit to get a score.")
    return tuple(warnings)


def _finish(
    backend: JudgeBackend,
    request: GradeRequest,
    prompt: str,
    scale: tuple[int, int],
    fields: dict[str, str],
    generation: Generation,
    started: float,
    store: GradeSink | None,
) -> GradeResult:
    judgment = parse_output(generation.text, scale)
    spans, ungrounded = locate_in_fields(fields, list(judgment.highlights))
    info = backend.info
    repro = {
        "backend": info.backend,
        "model_id": info.model_id,
        "revision": info.revision,
        "quantization": info.quantization,
        "dtype": info.dtype,
        "device": info.device,
        "kernel": info.kernel,  # which 4-bit routine multiplied the weights (it can differ by CPU)
        "decoding": {"strategy": "greedy", "temperature": 0.0, **generation.settings},
        "max_new_tokens": request.max_new_tokens,
        "prompt_sha256": prompt_sha256(prompt),
        "app_version": __version__,
    }
    timings = {"total_s": round(time.perf_counter() - started, 4), "generation_s": round(generation.seconds, 4)}
    if generation.first_token_seconds is not None:
        timings["first_token_s"] = round(generation.first_token_seconds, 4)
    result = GradeResult(
        request=request,
        prompt=prompt,
        scale=scale,
        judgment=judgment,
        spans=spans,
        ungrounded=ungrounded,
        generation=generation,
        repro=repro,
        created_at=datetime.now(UTC),
        timings=timings,
        warnings=_context_warnings(generation),
    )
    if store is not None:
        judgment_id = store.save_grade(result)
        result = _with_id(result, judgment_id)
    return result


def _with_id(result: GradeResult, judgment_id: int) -> GradeResult:
    from dataclasses import replace

    return replace(result, judgment_id=judgment_id)


def grade(backend: JudgeBackend, request: GradeRequest, store: GradeSink | None = None) -> GradeResult:
    """Grade one item and (when a GradeSink is given) persist it; raises InputError/JudgeError subclasses."""
    started = time.perf_counter()
    prompt, scale, fields = _prepare(request)
    generation = backend.generate(prompt, scale=scale, max_new_tokens=request.max_new_tokens)
    return _finish(backend, request, prompt, scale, fields, generation, started, store)


def grade_stream(
    backend: JudgeBackend, request: GradeRequest, store: GradeSink | None = None
) -> Iterator[str | GradeResult]:
    """Like grade, yielding the generated text's deltas first and the stored GradeResult last."""
    started = time.perf_counter()
    prompt, scale, fields = _prepare(request)
    generation: Generation | None = None
    for event in backend.stream(prompt, scale=scale, max_new_tokens=request.max_new_tokens):
        if isinstance(event, Generation):
            generation = event
        else:
            yield event
    if generation is None:  # a back-end bug, not user error: say so plainly
        raise RuntimeError(f"{type(backend).__name__}.stream ended without a final Generation")
    yield _finish(backend, request, prompt, scale, fields, generation, started, store)


def grade_batch(
    backend: JudgeBackend, requests: Sequence[GradeRequest], store: GradeSink | None = None
) -> list[GradeResult | GliderError]:
    """Grade many items with as few model calls as the back-end allows, in the order given.

    A request that cannot be graded (bad input, a prompt too long for the model) yields its typed error
    in its place; the others are graded. Errors that stop the whole batch (the server is down) are raised.
    Every request must share one max_new_tokens (a batch decodes to one limit).
    """
    if not requests:
        return []
    limits = {request.max_new_tokens for request in requests}
    if len(limits) > 1:
        raise InputError(f"A batch decodes to one max_new_tokens; got {sorted(limits)}.")
    started = time.perf_counter()
    outcomes: list[GradeResult | GliderError | None] = [None] * len(requests)
    prepared: list[tuple[int, str, tuple[int, int], dict[str, str]]] = []
    for index, request in enumerate(requests):
        try:
            prepared.append((index, *_prepare(request)))
        except InputError as error:
            outcomes[index] = error
    generations = generate_many(
        backend, [p[1] for p in prepared], scales=[p[2] for p in prepared], max_new_tokens=limits.pop()
    )
    for (index, prompt, scale, fields), generation in zip(prepared, generations, strict=True):
        if isinstance(generation, GliderError):
            outcomes[index] = generation
        else:
            outcomes[index] = _finish(backend, requests[index], prompt, scale, fields, generation, started, store)
    return [outcome for outcome in outcomes if outcome is not None]
