"""The OpenAI-compatible back-end against a real `transformers serve` running the tiny trained judge.

Faults a healthy server never shows (503, 429, refused fields, context errors, a wrong key) come from
a small HTTP server in front of it that answers some requests itself and forwards the rest.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from core.errors import ContextTooLongError, JudgeError, ModelLoadError
from core.grading import GradeRequest, grade
from core.judge import BACKENDS, Generation, JudgeBackend, create_backend
from core.judge.base import BatchingBackend
from core.judge.common import trained_context_warning
from core.judge.logprob_distribution import TokenStep, score_distribution, steps_from_openai
from core.judge.openai_backend import OpenAIJudge, normalize_base_url, redact_url
from core.parse import parse_output
from core.prompt import build_prompt, chat_messages
from tests import tiny_model
from tests.conftest import TEACH_CRITERIA, TEACH_FIELDS, TEACH_RUBRIC
from tests.fakes import WELL_FORMED
from tests.net import free_port

ROOT = Path(__file__).resolve().parent.parent
SERVER_START_TIMEOUT = 180.0


# -- the real server ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server_url(trained_model_dir: Path, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
               ) -> Iterator[str]:
    """`transformers serve` pinned to the trained tiny judge on a free port; its log is printed on failure."""
    from transformers.utils.import_utils import is_serve_available

    assert is_serve_available(), "transformers serve needs fastapi, uvicorn, pydantic and openai (requirements-dev)"
    executable = Path(sys.executable).with_name("transformers")
    port = free_port()
    log_path = tmp_path_factory.mktemp("serve") / "serve.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    command = [str(executable), "serve", str(trained_model_dir), "--host", "127.0.0.1", "--port", str(port),
               "--device", "cpu"]
    failures_before = request.session.testsfailed
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"transformers serve exited with {process.returncode}:\n{log_path.read_text()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"transformers serve did not answer /health in {SERVER_START_TIMEOUT:.0f} s:\n"
                            f"{log_path.read_text()}")
            time.sleep(0.25)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)
        if request.session.testsfailed > failures_before:
            print(f"\n--- transformers serve log ({log_path}) ---\n{log_path.read_text()[-6000:]}")


@pytest.fixture(scope="module")
def judge(server_url: str) -> Iterator[OpenAIJudge]:
    backend = create_backend("openai", base_url=server_url, max_retries=1)
    assert isinstance(backend, OpenAIJudge)
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def served_answer(judge: OpenAIJudge, taught_prompt: str) -> Generation:
    """The server's answer to the taught prompt (several tests compare against it)."""
    return judge.generate(taught_prompt, scale=(0, 1))


# -- a server in front of the real one ---------------------------------------------------------------
@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Seen:
    method: str
    path: str
    body: Any
    headers: dict[str, str]  # names in lower case


class FaultProxy:
    """An HTTP server on 127.0.0.1, in a thread, between the back-end and `upstream`.

    `answer(seen)` returns a Reply to answer a request itself, or None to forward it upstream. The proxy
    records every request and the largest number of chat requests it ever had in flight at once.
    """

    def __init__(self, upstream: str | None, answer: Callable[[Seen], Reply | None] | None = None) -> None:
        self.upstream = upstream.removesuffix("/v1") if upstream else None
        self.answer = answer or (lambda seen: None)
        self.seen: list[Seen] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
                proxy._handle(self)

            def do_POST(self) -> None:  # noqa: N802
                proxy._handle(self)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def chats(self) -> list[Seen]:
        return [seen for seen in self.seen if seen.path.endswith("/chat/completions")]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        raw = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        seen = Seen(handler.command, handler.path, json.loads(raw) if raw else None,
                    {name.lower(): value for name, value in handler.headers.items()})
        chat = seen.path.endswith("/chat/completions")
        with self._lock:
            self.seen.append(seen)
            if chat:
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            reply = self.answer(seen)
            if reply is None:
                reply = self._forward(seen, raw)
            body = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
            handler.send_response(reply.status)
            headers = {"Content-Type": "application/json", **reply.headers}
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
        finally:
            if chat:
                with self._lock:
                    self.in_flight -= 1

    def _forward(self, seen: Seen, raw: bytes) -> Reply:
        assert self.upstream is not None, f"no upstream to forward {seen.path} to"
        outgoing = urllib.request.Request(self.upstream + seen.path, data=raw or None, method=seen.method,
                                          headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(outgoing, timeout=120) as answer:
                return Reply(answer.status, answer.read(), {"Content-Type": answer.headers["Content-Type"]})
        except urllib.error.HTTPError as error:
            with error:
                return Reply(error.code, error.read())


@pytest.fixture
def proxy_factory() -> Iterator[Callable[..., FaultProxy]]:
    proxies: list[FaultProxy] = []

    def make(upstream: str | None = None, answer: Callable[[Seen], Reply | None] | None = None) -> FaultProxy:
        proxies.append(FaultProxy(upstream, answer))
        return proxies[-1]

    yield make
    for proxy in proxies:
        proxy.close()


@pytest.fixture
def backends() -> Iterator[Callable[..., OpenAIJudge]]:
    """Builds OpenAIJudges and closes them after the test."""
    made: list[OpenAIJudge] = []

    def make(**options: Any) -> OpenAIJudge:
        made.append(OpenAIJudge(**options))
        return made[-1]

    yield make
    for backend in made:
        backend.close()


MODEL = "tests/glider"
LISTING = {"object": "list", "data": [{"id": MODEL, "object": "model", "max_model_len": 4096}]}


def chat_body(content: str, logprobs: list[dict[str, Any]] | None = None, finish_reason: str = "stop",
              prompt_tokens: int = 400) -> dict[str, Any]:
    """A non-streaming chat completion as vLLM writes it."""
    return {
        "id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content, "tool_calls": []},
                     "logprobs": {"content": logprobs} if logprobs is not None else None,
                     "finish_reason": finish_reason, "stop_reason": None}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 9, "total_tokens": prompt_tokens + 9},
    }


def canned(chat: Callable[[Seen], Reply | None]) -> Callable[[Seen], Reply | None]:
    """A whole fake server: the model listing, then `chat` for chat requests."""

    def answer(seen: Seen) -> Reply | None:
        if seen.path.endswith("/models"):
            return Reply(200, LISTING)
        if seen.path.endswith("/chat/completions"):
            return chat(seen)
        return Reply(404, {"detail": "Not Found"})

    return answer


# -- logprobs payloads as servers write them ---------------------------------------------------------
def vllm_entry(token: str, alternatives: dict[str, float]) -> dict[str, Any]:
    """One `logprobs.content` entry as vLLM writes it: decoded text, bytes, the chosen logprob, top-k."""
    def one(text: str, logprob: float) -> dict[str, Any]:
        return {"token": text, "logprob": logprob, "bytes": list(text.encode())}

    return {**one(token, alternatives[token]), "top_logprobs": [one(t, lp) for t, lp in alternatives.items()]}


def llamacpp_entry(token: str, alternatives: dict[str, float], ids: dict[str, int]) -> dict[str, Any]:
    """The same as llama.cpp's server writes it (token ids beside the text)."""
    def one(text: str, logprob: float) -> dict[str, Any]:
        return {"id": ids.get(text, 0), "token": text, "bytes": list(text.encode()), "logprob": logprob}

    return {**one(token, alternatives[token]), "top_logprobs": [one(t, lp) for t, lp in alternatives.items()]}


def certain(token: str) -> dict[str, float]:
    return {token: -0.0001, "x": -9.5}


TAIL = ["</", "highlight", ">", "\n", "<", "score", ">", "\n"]  # Phi-3 pieces before the score value
LN = math.log


def vllm_answer(score_step: dict[str, float], chosen: str, after: list[tuple[str, dict[str, float]]]) -> list[dict]:
    """The logprobs of '…</highlight>\\n<score>\\n' + chosen + the given following steps, vLLM-shaped."""
    entries = [vllm_entry(t, certain(t)) for t in ["['", "Paris", "']", "\n", *TAIL]]
    entries.append(vllm_entry(chosen, score_step))
    entries += [vllm_entry(token, alternatives) for token, alternatives in after]
    return entries


END = [("\n", certain("\n")), ("</", certain("</")), ("score", certain("score")), (">", certain(">")),
       ("", certain(""))]  # vLLM lists the <|end|> token with empty text (special tokens are skipped)


# == logprobs.score_distribution ======================================================================
@pytest.mark.parametrize(
    ("name", "entries", "scale", "expected", "mass"),
    [
        ("binary", vllm_answer({"1": LN(0.9), "0": LN(0.08), "\n": LN(0.01)}, "1", END), (0, 1),
         {0: 0.08 / 0.98, 1: 0.9 / 0.98}, 0.98),
        ("1-5, an alternative with a space counts only when the chosen token has one",
         vllm_answer({"4": LN(0.6), "3": LN(0.2), "5": LN(0.1), " 4": LN(0.05)}, "4", END), (1, 5),
         {1: 0.0, 2: 0.0, 3: 0.2 / 0.9, 4: 0.6 / 0.9, 5: 0.1 / 0.9}, 0.9),
        ("out-of-scale digits are mass outside the scale",
         vllm_answer({"2": LN(0.7), "3": LN(0.2), "7": LN(0.1)}, "2", END), (1, 3),
         {1: 0.0, 2: 0.7 / 0.9, 3: 0.2 / 0.9}, 0.9),
        ("10 = '1' then '0': P(10) = P('1')P('0'|'1'), P(1) = P('1')P(end|'1')",
         vllm_answer({"1": LN(0.8), "9": LN(0.15)}, "1",
                     [("0", {"0": LN(0.75), "\n": LN(0.2), "5": LN(0.05)}), *END]), (0, 10),
         {**dict.fromkeys(range(11), 0.0), 1: 0.8 * 0.2 / 0.91, 9: 0.15 / 0.91, 10: 0.8 * 0.75 / 0.91}, 0.91),
        ("'1' chosen, '10' not: the next step after '1' is read the same way",
         vllm_answer({"1": LN(0.8), "2": LN(0.1)}, "1", [("\n", {"\n": LN(0.9), "0": LN(0.1)}), *END[1:]]),
         (0, 10), {**dict.fromkeys(range(11), 0.0), 1: 0.72 / 0.9, 2: 0.1 / 0.9, 10: 0.08 / 0.9}, 0.9),
        ("after a '1', the end of the turn (a token with no text) ends the number too",
         vllm_answer({"1": LN(0.8), "9": LN(0.2)}, "1", [("\n", {"\n": LN(0.7), "": LN(0.2), "0": LN(0.1)}),
                                                         *END[1:]]),
         (0, 10), {**dict.fromkeys(range(11), 0.0), 1: 0.72, 9: 0.2, 10: 0.08}, 1.0),
        ("'1' unlisted at a 7: counted as 0 like any unlisted token",
         vllm_answer({"7": LN(0.9), "8": LN(0.05)}, "7", END), (0, 10),
         {**dict.fromkeys(range(11), 0.0), 7: 0.9 / 0.95, 8: 0.05 / 0.95}, 0.95),
    ],
)
def test_score_distribution_reads_vllm_payloads(name: str, entries: list[dict], scale: tuple[int, int],
                                                expected: dict[int, float], mass: float) -> None:
    steps = steps_from_openai(entries)
    assert steps is not None
    read = score_distribution(steps, scale)
    assert read is not None, name
    distribution, listed = read
    assert distribution == pytest.approx(expected, abs=1e-6), name
    assert listed == pytest.approx(mass, rel=1e-3), name
    assert math.isclose(sum(distribution.values()), 1.0, rel_tol=1e-9)


@pytest.mark.parametrize(
    ("name", "steps", "scale"),
    [
        ("no score tag", [("<reasoning>", [("<reasoning>", -0.1)]), ("ok", [("ok", -0.1)])], (0, 1)),
        ("no logprobs at the score step", [("<score>\n", [("<score>\n", 0.0)]), ("1", [])], (0, 1)),
        ("the chosen token is not listed", [("<score>\n", [("<score>\n", 0.0)]), ("1", [("0", -2.0)])], (0, 1)),
        ("a 7 on 0-10 with '1' listed: how P('1') splits between 1 and 10 is unknown",
         [("<score>\n", [("<score>\n", 0.0)]), ("7", [("7", -0.1), ("1", -3.0)]), ("\n", [("\n", 0.0)])],
         (0, 10)),
        ("the answer stops right after a '1' that 10 could continue",
         [("<score>\n", [("<score>\n", 0.0)]), ("1", [("1", -0.1)])], (0, 10)),
        ("nothing listed is a value of the scale", [("<score>\n", [("<score>\n", 0.0)]), ("9", [("9", 0.0)])],
         (0, 1)),
    ],
)
def test_score_distribution_never_invents_probability(name: str, steps: list[tuple], scale: tuple[int, int]) -> None:
    assert score_distribution([TokenStep(*step) for step in steps], scale) is None, name


def test_score_distribution_reads_llamacpp_payloads() -> None:
    """llama.cpp's server: token ids beside the text, or probabilities with post_sampling_probs."""
    ids = {"1": 29896, "0": 29900, "2": 29906, "\n": 13}
    entries = [llamacpp_entry(t, certain(t), ids) for t in TAIL]
    entries.append(llamacpp_entry("2", {"2": LN(0.5), "1": LN(0.3), "0": LN(0.1)}, ids))
    entries.append(llamacpp_entry("\n", certain("\n"), ids))
    read = score_distribution(steps_from_openai(entries) or [], (0, 2))
    assert read is not None
    assert read[0] == pytest.approx({0: 0.1 / 0.9, 1: 0.3 / 0.9, 2: 0.5 / 0.9})
    # With post_sampling_probs llama.cpp reports probabilities: 'prob' and 'top_probs'.
    sampled = [{"id": ids.get(e["token"], 0), "token": e["token"], "bytes": e["bytes"], "prob": math.exp(e["logprob"]),
                "top_probs": [{"id": 0, "token": a["token"], "bytes": a["bytes"], "prob": math.exp(a["logprob"])}
                              for a in e["top_logprobs"]]} for e in entries]
    again = score_distribution(steps_from_openai(sampled) or [], (0, 2))
    assert again is not None and again[0] == pytest.approx(read[0]) and again[1] == pytest.approx(read[1])


def test_score_distribution_handles_raw_pieces_labels_and_spaces() -> None:
    # Servers printing raw SentencePiece pieces ('▁', '<0x0A>') still show where the score is.
    raw = [vllm_entry(t, certain(t)) for t in ["<", "score", ">", "<0x0A>"]]
    raw.append(vllm_entry("▁4", {"▁4": LN(0.5), "▁5": LN(0.5)}))
    read = score_distribution(steps_from_openai(raw) or [], (1, 5))
    assert read is not None and read[0] == pytest.approx({1: 0, 2: 0, 3: 0, 4: 0.5, 5: 0.5})
    # 'Score: 3' inside the tag, and an earlier '<score>' in the reasoning: the last tag is read.
    labelled = [TokenStep(t, [(t, 0.0)]) for t in ["mentions <score>", " 1", " then\n<score>\n", "Score", ":"]]
    labelled.append(TokenStep(" 3", [(" 3", LN(0.75)), (" 2", LN(0.25)), ("3", LN(0.01))]))
    read = score_distribution(labelled, (1, 3))
    assert read is not None and read[0] == pytest.approx({1: 0.0, 2: 0.25, 3: 0.75})
    # A negative scale: '-' then '1'.
    negative = [TokenStep("<score>\n", [("<score>\n", 0.0)]), TokenStep("-", [("-", LN(0.6)), ("0", LN(0.4))]),
                TokenStep("1", [("1", 0.0)]), TokenStep("\n", [("\n", 0.0)])]
    read = score_distribution(negative, (-1, 1))
    assert read is not None and read[0] == pytest.approx({-1: 0.6, 0: 0.4, 1: 0.0})


def test_urls_are_normalized_and_shown_without_credentials() -> None:
    assert normalize_base_url("localhost:8000") == "http://localhost:8000/v1"
    assert normalize_base_url("https://judge.example/") == "https://judge.example/v1"
    assert normalize_base_url("http://h:1/openai/v1/") == "http://h:1/openai/v1"
    assert redact_url("https://user:secret@judge.example:8443/v1?key=secret") == "https://judge.example:8443/v1"


def test_importing_core_does_not_import_openai() -> None:
    code = "import sys, core.judge; print('openai' in sys.modules, sorted(core.judge.BACKENDS))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split(" ", 1)[0] == "False" and "'openai'" in done.stdout


# == against the real server =========================================================================
def test_generate_matches_the_in_process_judge(judge: OpenAIJudge, served_answer: Generation, trained_judge,  # noqa: ANN001
                                               taught_prompt: str) -> None:
    assert isinstance(judge, JudgeBackend) and isinstance(judge, BatchingBackend)
    assert "openai" in BACKENDS
    judgment = parse_output(served_answer.text, (0, 1))
    assert (judgment.status, judgment.score) == ("ok", 1)
    assert served_answer.finish_reason == "stop"
    # The saved tokenizer names no Llama class, so the server's AutoTokenizer reads tokenizer.json as is:
    # the same prompt ids, hence the same greedy answer, as the in-process back-end.
    local = trained_judge.generate(taught_prompt, scale=(0, 1))
    assert served_answer.text == local.text == WELL_FORMED
    assert served_answer.prompt_tokens == local.prompt_tokens == trained_judge.count_tokens(taught_prompt)
    assert served_answer.completion_tokens == local.completion_tokens  # the answer and its <|end|>
    # transformers serve ignores logprobs ("Ignoring unsupported fields"): there is no distribution.
    assert local.distribution is not None and served_answer.distribution is None
    info = judge.info
    assert (info.backend, info.model_id, info.device) == ("openai", str(judge.model), judge.display_url)
    assert (info.quantization, info.dtype) == ("server", "server")


@pytest.mark.skipif(not tiny_model.has_real_tokenizer(), reason="needs the Phi-3 tokenizer fixture")
def test_transformers_serve_would_tokenize_glider_prompts_differently(taught_prompt: str) -> None:
    """Why the test model agrees with the in-process judge, and GLIDER itself would not quite.

    `transformers serve` loads tokenizers with AutoProcessor. GLIDER's tokenizer_config names LlamaTokenizer,
    which transformers 5 rebuilds with another pre-tokenizer: the word after a special token loses its '▁'.
    The in-process back-end reads tokenizer.json as published (see _load_tokenizer), as vLLM on
    transformers 4 does. The tiny judge's saved config names no Llama class, so the server reads it as is.
    """
    from transformers import AutoProcessor, PreTrainedTokenizerFast

    messages = chat_messages(taught_prompt)
    served = AutoProcessor.from_pretrained(str(tiny_model.PHI35_TOKENIZER))
    served_ids = served.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                            return_dict=True)["input_ids"]
    published = PreTrainedTokenizerFast.from_pretrained(str(tiny_model.PHI35_TOKENIZER))
    text = published.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    published_ids = published(text, add_special_tokens=False)["input_ids"]
    assert served_ids != published_ids
    first_word = [published.convert_ids_to_tokens(ids[1]) for ids in (served_ids, published_ids)]
    assert first_word == ["An", "\u2581Anal"]  # 'Analyze', right after <|user|>


@pytest.mark.timing
def test_count_tokens_estimates_then_learns_from_usage(judge: OpenAIJudge, served_answer: Generation,
                                                       taught_prompt: str) -> None:
    started = time.perf_counter()
    count = judge.count_tokens(taught_prompt)  # transformers serve has no /tokenize: an estimate
    assert time.perf_counter() - started < 3
    assert count == served_answer.prompt_tokens  # calibrated by the last answer's usage (this very prompt)
    assert 0.5 < judge.count_tokens(taught_prompt * 2) / (2 * count) < 1.5


def test_stream_yields_deltas_that_join_to_the_final_text(judge: OpenAIJudge, served_answer: Generation,
                                                          taught_prompt: str) -> None:
    events = list(judge.stream(taught_prompt, scale=(0, 1)))
    deltas, final = events[:-1], events[-1]
    assert all(isinstance(delta, str) for delta in deltas) and len(deltas) > 3
    assert isinstance(final, Generation)
    assert "".join(deltas) == final.text == served_answer.text
    assert final.finish_reason == "stop"
    assert (final.prompt_tokens, final.completion_tokens) == (served_answer.prompt_tokens,
                                                              served_answer.completion_tokens)
    assert final.first_token_seconds is not None and final.first_token_seconds <= final.seconds


def test_stream_stopped_early_frees_its_slot(server_url: str, backends: Callable[..., OpenAIJudge],
                                             taught_prompt: str) -> None:
    single = backends(base_url=server_url, max_concurrency=1)
    events = single.stream(taught_prompt, max_new_tokens=40)
    assert isinstance(next(events), str)
    events.close()  # the caller stops reading: the connection closes and the one slot comes back
    with ThreadPoolExecutor(1) as pool:  # a slot still held would block this forever
        assert pool.submit(single.generate, taught_prompt, max_new_tokens=3).result(timeout=60).text


def test_generate_batch_equals_one_by_one(judge: OpenAIJudge, taught_prompt: str) -> None:
    prompts = [taught_prompt,
               build_prompt({"MODEL OUTPUT": "Lyon is the capital of France."}, TEACH_CRITERIA, TEACH_RUBRIC),
               build_prompt({"CONTEXT": "Water boils at 100 C.", "MODEL OUTPUT": "It boils."}, "Correct?",
                            "0: no\n1: yes")]
    scales = [(0, 1)] * len(prompts)
    alone = [judge.generate(prompt, scale=scale, max_new_tokens=12) for prompt, scale in zip(prompts, scales,
                                                                                              strict=True)]
    together = judge.generate_batch(prompts, scales=scales, max_new_tokens=12)
    assert all(isinstance(g, Generation) for g in together)
    summary = [(g.text, g.prompt_tokens, g.completion_tokens, g.finish_reason) for g in alone]
    assert [(g.text, g.prompt_tokens, g.completion_tokens, g.finish_reason) for g in together] == summary
    assert alone[0].text == WELL_FORMED[: len(alone[0].text)] and alone[0].finish_reason == "length"
    assert judge.generate_batch([], scales=[]) == []


def test_grade_stores_a_judgment_made_by_the_server(judge: OpenAIJudge, tmp_path: Path) -> None:
    from core.store import Store

    store = Store(f"sqlite:///{tmp_path / 'judgments.db'}")
    try:
        result = grade(judge, GradeRequest(TEACH_FIELDS, TEACH_CRITERIA, TEACH_RUBRIC), store=store)
        assert result.judgment.score == 1 and result.judgment_id is not None
        stored = store.get_judgment(result.judgment_id)
        assert stored is not None
        assert stored.repro["backend"] == "openai"
        assert stored.repro["model_id"] == judge.model and stored.repro["device"] == judge.display_url
        assert stored.repro["decoding"]["stop"] == ["<|end|>", "<|assistant|>", "<|endoftext|>"]
    finally:
        store.close()


def test_the_served_model_is_found_or_named(server_url: str, judge: OpenAIJudge, trained_model_dir: Path,
                                            backends: Callable[..., OpenAIJudge]) -> None:
    assert judge.model == str(trained_model_dir)  # model=None: the one model the server lists
    with pytest.raises(ModelLoadError) as caught:
        backends(model="PatronusAI/glider", base_url=server_url)
    assert "'PatronusAI/glider'" in str(caught.value) and repr(judge.model) in str(caught.value)


@pytest.mark.timing
def test_nothing_listening_fails_quickly(backends: Callable[..., OpenAIJudge]) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    started = time.perf_counter()
    with pytest.raises(JudgeError, match=r"Could not reach the judge server at http://127\.0\.0\.1:\d+/v1 .*running"):
        backends(base_url=url, max_retries=1)
    assert time.perf_counter() - started < 5


def test_a_server_that_goes_away_is_reported(server_url: str, proxy_factory: Callable[..., FaultProxy],
                                             backends: Callable[..., OpenAIJudge], taught_prompt: str) -> None:
    proxy = proxy_factory(server_url)
    backend = backends(base_url=proxy.url, max_retries=0)
    proxy.close()
    with pytest.raises(JudgeError, match="Could not reach the judge server.*is it running"):
        backend.generate(taught_prompt, max_new_tokens=4)
    with pytest.raises(JudgeError, match="Could not reach"):  # a batch raises rather than fill every row
        backend.generate_batch([taught_prompt] * 3, scales=[None] * 3, max_new_tokens=4)


# == faults ===========================================================================================
def test_503s_are_retried_then_forwarded(server_url: str, proxy_factory: Callable[..., FaultProxy],
                                         backends: Callable[..., OpenAIJudge], taught_prompt: str) -> None:
    failures = iter(range(2))

    def answer(seen: Seen) -> Reply | None:
        if seen.path.endswith("/chat/completions") and next(failures, None) is not None:
            return Reply(503, {"error": {"message": "loading", "type": "ServiceUnavailable", "code": 503}})
        return None

    proxy = proxy_factory(server_url, answer)
    backend = backends(base_url=proxy.url, max_retries=2)
    generation = backend.generate(taught_prompt, max_new_tokens=8)
    assert generation.text == WELL_FORMED[: len(generation.text)] and generation.text
    assert len(proxy.chats()) == 3


def test_503s_beyond_the_retries_raise(proxy_factory: Callable[..., FaultProxy],
                                       backends: Callable[..., OpenAIJudge], taught_prompt: str) -> None:
    proxy = proxy_factory(None, canned(lambda seen: Reply(503, {"error": {"message": "overloaded"}})))
    backend = backends(base_url=proxy.url, max_retries=1)
    with pytest.raises(JudgeError, match=r"failed \(503: overloaded\) after 1 retry"):
        backend.generate(taught_prompt)
    assert len(proxy.chats()) == 2


@pytest.mark.timing
def test_429_retry_after_is_honoured_and_logprobs_are_read(proxy_factory: Callable[..., FaultProxy],
                                                           backends: Callable[..., OpenAIJudge]) -> None:
    entries = vllm_answer({"1": LN(0.9), "0": LN(0.1)}, "1", END)
    text = "".join(entry["token"] for entry in entries)
    limited = iter(range(1))

    def chat(seen: Seen) -> Reply:
        if next(limited, None) is not None:
            return Reply(429, {"error": {"message": "slow down"}}, {"Retry-After": "1.5"})
        return Reply(200, chat_body(text, entries))

    proxy = proxy_factory(None, canned(chat))
    backend = backends(base_url=proxy.url, max_retries=3)
    started = time.perf_counter()
    generation = backend.generate("any prompt", scale=(0, 1))
    assert time.perf_counter() - started >= 1.5  # the default first backoff is at most 0.5 s
    assert len(proxy.chats()) == 2
    assert generation.distribution == pytest.approx({0: 0.1, 1: 0.9})
    assert generation.distribution_mass == pytest.approx(1.0)
    sent = proxy.chats()[-1].body
    assert (sent["temperature"], sent["logprobs"], sent["top_logprobs"]) == (0.0, True, 20)
    assert sent["messages"] == [{"role": "user", "content": "any prompt"}]


def vllm_stream(entries: list[dict[str, Any]], usage: bool) -> bytes:
    """A streamed chat completion as vLLM sends it: a role chunk, one chunk per token, then usage if asked."""
    def chunk(choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 0, "model": MODEL,
                "choices": choices, **extra}

    chunks = [chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])]
    for index, entry in enumerate(entries):
        chunks.append(chunk([{"index": 0, "delta": {"content": entry["token"]}, "logprobs": {"content": [entry]},
                              "finish_reason": "stop" if index == len(entries) - 1 else None}]))
    if usage:
        chunks.append(chunk([], usage={"prompt_tokens": 400, "completion_tokens": len(entries), "total_tokens": 0}))
    return b"".join(f"data: {json.dumps(c)}\n\n".encode() for c in chunks) + b"data: [DONE]\n\n"


@pytest.mark.parametrize("accepts_stream_options", [True, False])
def test_stream_reads_logprobs_and_usage_from_chunks(proxy_factory: Callable[..., FaultProxy],
                                                     backends: Callable[..., OpenAIJudge],
                                                     accepts_stream_options: bool) -> None:
    entries = vllm_answer({"3": LN(0.6), "2": LN(0.3), "1": LN(0.05)}, "3", END)

    def chat(seen: Seen) -> Reply:
        if "stream_options" in seen.body and not accepts_stream_options:
            return Reply(400, {"object": "error", "message": "stream_options is not supported", "code": 400})
        return Reply(200, vllm_stream(entries, usage="stream_options" in seen.body),
                     {"Content-Type": "text/event-stream"})

    proxy = proxy_factory(None, canned(chat))
    backend = backends(base_url=proxy.url)
    events = list(backend.stream("p", scale=(1, 3)))
    final = events[-1]
    assert isinstance(final, Generation) and "".join(str(event) for event in events[:-1]) == final.text
    assert final.text.endswith("<score>\n3\n</score>") and final.finish_reason == "stop"
    assert final.distribution == pytest.approx({1: 0.05 / 0.95, 2: 0.3 / 0.95, 3: 0.6 / 0.95})
    # Without stream_options a server that sends no usage leaves the counts at 0 rather than guess them.
    expected = (400, len(entries)) if accepts_stream_options else (0, 0)
    assert (final.prompt_tokens, final.completion_tokens) == expected
    assert ["stream_options" in seen.body for seen in proxy.chats()] == (
        [True] if accepts_stream_options else [True, False])


def test_concurrency_is_bounded(server_url: str, proxy_factory: Callable[..., FaultProxy],
                                backends: Callable[..., OpenAIJudge], taught_prompt: str) -> None:
    proxy = proxy_factory(server_url)
    backend = backends(base_url=proxy.url, max_concurrency=2)
    prompts = [taught_prompt + "\n" * index for index in range(6)]  # six different requests
    outcomes = backend.generate_batch(prompts, scales=[(0, 1)] * 6, max_new_tokens=6)
    assert all(isinstance(outcome, Generation) for outcome in outcomes)
    assert len(proxy.chats()) == 6
    assert proxy.max_in_flight == 2


def test_refused_logprobs_are_dropped_and_remembered(proxy_factory: Callable[..., FaultProxy],
                                                     backends: Callable[..., OpenAIJudge]) -> None:
    def chat(seen: Seen) -> Reply:
        if "logprobs" in seen.body:
            return Reply(400, {"object": "error", "message": "logprobs is not supported", "code": 400})
        return Reply(200, chat_body(WELL_FORMED))

    proxy = proxy_factory(None, canned(chat))
    backend = backends(base_url=proxy.url)
    first = backend.generate("p", scale=(0, 1))
    second = backend.generate("p", scale=(0, 1))
    assert first.text == second.text == WELL_FORMED and first.distribution is None
    assert ["logprobs" in seen.body for seen in proxy.chats()] == [True, False, False]
    assert second.settings["top_logprobs"] == 0


def test_a_top_logprobs_limit_is_obeyed(proxy_factory: Callable[..., FaultProxy],
                                        backends: Callable[..., OpenAIJudge]) -> None:
    def chat(seen: Seen) -> Reply:  # TGI's wording and status
        if seen.body.get("top_logprobs", 0) > 5:
            return Reply(422, {"error": "Input validation error: `top_n_tokens` must be >= 0 and <= 5. Given: 20",
                               "error_type": "validation"})
        return Reply(200, chat_body(WELL_FORMED))

    proxy = proxy_factory(None, canned(chat))
    backend = backends(base_url=proxy.url)
    backend.generate("p")
    assert [seen.body.get("top_logprobs") for seen in proxy.chats()] == [20, 5]


def test_context_errors_lower_max_tokens_or_refuse_the_prompt(proxy_factory: Callable[..., FaultProxy],
                                                              backends: Callable[..., OpenAIJudge]) -> None:
    def chat(seen: Seen) -> Reply:
        prompt = seen.body["messages"][0]["content"]
        if prompt == "long" and seen.body["max_tokens"] > 596:  # vLLM: the prompt fits, the answer would not
            return Reply(400, {"object": "error", "type": "BadRequestError", "code": 400, "message": (
                f"'max_tokens' or 'max_completion_tokens' is too large: {seen.body['max_tokens']}. This model's "
                "maximum context length is 4096 tokens and your request has 3500 input tokens "
                f"({seen.body['max_tokens']} > 4096 - 3500). None")})
        if prompt == "too long":  # llama.cpp: the prompt alone does not fit
            return Reply(400, {"error": {"code": 400, "message": "the request exceeds the available context size, "
                                         "try increasing it", "type": "exceed_context_size_error",
                                         "n_prompt_tokens": 9000, "n_ctx": 8192}})
        return Reply(200, chat_body(WELL_FORMED, finish_reason="length"))

    proxy = proxy_factory(None, canned(chat))
    backend = backends(base_url=proxy.url)
    lowered = backend.generate("long", max_new_tokens=1024)
    assert lowered.warnings == ("max_new_tokens lowered from 1024 to 596 to fit the model's context.",)
    assert [seen.body["max_tokens"] for seen in proxy.chats()] == [1024, 596]
    assert lowered.finish_reason == "length" and lowered.settings["max_tokens"] == 596
    with pytest.raises(ContextTooLongError, match="9,000 tokens .* at most 8,192"):
        backend.generate("too long")
    outcomes = backend.generate_batch(["short", "too long", "short"], scales=[(0, 1)] * 3, max_new_tokens=64)
    assert isinstance(outcomes[1], ContextTooLongError)
    assert [type(outcome) for outcome in outcomes[::2]] == [Generation, Generation]


def test_a_prompt_past_the_trained_context_is_warned_about_once(proxy_factory: Callable[..., FaultProxy],
                                                                backends: Callable[..., OpenAIJudge]) -> None:
    # The server counts the prompt (9,000 tokens, in a 16k context): the back-end adds the guard's warning.
    proxy = proxy_factory(None, canned(lambda seen: Reply(200, chat_body(WELL_FORMED, prompt_tokens=9000))))
    backend = backends(base_url=proxy.url)
    generation = backend.generate("a long prompt", max_new_tokens=64)
    beyond = trained_context_warning(9000)
    assert beyond is not None and "8,192" in beyond
    assert generation.warnings == (beyond,)
    request = GradeRequest({"MODEL OUTPUT": "Paris."}, "Is it right?", "0: no\n1: yes", max_new_tokens=64)
    assert grade(backend, request).warnings == (beyond,)  # grading adds no second copy
    assert backend.generate("a long prompt", max_new_tokens=64).warnings == (beyond,)


def test_keys_come_from_the_environment_and_never_show(proxy_factory: Callable[..., FaultProxy],
                                                       backends: Callable[..., OpenAIJudge],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-test-0123456789"

    def answer(seen: Seen) -> Reply:
        if seen.headers.get("authorization") != f"Bearer {secret}":
            return Reply(401, {"error": {"message": "Invalid API key", "type": "invalid_request_error"}})
        return canned(lambda seen: Reply(200, chat_body(WELL_FORMED)))(seen) or Reply(404, {})

    proxy = proxy_factory(None, answer)
    monkeypatch.delenv("GLIDER_OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(JudgeError, match=r"refused the request \(401: Invalid API key\).*set GLIDER_OPENAI_API_KEY"):
        backends(base_url=proxy.url)
    monkeypatch.setenv("GLIDER_OPENAI_API_KEY", secret)
    monkeypatch.setenv("GLIDER_OPENAI_BASE_URL", proxy.url)
    backend = backends()
    assert backend.generate("p").text == WELL_FORMED
    assert secret not in repr(backend.info) and secret not in backend.info.describe()


def test_missing_url_and_ambiguous_or_vanished_models_are_explained(
    proxy_factory: Callable[..., FaultProxy], backends: Callable[..., OpenAIJudge], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GLIDER_OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ModelLoadError, match="GLIDER_OPENAI_BASE_URL"):
        backends()
    listing = {"data": [{"id": "a"}, {"id": "b"}]}
    several = proxy_factory(None, lambda seen: Reply(200, listing))
    with pytest.raises(ModelLoadError, match=r"several models \(a, b\)"):
        backends(base_url=several.url)

    def gone(seen: Seen) -> Reply:  # vLLM after the model was swapped for another one
        if seen.path.endswith("/models"):
            return Reply(200, {"data": [{"id": "a"}]} if len(proxy.seen) == 1 else {"data": [{"id": "other"}]})
        return Reply(404, {"object": "error", "message": "The model `a` does not exist.", "code": 404})

    proxy = proxy_factory(None, gone)
    backend = backends(base_url=proxy.url)
    with pytest.raises(ModelLoadError, match="does not serve the model 'a'; it serves: 'other'"):
        backend.generate("p")


def test_count_tokens_uses_the_tokenize_endpoint_where_there_is_one(proxy_factory: Callable[..., FaultProxy],
                                                                    backends: Callable[..., OpenAIJudge]) -> None:
    def answer(seen: Seen) -> Reply:  # vLLM's /tokenize sits beside /v1, not under it
        if seen.path == "/tokenize":
            assert seen.body["messages"] == [{"role": "user", "content": "a prompt"}]
            return Reply(200, {"count": 123, "max_model_len": 4096, "tokens": list(range(123))})
        return canned(lambda seen: None)(seen) or Reply(404, {})

    proxy = proxy_factory(None, answer)
    backend = backends(base_url=proxy.url)
    assert backend.count_tokens("a prompt") == 123
    assert backend.info.max_context == 4096  # from vLLM's model listing
