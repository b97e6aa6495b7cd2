"""The openai back-end against a real OpenAI-compatible server that returns log-probabilities.

llama-cpp-python's server (`python -m llama_cpp.server`, its [server] extra) serves the tiny trained judge
as GGUF on 127.0.0.1; the openai back-end grades through it as it would through vLLM, reading the score
distribution from the server's `logprobs`. The same GGUF graded in-process by the llamacpp back-end is the
reference: the same weights through the same llama.cpp build, so the two distributions must agree.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.errors import ContextTooLongError
from core.grading import GradeRequest, grade
from core.judge import Generation, create_backend
from core.judge.llamacpp_backend import LlamaCppJudge
from core.judge.openai_backend import OpenAIJudge
from core.prompt import build_prompt
from core.store import Store
from tests import tiny_gguf
from tests.conftest import TEACH_CRITERIA, TEACH_FIELDS, TEACH_RUBRIC
from tests.fakes import WELL_FORMED
from tests.llama_server import LlamaServer, server_extras_missing
from tests.test_judge_llamacpp import needs_llama_cpp
from tests.test_judge_openai import FaultProxy, Reply, Seen

_MISSING = server_extras_missing()
pytestmark = [
    *needs_llama_cpp,
    pytest.mark.skipif(
        bool(_MISSING) and not os.environ.get("CI"),  # CI installs them (requirements-dev): there it fails
        reason=f"llama_cpp.server needs {', '.join(_MISSING)}: pip install -r requirements-dev.txt",
    ),
]

# Phi-3's tokenizer strips the whitespace after its chat markers; llama.cpp does so only for a GGUF whose
# general.name contains 'phi3' (the tests' GGUF deliberately has another name, as a converted GLIDER may).
# The in-process back-end strips it itself; a server needs the name overridden to tokenize like GLIDER's training.
PHI3_NAME = ("--kv_overrides", "general.name=str:phi3")
# The README's command, on the tiny GGUF.
SERVER_FLAGS = ("--n_ctx", "8192", *PHI3_NAME)

# How far the distribution read from the server's log-probs may be from the in-process one, per value.
# Both run the same float32 weights through the same llama.cpp build with the same kernels (the in-process
# judge is loaded with the server's defaults: weight repacking on, flash attention off) on the same prompt
# ids, so the logits agree to float32 rounding (~1e-7: the prompt is evaluated in other batches and with
# other thread counts). What remains is the top-20 cut: a value the server does not list counts as 0 (each
# unlisted value is below the 20th listed token, ~3e-7 here). Measured: at most 1.6e-6 apart. 1e-5 leaves
# room for another CPU's rounding, and is far below what a change of the prompt does (a GGUF tokenized
# without PHI3_NAME moves the listed mass by 2e-2).
TOLERANCE = 1e-5
# The mass (the probability of writing a value at all, ~0.985 here) on 0-1 is the same two log-probs: 1e-5.
# On 0-10, after a '1' the in-process back-end counts every token but a digit as the end of the number, the
# server path only the listed ones: they part by the probability below the top 20 at that step (2.0e-5).
MASS_TOLERANCE = {(0, 1): 1e-5, (0, 10): 1e-4}


@pytest.fixture(scope="module")
def served_gguf(trained_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_gguf.convert(trained_model_dir, tmp_path_factory.mktemp("served") / "glider-tiny-F32.gguf")


@pytest.fixture(scope="module")
def server(served_gguf: Path, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
           ) -> Iterator[LlamaServer]:
    """The server on the tiny GGUF for this module's tests; its log is printed when one of them failed."""
    failures_before = request.session.testsfailed
    started = LlamaServer(served_gguf, tmp_path_factory.mktemp("llama-server") / "server.log", *SERVER_FLAGS)
    print(f"\nllama_cpp.server listed its model {started.start_seconds:.1f} s after its start")
    try:
        yield started
    finally:
        started.stop()
        if request.session.testsfailed > failures_before:
            print(f"\n--- llama_cpp.server log ({started.log_path}) ---\n{started.log()}")


@pytest.fixture(scope="module")
def judge(server: LlamaServer) -> Iterator[OpenAIJudge]:
    backend = create_backend("openai", base_url=server.url, max_retries=1)
    assert isinstance(backend, OpenAIJudge)
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def local_judge(served_gguf: Path) -> LlamaCppJudge:
    """The same GGUF in-process, with the server's llama.cpp settings (repacking on, flash attention off)."""
    backend = create_backend("llamacpp", model=str(served_gguf), device="cpu", weight_repacking=True,
                             flash_attn=False)
    assert isinstance(backend, LlamaCppJudge)
    return backend


def test_grades_parse_and_are_stored_with_their_distribution(judge: OpenAIJudge, local_judge: LlamaCppJudge,
                                                             store: Store) -> None:
    result = grade(judge, GradeRequest(TEACH_FIELDS, TEACH_CRITERIA, TEACH_RUBRIC), store)
    assert (result.judgment.status, result.judgment.score, result.judgment.problems) == ("ok", 1, [])
    local = local_judge.generate(result.prompt, scale=(0, 1))
    # The same prompt ids, hence the same greedy answer. llama-cpp-python keeps the SentencePiece space
    # before the first token, which transformers and the in-process back-end drop.
    assert result.generation.prompt_tokens == local.prompt_tokens
    assert result.generation.text == " " + local.text and local.text == WELL_FORMED
    assert result.generation.finish_reason == "stop" and result.generation.distribution is not None
    assert result.judgment_id is not None
    stored = store.get_judgment(result.judgment_id)
    assert stored is not None and (stored.score, stored.status) == (1, "ok")
    assert stored.distribution == pytest.approx(result.generation.distribution)
    assert stored.distribution_mass == pytest.approx(result.generation.distribution_mass)
    assert stored.repro["backend"] == "openai" and stored.repro["decoding"]["top_logprobs"] == 20


@pytest.mark.parametrize("scale", [(0, 1), (0, 10)], ids=["binary", "0-10, where 1 and 10 share a first token"])
def test_the_distribution_from_log_probs_is_the_in_process_one(judge: OpenAIJudge, local_judge: LlamaCppJudge,
                                                               taught_prompt: str, scale: tuple[int, int]) -> None:
    served = judge.generate(taught_prompt, scale=scale)
    local = local_judge.generate(taught_prompt, scale=scale)
    assert served.distribution is not None and local.distribution is not None
    assert served.distribution_mass is not None and local.distribution_mass is not None
    assert set(served.distribution) == set(local.distribution) == set(range(scale[0], scale[1] + 1))
    differences = {value: abs(served.distribution[value] - local.distribution[value]) for value in local.distribution}
    mass_difference = abs(served.distribution_mass - local.distribution_mass)
    print(f"\n{scale}: served {served.distribution} (mass {served.distribution_mass:.7f}), in-process "
          f"{local.distribution} (mass {local.distribution_mass:.7f}); largest difference "
          f"{max(differences.values()):.2e}, mass {mass_difference:.2e}")
    assert max(differences.values()) <= TOLERANCE
    assert mass_difference <= MASS_TOLERANCE[scale]
    assert max(served.distribution, key=served.distribution.get) == 1


def test_a_streamed_grade_reads_the_same_distribution(judge: OpenAIJudge, taught_prompt: str) -> None:
    whole = judge.generate(taught_prompt, scale=(0, 10))
    events = list(judge.stream(taught_prompt, scale=(0, 10)))
    final = events[-1]
    assert isinstance(final, Generation) and "".join(str(event) for event in events[:-1]) == final.text == whole.text
    assert final.distribution == pytest.approx(whole.distribution, abs=1e-12)
    assert final.distribution_mass == pytest.approx(whole.distribution_mass, abs=1e-12)
    # llama-cpp-python sends no usage in a stream (it ignores stream_options): the counts stay 0, not guessed.
    assert (final.prompt_tokens, final.completion_tokens) == (0, 0)


def test_a_server_that_returns_no_log_probs_is_warned_about_and_grades_are_stored(
    server: LlamaServer, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """A server that ignores `logprobs` (transformers serve does): one warning, grades stored without a distribution."""
    def without_logprobs(seen: Seen) -> Reply | None:
        if not seen.path.endswith("/chat/completions"):
            return None
        body = {key: value for key, value in seen.body.items() if key not in ("logprobs", "top_logprobs")}
        return proxy._forward(seen, json.dumps(body).encode())

    proxy = FaultProxy(server.url, without_logprobs)
    backend = create_backend("openai", base_url=proxy.url, max_retries=0)
    try:
        with caplog.at_level(logging.WARNING, logger="core.judge"):
            results = [grade(backend, GradeRequest(TEACH_FIELDS, TEACH_CRITERIA, TEACH_RUBRIC), store)
                       for _ in range(2)]
    finally:
        backend.close()
        proxy.close()
    assert all(chat.body["top_logprobs"] == 20 for chat in proxy.chats())  # asked for, and not given
    warnings = [record.getMessage() for record in caplog.records if "log-probabilities" in record.getMessage()]
    assert warnings == [f"The judge server at {proxy.url} returns no token log-probabilities: grades will have no "
                        "score distribution."]
    for result in results:
        assert (result.judgment.status, result.judgment.score) == ("ok", 1)
        assert result.generation.distribution is None and result.judgment_id is not None
        stored = store.get_judgment(result.judgment_id)
        assert stored is not None and stored.score == 1 and stored.distribution is None
        assert stored.expected_score is None


def test_without_the_phi3_name_the_server_reads_another_prompt(served_gguf: Path, local_judge: LlamaCppJudge,
                                                               taught_prompt: str, tmp_path: Path) -> None:
    """Why SERVER_FLAGS override general.name: without it llama.cpp keeps the newline after each chat marker."""
    plain = LlamaServer(served_gguf, tmp_path / "server.log", "--n_ctx", "8192")
    try:
        backend = create_backend("openai", base_url=plain.url, max_retries=0)
        try:
            served = backend.generate(taught_prompt, scale=(0, 1), max_new_tokens=1)
        finally:
            backend.close()
    finally:
        plain.stop()
    # '<|user|>', '<|end|>' and '<|assistant|>' are each followed by '▁' and '\n' tokens GLIDER never saw.
    assert served.prompt_tokens == local_judge.count_tokens(taught_prompt) + 6


def test_a_prompt_longer_than_the_servers_context_is_refused_with_its_numbers(judge: OpenAIJudge) -> None:
    """llama-cpp-python words the refusal as OpenAI does; the back-end turns it into ContextTooLongError."""
    prompt = build_prompt({"MODEL OUTPUT": "word " * 9_000}, TEACH_CRITERIA, TEACH_RUBRIC)
    with pytest.raises(ContextTooLongError, match=r"The prompt has [\d,]+ tokens but .* reads at most 8,192"):
        judge.generate(prompt, scale=(0, 1))
    outcomes = judge.generate_batch([prompt], scales=[(0, 1)])
    assert isinstance(outcomes[0], ContextTooLongError)  # a batch keeps the row's error in its place
