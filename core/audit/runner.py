"""Run a robustness audit: re-grade a study's items (or a seeded sample) unperturbed and under each perturbation.

Every grade goes through core.grading.grade_batch and is saved to the store as a judgment of its own; none
is attached to an item, so the study's judgments stay as they were. After each run, `record_run(name,
config, {item_id: judgment_id})` is called, so a caller can keep the run as a judge run of the study
(the default does nothing). The result holds, per run, each item's score (in the original request's
meaning) and judgment id, and the audit block of core.audit.report.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.accounts import User
from core.audit.perturbations import Perturbation, PerturbationNotApplicable, Perturbed, unchanged
from core.audit.report import RunScores, audit_report, human_consensus, pair_consensus
from core.batch import DEFAULT_BATCH_SIZE
from core.errors import InputError, JudgeError, StudyInputError
from core.grading import GradeRequest, GradeResult, grade_batch
from core.judge.base import DEFAULT_MAX_NEW_TOKENS, JudgeBackend
from core.pairwise import ORDERS
from core.parse import FAILED as PARSE_FAILED
from core.store import Store
from core.studies import pairs
from core.studies.service import Studies

UNPERTURBED = "unperturbed"
AB = ORDERS[0]  # ("A", "B"): response A in MODEL OUTPUT 1

# record_run(name, config, {item_id: judgment_id}): keep one run's judgments (e.g. as a judge run of the study).
RecordRun = Callable[[str, Mapping[str, Any], Mapping[int, int]], Any]
# load_judge(backend name, **options): the judge of an other-judge perturbation (default core.judge.create_backend).
LoadJudge = Callable[..., JudgeBackend]
# on_progress(run name, items graded in this run, items in this run)
AuditProgress = Callable[[str, int, int], None]


def no_record(name: str, config: Mapping[str, Any], judgments: Mapping[int, int]) -> None:
    """The default record_run: the judgments are in the store already; keep nothing more."""


@dataclass(frozen=True)
class AuditRun:
    """One run of the audit: per item, its score in the original request's meaning and its judgment id."""

    name: str
    description: str
    kind: str
    judge: str  # the judge that graded it, in words (BackendInfo.describe)
    config: dict[str, Any]  # what record_run was given: the perturbation and the judge's record
    scores: dict[int, int | None] = field(default_factory=dict)  # None: the answer gave no score
    judgment_ids: dict[int, int] = field(default_factory=dict)
    errors: dict[int, str] = field(default_factory=dict)  # items it could not apply to or grade, and why
    not_applicable: str | None = None  # why it applied to no item (nothing was graded)

    def for_report(self) -> RunScores:
        return RunScores(self.name, self.scores, self.description, self.kind, self.judge, self.errors,
                         self.not_applicable)


@dataclass(frozen=True)
class AuditResult:
    """The audit of one study: which items, each run, and the report block (core.audit.report.audit_report)."""

    study_id: int
    study_name: str
    item_ids: tuple[int, ...]
    sample: dict[str, Any]
    baseline: AuditRun
    runs: tuple[AuditRun, ...]
    block: dict[str, Any]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the block, and each run's scores and judgment ids (item ids as strings, JSON's keys)."""
        def run(entry: AuditRun) -> dict[str, Any]:
            return {"name": entry.name, "config": entry.config, "not_applicable": entry.not_applicable,
                    "scores": {str(k): v for k, v in entry.scores.items()},
                    "judgment_ids": {str(k): v for k, v in entry.judgment_ids.items()},
                    "errors": {str(k): v for k, v in entry.errors.items()}}

        return {"study_id": self.study_id, "study": self.study_name, "item_ids": list(self.item_ids),
                "sample": self.sample, "seconds": self.seconds, "audit": self.block,
                "runs": [run(self.baseline), *(run(entry) for entry in self.runs)]}


def choose_items(item_ids: Sequence[int], sample: int | None, seed: int) -> tuple[list[int], dict[str, Any]]:
    """(the audited item ids, in study order; how they were chosen): all, or `sample` drawn at random with `seed`."""
    if sample is not None and (isinstance(sample, bool) or not isinstance(sample, int) or sample < 1):
        raise InputError(f"The sample size must be a whole number >= 1, got {sample!r}.")
    ids = list(item_ids)
    if sample is None or sample >= len(ids):
        return ids, {"random": False, "n": len(ids), "of": len(ids), "seed": None,
                     "note": f"every item of the study ({len(ids)})"}
    drawn = set(random.Random(seed).sample(ids, sample))
    chosen = [item for item in ids if item in drawn]
    return chosen, {"random": True, "n": sample, "of": len(ids), "seed": seed,
                    "note": f"a random sample of {sample} of the study's {len(ids)} items (seed {seed})"}


def _judge_record(judge: JudgeBackend) -> dict[str, Any]:
    info = judge.info
    return {"backend": info.backend, "model_id": info.model_id, "revision": info.revision,
            "quantization": info.quantization, "dtype": info.dtype}


def run_audit(
    studies: Studies,
    actor: User,
    study_id: int,
    judge: JudgeBackend,
    store: Store,
    perturbations: Sequence[Perturbation],
    *,
    sample: int | None = None,
    seed: int = 0,
    batch_size: int = DEFAULT_BATCH_SIZE,
    n_resamples: int = 1000,
    load_judge: LoadJudge | None = None,
    record_run: RecordRun = no_record,
    on_progress: AuditProgress | None = None,
    baseline_judgments: Mapping[int, int] | None = None,
) -> AuditResult:
    """Grade the study's items (or a seeded random sample of `sample`) unperturbed with `judge`, then under each
    perturbation, and compare (core.audit.report).

    A text perturbation is graded by `judge`; an other-judge perturbation by `load_judge(backend, **options)`
    (default core.judge.create_backend, as the app and the CLI load a judge). An item a perturbation cannot
    apply to is listed in that run's errors; one that cannot load its judge applies to no item. Raises
    PermissionDenied for a non-admin and StudyInputError for an unknown or empty study, before grading;
    JudgeError when the judge stops working (what was graded stays in the store).

    `baseline_judgments` ({item_id: judgment_id}, e.g. an existing judge run made by the same judge): the
    unperturbed scores are read from those stored judgments instead of grading again (an item without one
    counts as unscored); by default the unperturbed run is graded here, so that it differs from the
    perturbed ones by the perturbation alone.
    """
    if batch_size < 1:
        raise InputError("The batch size must be at least 1.")
    started = time.perf_counter()
    study = studies.get_study(actor, study_id)
    items = [item for item in studies.list_items(actor, study_id) if item.removed_at is None]  # admins only
    if not items:
        raise StudyInputError(f"Study #{study.id} has no items to audit.")
    chosen_ids, how = choose_items([item.id for item in items], sample, seed)
    wanted = set(chosen_ids)
    chosen = [item for item in items if item.id in wanted]
    max_new_tokens = int(study.judge_settings.get("max_new_tokens", DEFAULT_MAX_NEW_TOKENS))
    if study.pairwise:
        # A pairwise item is audited in its (A, B) order: score 0 prefers A, 1 prefers B. The swap-responses
        # perturbation is then its (B, A) order, mapped back: the judge's position consistency as a flip rate.
        requests = {item.id: pairs.pair_request(item.fields, study.pass_criteria, study.rubric,
                                                max_new_tokens=max_new_tokens).grade_request(AB)
                    for item in chosen}
    else:
        requests = {item.id: GradeRequest(fields=dict(item.fields), pass_criteria=study.pass_criteria,
                                          rubric=study.rubric, max_new_tokens=max_new_tokens) for item in chosen}
    scale = (int(study.scale[0]), int(study.scale[1]))

    def grade_run(name: str, description: str, kind: str, runner: JudgeBackend,
                  perturbed: Mapping[int, Perturbed], errors: dict[int, str]) -> AuditRun:
        config = {"perturbation": name, "description": description, "judge": _judge_record(runner),
                  "items": how}
        run = AuditRun(name, description, kind, runner.info.describe(), config, errors=errors)
        order = list(perturbed)
        if on_progress is not None:
            on_progress(name, 0, len(order))
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            outcomes = grade_batch(runner, [perturbed[item].request for item in batch], store)
            for item, outcome in zip(batch, outcomes, strict=True):
                if isinstance(outcome, GradeResult):
                    score = None if outcome.judgment.status == PARSE_FAILED else outcome.judgment.score
                    run.scores[item] = perturbed[item].to_original(score, scale)
                    if outcome.judgment_id is not None:
                        run.judgment_ids[item] = outcome.judgment_id
                else:
                    errors[item] = str(outcome)
            if on_progress is not None:
                on_progress(name, min(start + batch_size, len(order)), len(order))
        record_run(name, config, dict(run.judgment_ids))
        return run

    if baseline_judgments is None:
        baseline = grade_run(UNPERTURBED, "the study's requests as they are", "text", judge,
                             {item: unchanged(request) for item, request in requests.items()}, {})
    else:
        baseline = _stored_run(store, baseline_judgments, chosen_ids)
    runs: list[AuditRun] = []
    for perturbation in perturbations:
        runs.append(_perturbed_run(perturbation, requests, judge, load_judge, grade_run))

    rows = studies.ratings(actor, study_id)
    consensus = (pair_consensus(rows, bool(study.blind)) if study.pairwise
                 else human_consensus(rows, bool(study.blind)))
    humans = {item: consensus[item] for item in chosen_ids if item in consensus} or None
    block = audit_report(baseline.scores, [run.for_report() for run in runs], scale, humans,
                         n_resamples=n_resamples, seed=seed, sample=how, baseline_judge=baseline.judge)
    block["study_id"], block["study"] = study.id, study.name
    return AuditResult(study.id, study.name, tuple(chosen_ids), how, baseline, tuple(runs), block,
                       round(time.perf_counter() - started, 4))


def _stored_run(store: Store, judgments: Mapping[int, int], item_ids: Sequence[int]) -> AuditRun:
    """The unperturbed run read from stored judgments (item -> judgment id) instead of graded."""
    scores: dict[int, int | None] = {}
    ids: dict[int, int] = {}
    errors: dict[int, str] = {}
    judges: list[str] = []
    for item in item_ids:
        stored = store.get_judgment(judgments[item]) if item in judgments else None
        if stored is None:
            errors[item] = "no stored judgment was given for this item"
            continue
        ids[item] = stored.id
        scores[item] = None if stored.status == PARSE_FAILED else stored.score
        repro = stored.repro or {}
        judges.append(f"{repro.get('model_id', '?')} · {repro.get('backend', '?')} · {repro.get('quantization', '?')}")
    judge = " / ".join(sorted(set(judges)))
    return AuditRun(UNPERTURBED, "the given judgments of the study's requests as they are", "text", judge,
                    {"perturbation": UNPERTURBED, "judgments": "given"}, scores, ids, errors)


def _perturbed_run(
    perturbation: Perturbation,
    requests: Mapping[int, GradeRequest],
    judge: JudgeBackend,
    load_judge: LoadJudge | None,
    grade_run: Callable[..., AuditRun],
) -> AuditRun:
    """Apply one perturbation to every request and grade what it applies to (or say why it applies to none)."""
    name, description, kind = perturbation.name, perturbation.description, perturbation.kind
    perturbed: dict[int, Perturbed] = {}
    errors: dict[int, str] = {}
    for item, request in requests.items():
        try:
            perturbed[item] = perturbation.apply(request)
        except PerturbationNotApplicable as error:
            errors[item] = str(error)
    runner = judge
    problem: str | None = None
    if not perturbed:
        problem = next(iter(errors.values()), "no item to audit")
    elif perturbation.judge is not None:
        config = perturbation.judge
        loader = load_judge
        if loader is None:
            from core.judge import create_backend

            loader = create_backend
        try:
            runner = loader(config.backend, **dict(config.options))
        except (JudgeError, InputError) as error:
            problem = f"The other judge ({config.describe()}) could not be loaded: {error}"
    if problem is not None:
        return AuditRun(name, description, kind, "", {"perturbation": name, "description": description},
                        errors=errors, not_applicable=problem)
    return grade_run(name, description, kind, runner, perturbed, errors)
