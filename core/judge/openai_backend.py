"""GLIDER behind an OpenAI-compatible server: vLLM, TGI, llama.cpp server or `transformers serve`.

The server applies the model's chat template and decodes; this back-end sends GLIDER's prompt as one
user turn with greedy settings, reads the score distribution from the token log-probabilities when the
server returns them (core/judge/logprob_distribution.py) and turns HTTP failures into core.errors types whose
messages say what to do. Retries (429, 5xx, timeouts, refused connections; exponential backoff with
jitter; Retry-After honoured up to two minutes) are the official openai client's own.

The openai package is imported in the constructor, never at module import: it takes about a second.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from core.errors import ContextTooLongError, JudgeError, ModelLoadError
from core.judge.base import (
    DEFAULT_MAX_NEW_TOKENS,
    TRAINED_CONTEXT,
    BackendInfo,
    BatchOutcome,
    Generation,
    StreamEvent,
    register_backend,
)
from core.judge.common import (
    MIN_ANSWER_TOKENS,
    STOP_TOKENS,
    check_batch,
    check_max_new_tokens,
    trained_context_warning,
)
from core.judge.logprob_distribution import score_distribution, steps_from_openai
from core.prompt import chat_messages

log = logging.getLogger(__name__)

BASE_URL_ENV = ("GLIDER_OPENAI_BASE_URL", "OPENAI_BASE_URL")
API_KEY_ENV = ("GLIDER_OPENAI_API_KEY", "OPENAI_API_KEY")
# The client insists on a key; servers started without one ignore the Authorization header.
NO_KEY = "no-key"
TOP_LOGPROBS = 20  # OpenAI's maximum and vLLM's default --max-logprobs
DEFAULT_TIMEOUT = 600.0  # seconds for one answer: a CPU llama.cpp server needs minutes for 1,024 tokens
DEFAULT_MAX_RETRIES = 3
CONNECT_TIMEOUT = 5.0
PROBE_TIMEOUT = 3.0  # model listing and /tokenize answer at once on a healthy server
# Without a tokenize endpoint token counts are estimated; Phi-3 averages about 4 characters a token on
# English, 3.5 errs towards more tokens. The first answer's usage replaces it with the server's own ratio.
CHARS_PER_TOKEN = 3.5

# A server's refusal of a prompt that does not fit the model's context, in the wordings servers use.
_CONTEXT_ERROR = re.compile(
    r"""
    context[\ _-](?:length|size|window)        # vLLM, OpenAI, llama.cpp: 'maximum context length', 'context size'
    | context_length_exceeded                  # OpenAI's error code
    | exceed_context_size                      # llama.cpp's error type
    | must\ be\ <=\ *\d+                       # TGI: '`inputs` tokens + `max_new_tokens` must be <= 4096'
    | too\ many\ tokens                        # other servers' wording
    | (?:input|prompt)\ is\ too\ (?:long|large)
    """,
    re.VERBOSE | re.IGNORECASE,
)
# The model's context length, where the refusal names it.
_CONTEXT_LIMIT = re.compile(
    r"""
    (?:maximum\ context\ length\ is          # vLLM, OpenAI
    | must\ be\ <=                           # TGI
    | "n_ctx":                               # llama.cpp's error body
    )\ *(\d+)
    """,
    re.VERBOSE | re.IGNORECASE,
)
# The prompt's length in tokens, where the refusal names it.
_PROMPT_LENGTH = re.compile(
    r"""
    (\d+)\ in\ the\ messages                 # vLLM (older), OpenAI: '(4000 in the messages, 1000 in the completion)'
    | has\ (\d+)\ input\ tokens              # vLLM: 'your request has 2778 input tokens'
    | given:\ (\d+)\ `inputs`\ tokens        # TGI: 'Given: 3900 `inputs` tokens and 1024 `max_new_tokens`'
    | "n_prompt_tokens":\ *(\d+)             # llama.cpp's error body
    """,
    re.VERBOSE | re.IGNORECASE,
)
# A refusal of the log-probability fields, and the largest top_logprobs the server allows if it says.
_LOGPROBS_REFUSED = re.compile(r"logprob|top_n_tokens", re.IGNORECASE)
_LOGPROBS_LIMIT = re.compile(
    r"""
    (?:max(?:imum)?(?:\ allowed)?(?:\ is|\ of)?   # vLLM: 'greater than max allowed: 5'
    | <=                                          # TGI: '`top_n_tokens` must be >= 0 and <= 5'
    | at\ most
    )\ *:?\ *(\d+)
    """,
    re.VERBOSE | re.IGNORECASE,
)
_STREAM_OPTIONS_REFUSED = re.compile(r"stream_options|include_usage", re.IGNORECASE)


def _first_env(names: Sequence[str]) -> str | None:
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def normalize_base_url(url: str) -> str:
    """The API root the client appends '/chat/completions' to: a bare host gets http:// and '/v1'."""
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = f"http://{url}"
    parts = urlsplit(url)
    if parts.path in ("", "/"):  # vLLM, TGI, llama.cpp and transformers serve all answer under /v1
        parts = parts._replace(path="/v1")
    return urlunsplit(parts)


def redact_url(url: str) -> str:
    """The URL without credentials or query string, safe to show and store."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _server_message(exc: Any) -> str:
    """The human part of an error body, whichever server wrote it (OpenAI, vLLM, TGI, llama.cpp, FastAPI)."""
    body = getattr(exc, "body", None)
    for _ in range(3):  # {"error": {"message": ...}} nests at most twice
        if not isinstance(body, dict):
            break
        inner = next((body[key] for key in ("message", "detail", "error") if body.get(key)), None)
        if inner is None:
            break
        body = inner
    text = body if isinstance(body, str) else json.dumps(body) if body else getattr(exc, "message", str(exc))
    return " ".join(str(text).split())[:500]


def _body_text(exc: Any) -> str:
    """Message and raw body together, so numbers that servers put in extra fields can be found."""
    body = getattr(exc, "body", None)
    raw = json.dumps(body) if isinstance(body, dict | list) else str(body or "")
    return f"{_server_message(exc)} {raw}"


def _first_number(pattern: re.Pattern[str], text: str) -> int | None:
    match = pattern.search(text)
    if not match:
        return None
    return int(next(group for group in match.groups() if group is not None))


@register_backend("openai")
class OpenAIJudge:
    """A GLIDER judge on an OpenAI-compatible server; up to max_concurrency requests in flight at once.

    `model` is the served model name; None picks the only model the server lists. A name the server
    does not list is refused at once (ModelLoadError naming the served ones). `base_url` defaults to
    GLIDER_OPENAI_BASE_URL, then OPENAI_BASE_URL; `api_key` to GLIDER_OPENAI_API_KEY, then
    OPENAI_API_KEY (pass it from code or the environment, never on a command line: it would end up in
    logs). `timeout` is seconds per request, `max_retries` how often the client retries a request that
    failed with 429, a 5xx, a timeout or a refused connection.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        max_concurrency: int = 8,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
    ) -> None:
        try:
            import openai
        except ImportError as exc:
            raise ModelLoadError("The openai back-end needs the openai package: pip install openai.") from exc
        if max_concurrency < 1:
            raise ModelLoadError(f"max_concurrency must be at least 1, not {max_concurrency}.")
        if max_retries < 0 or timeout <= 0:
            raise ModelLoadError("max_retries must be 0 or more and timeout a positive number of seconds.")
        url = base_url or _first_env(BASE_URL_ENV)
        if not url:
            raise ModelLoadError(
                "No judge server URL: set GLIDER_OPENAI_BASE_URL (or OPENAI_BASE_URL) to the server's API root, "
                "e.g. http://localhost:8000/v1 for `vllm serve PatronusAI/glider`."
            )
        self._openai = openai
        self.base_url = normalize_base_url(url)
        self.display_url = redact_url(self.base_url)
        self.max_concurrency = max_concurrency
        self.timeout = float(timeout)
        self.max_retries = max_retries
        key = api_key or _first_env(API_KEY_ENV)
        self._has_key = key is not None
        self._client = openai.OpenAI(
            base_url=self.base_url,
            api_key=key or NO_KEY,
            max_retries=max_retries,
            timeout=openai.Timeout(self.timeout, connect=min(self.timeout, CONNECT_TIMEOUT)),
        )
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._lock = threading.Lock()  # guards what the server taught us below
        self._top_logprobs = TOP_LOGPROBS  # lowered, or 0, when the server refuses log-probabilities
        self._stream_usage = True  # False when the server refuses stream_options
        self._tokenize: bool | None = None  # whether POST /tokenize answers (vLLM); None: not asked yet
        self._warned_no_logprobs = False
        self._tokens_per_char = 1.0 / CHARS_PER_TOKEN

        started = time.perf_counter()
        self._served: list[dict[str, Any]] | None = self._list_models()
        self.model = self._choose_model(model)
        entry = next((m for m in self._served or [] if m.get("id") == self.model), {})
        listed_context = entry.get("max_model_len")  # vLLM lists it; other servers keep it to themselves
        notes = [f"up to {max_concurrency} concurrent requests, {max_retries} retries"]
        if self._served is None:
            notes.append("the server does not list its models; the name was not checked")
        if not isinstance(listed_context, int):
            notes.append("the server's context length is unknown; it refuses prompts that do not fit")
        self.info = BackendInfo(
            backend="openai",
            model_id=self.model,
            revision=None,
            quantization="server",
            dtype="server",
            device=self.display_url,
            max_context=listed_context if isinstance(listed_context, int) else TRAINED_CONTEXT,
            notes=tuple(notes),
        )
        log.info("Judge server %s serves %s (checked in %.2f s)", self.display_url, self.model,
                 time.perf_counter() - started)

    def close(self) -> None:
        """Close the HTTP connections (the back-end cannot be used afterwards)."""
        self._client.close()

    # -- the served model ------------------------------------------------------------------------
    def _list_models(self) -> list[dict[str, Any]] | None:
        """The entries of GET /models, or None when the server has no such endpoint."""
        client = self._client.with_options(timeout=min(self.timeout, 30.0))
        try:
            listing = client.get("/models", cast_to=object)
        except self._openai.APIStatusError as exc:
            if exc.status_code in (404, 405, 501):  # no listing here; the name is checked by the first request
                return None
            raise self._translate(exc) from exc
        except self._openai.OpenAIError as exc:
            raise self._translate(exc) from exc
        except ValueError:  # a body that is not JSON: not an OpenAI-compatible listing
            return None
        data = listing.get("data") if isinstance(listing, dict) else None
        if not isinstance(data, list):
            return None
        return [entry for entry in data if isinstance(entry, dict) and isinstance(entry.get("id"), str)]

    def _served_names(self) -> list[str]:
        return [entry["id"] for entry in self._served or []]

    def _choose_model(self, requested: str | None) -> str:
        names = self._served_names()
        if self._served is None:
            if requested:
                return requested
            raise ModelLoadError(
                f"The judge server at {self.display_url} does not list its models (GET /models); "
                "name the served model explicitly."
            )
        if requested is None:
            if len(names) == 1:
                return names[0]
            if not names:
                raise ModelLoadError(f"The judge server at {self.display_url} serves no model yet.")
            raise ModelLoadError(
                f"The judge server at {self.display_url} serves several models ({', '.join(names)}); "
                "name the one to use."
            )
        if requested not in names:
            raise ModelLoadError(self._unknown_model_message(requested))
        return requested

    def _unknown_model_message(self, requested: str) -> str:
        served = ", ".join(repr(name) for name in self._served_names()) or "none"
        return (f"The judge server at {self.display_url} does not serve the model {requested!r}; it serves: {served}. "
                "Use one of these names (or none, when it serves just one).")

    # -- errors ----------------------------------------------------------------------------------
    def _translate(self, exc: Exception) -> JudgeError:
        """A core.errors exception, with a message a user can act on, for whatever the client raised."""
        openai = self._openai
        url = self.display_url
        retries = self.max_retries
        retried = f"after {retries} retr{'y' if retries == 1 else 'ies'}" if retries else "(retries are off)"
        if isinstance(exc, openai.APITimeoutError):
            return JudgeError(
                f"The judge server at {url} did not answer within {self.timeout:g} s {retried}. It may be overloaded: "
                "lower max_concurrency, raise the timeout, or add replicas."
            )
        if isinstance(exc, openai.APIConnectionError):
            cause = exc.__cause__ or exc.__context__
            reason = f" ({type(cause).__name__}: {cause})" if cause else ""
            return JudgeError(f"Could not reach the judge server at {url}{reason} {retried}; is it running?")
        if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
            variables = f"{API_KEY_ENV[0]} (or {API_KEY_ENV[1]})"
            advice = (f"The key it was sent (api_key, else {variables}) is not one it accepts" if self._has_key
                      else f"It was sent no key: set {variables}")
            return JudgeError(
                f"The judge server at {url} refused the request ({exc.status_code}: {_server_message(exc)}). "
                f"{advice}; use the key the server was started with."
            )
        if isinstance(exc, openai.NotFoundError):
            return self._not_found(exc)
        if isinstance(exc, openai.RateLimitError):
            return JudgeError(
                f"The judge server at {url} is rate-limiting requests (429) {retried}: {_server_message(exc)}. "
                "Lower max_concurrency or try again later."
            )
        if isinstance(exc, openai.APIStatusError):
            kind = "failed" if exc.status_code >= 500 else "refused the request"
            again = f" {retried}" if exc.status_code >= 500 else ""
            return JudgeError(f"The judge server at {url} {kind} ({exc.status_code}: {_server_message(exc)}){again}.")
        if isinstance(exc, openai.APIError):  # an error event in the middle of a stream
            return JudgeError(f"The judge server at {url} failed while generating: {_server_message(exc)}.")
        return JudgeError(f"The judge server at {url} could not be used: {type(exc).__name__}: {exc}")

    def _not_found(self, exc: Any) -> JudgeError:
        """404: the model is gone (vLLM: 'The model `x` does not exist.') or the URL is not an API root."""
        try:
            self._served = self._list_models()
        except JudgeError:
            pass
        if self._served is not None and self.model not in self._served_names():
            return ModelLoadError(self._unknown_model_message(self.model))
        return JudgeError(
            f"The judge server at {self.display_url} has no chat completions endpoint there "
            f"(404: {_server_message(exc)}). The URL should be the API root, usually ending in /v1."
        )

    def _context_error(self, exc: Any) -> tuple[int | None, int | None] | None:
        """(context length, prompt tokens), each None when unnamed, if `exc` refuses a too-long prompt."""
        if getattr(exc, "status_code", None) not in (400, 413, 422, 500):
            return None
        text = _body_text(exc)
        if not _CONTEXT_ERROR.search(text):
            return None
        return _first_number(_CONTEXT_LIMIT, text), _first_number(_PROMPT_LENGTH, text)

    def _too_long(self, exc: Any, limit: int | None, prompt_tokens: int | None) -> ContextTooLongError:
        if limit and prompt_tokens:
            return ContextTooLongError(
                f"The prompt has {prompt_tokens:,} tokens but the model served at {self.display_url} reads at most "
                f"{limit:,} (including at least {MIN_ANSWER_TOKENS} for the answer). Shorten the context or the "
                "output; nothing is truncated silently."
            )
        return ContextTooLongError(
            f"The judge server at {self.display_url} refused the prompt as too long for the model's context "
            f"({_server_message(exc)}). Shorten the context or the output; nothing is truncated silently."
        )

    def _drop_refused_option(self, exc: Any, params: dict[str, Any]) -> bool:
        """Forget an optional field the server refused (log-probabilities, stream usage); True to retry."""
        if getattr(exc, "status_code", None) not in (400, 422):
            return False
        message = _server_message(exc)
        with self._lock:
            if "top_logprobs" in params and _LOGPROBS_REFUSED.search(message):
                limit = _first_number(_LOGPROBS_LIMIT, message)
                fewer = limit if limit is not None and 0 < limit < params["top_logprobs"] else 0
                log.warning("The judge server at %s refused top_logprobs=%d (%s); %s", self.display_url,
                            params["top_logprobs"], message,
                            f"asking for {fewer} from now on" if fewer else "no score distributions from now on")
                self._top_logprobs = min(self._top_logprobs, fewer)
                return True
            if "stream_options" in params and _STREAM_OPTIONS_REFUSED.search(message):
                log.info("The judge server at %s refused stream_options; streamed token counts will be 0",
                         self.display_url)
                self._stream_usage = False
                return True
        return False

    # -- requests --------------------------------------------------------------------------------
    def _params(self, prompt: str, max_new_tokens: int, stream: bool) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": self.model,
            "messages": chat_messages(prompt),
            "temperature": 0.0,
            "max_tokens": max_new_tokens,
            # Servers stop on the model's own end tokens; naming GLIDER's also stops those whose
            # generation config lacks them. Servers that hide special tokens never see these strings.
            "stop": list(STOP_TOKENS),
        }
        with self._lock:
            if self._top_logprobs:
                params["logprobs"] = True
                params["top_logprobs"] = self._top_logprobs
            if stream:
                params["stream"] = True
                if self._stream_usage:
                    params["stream_options"] = {"include_usage": True}
        return params

    def _create(self, prompt: str, max_new_tokens: int, stream: bool) -> tuple[Any, dict[str, Any], list[str]]:
        """Send the request, adapting once to each refusal that can be adapted to; (response, params, warnings)."""
        check_max_new_tokens(max_new_tokens)
        warnings: list[str] = []
        lowered = False
        while True:
            params = self._params(prompt, max_new_tokens, stream)
            try:
                return self._client.chat.completions.create(**params), params, warnings
            except self._openai.APIStatusError as exc:
                if self._drop_refused_option(exc, params):
                    continue
                overflow = self._context_error(exc)
                if overflow is None:
                    raise self._translate(exc) from exc
                limit, prompt_tokens = overflow
                room = limit - prompt_tokens if limit and prompt_tokens else 0
                if not lowered and MIN_ANSWER_TOKENS <= room < max_new_tokens:
                    # The prompt fits but prompt + max_new_tokens does not (vLLM, TGI): ask for less, as the
                    # transformers back-end does, rather than refuse the whole grade.
                    warnings.append(
                        f"max_new_tokens lowered from {max_new_tokens} to {room} to fit the model's context."
                    )
                    max_new_tokens, lowered = room, True
                    continue
                raise self._too_long(exc, limit, prompt_tokens) from exc
            except self._openai.OpenAIError as exc:
                raise self._translate(exc) from exc
            except ValueError as exc:  # the client could not decode the answer
                raise JudgeError(f"The judge server at {self.display_url} did not answer with JSON: {exc}") from exc

    def _finish(
        self,
        prompt: str,
        text: str,
        finish_reason: str | None,
        usage: Any,
        logprobs: list[Any] | None,
        scale: tuple[int, int] | None,
        params: dict[str, Any],
        warnings: list[str],
        seconds: float,
        first_token: float | None,
    ) -> Generation:
        # Without usage (a server that neither sends it nor accepts stream_options) the counts stay 0:
        # counting stream chunks would be a guess, since servers may merge tokens into one chunk.
        prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        if prompt_tokens and prompt:
            self._tokens_per_char = prompt_tokens / len(prompt)
        # The server counted the prompt only now: the context guard's warning comes after the fact.
        beyond = trained_context_warning(prompt_tokens)
        if beyond:
            warnings = [*warnings, beyond]
        distribution = mass = None
        if scale is not None and "top_logprobs" in params:
            steps = steps_from_openai(logprobs)
            if steps is None:
                self._note_missing_logprobs()
            else:
                read = score_distribution(steps, scale)
                if read is not None:
                    distribution, mass = read
        return Generation(
            text=text,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            finish_reason="length" if finish_reason == "length" else "stop",
            distribution=distribution,
            distribution_mass=mass,
            seconds=seconds,
            first_token_seconds=first_token,
            warnings=tuple(warnings),
            settings={
                "max_tokens": params["max_tokens"],
                "stop": list(STOP_TOKENS),
                "top_logprobs": params.get("top_logprobs", 0),
            },
        )

    def _note_missing_logprobs(self) -> None:
        if not self._warned_no_logprobs:  # once: transformers serve, for one, ignores the fields
            self._warned_no_logprobs = True
            log.warning("The judge server at %s returns no token log-probabilities: grades will have no score "
                        "distribution.", self.display_url)

    # -- the JudgeBackend contract ---------------------------------------------------------------
    def count_tokens(self, prompt: str) -> int:
        """Tokens of the chat-formatted prompt: exact where the server has POST /tokenize (vLLM), else estimated.

        The estimate scales the prompt's length by the characters-per-token ratio of the server's last
        answer (Phi-3's typical ratio before the first one). It never waits more than a few seconds.
        """
        exact = self._server_count(prompt)
        if exact is not None:
            return exact
        return max(1, math.ceil(len(prompt) * self._tokens_per_char))

    def _server_count(self, prompt: str) -> int | None:
        if self._tokenize is False:
            return None
        root = self.base_url.removesuffix("/v1")  # vLLM serves /tokenize beside /v1, not under it
        client = self._client.with_options(timeout=PROBE_TIMEOUT, max_retries=0)
        body = {"model": self.model, "messages": chat_messages(prompt), "add_generation_prompt": True}
        try:
            answer = client.post(f"{root}/tokenize", cast_to=object, body=body)
        except (self._openai.OpenAIError, ValueError):  # no such endpoint, or not JSON
            answer = None
        # Only vLLM's answer has 'count'; llama.cpp's /tokenize takes raw text and would count nothing here.
        count = answer.get("count") if isinstance(answer, dict) else None
        if not isinstance(count, int) or count <= 0:
            self._tokenize = False
            return None
        self._tokenize = True
        return count

    def generate(
        self, prompt: str, *, scale: tuple[int, int] | None = None, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    ) -> Generation:
        """Greedy generation until a stop token or max_new_tokens, in one request."""
        with self._slots:
            started = time.perf_counter()
            response, params, warnings = self._create(prompt, max_new_tokens, stream=False)
            seconds = time.perf_counter() - started
        if not getattr(response, "choices", None):
            raise JudgeError(f"The judge server at {self.display_url} answered without a chat completion choice.")
        choice = response.choices[0]
        logprobs = choice.logprobs.content if choice.logprobs is not None else None
        return self._finish(prompt, choice.message.content or "", choice.finish_reason, response.usage, logprobs,
                            scale, params, warnings, seconds, None)

    def stream(
        self, prompt: str, *, scale: tuple[int, int] | None = None, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    ) -> Iterator[StreamEvent]:
        """Yield text deltas as the server sends them, then the Generation (the request holds a slot until then)."""
        with self._slots:
            started = time.perf_counter()
            response, params, warnings = self._create(prompt, max_new_tokens, stream=True)
            parts: list[str] = []
            logprobs: list[Any] = []
            finish_reason: str | None = None
            usage = None
            first_token: float | None = None
            try:
                with response:  # closes the connection also when the caller stops reading early
                    for chunk in response:
                        usage = chunk.usage or usage  # vLLM sends it in a last chunk without choices
                        for choice in chunk.choices[:1]:
                            delta = choice.delta.content if choice.delta is not None else None
                            if choice.logprobs is not None and choice.logprobs.content:
                                logprobs.extend(choice.logprobs.content)
                            finish_reason = choice.finish_reason or finish_reason
                            if delta:
                                if first_token is None:
                                    first_token = time.perf_counter() - started
                                parts.append(delta)
                                yield delta
            except self._openai.OpenAIError as exc:
                raise self._translate(exc) from exc
            if finish_reason is None:
                raise JudgeError(
                    f"The judge server at {self.display_url} ended the stream before the answer was finished."
                )
            seconds = time.perf_counter() - started
        yield self._finish(prompt, "".join(parts), finish_reason, usage, logprobs or None, scale, params, warnings,
                           seconds, first_token)

    def generate_batch(
        self,
        prompts: Sequence[str],
        *,
        scales: Sequence[tuple[int, int] | None],
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    ) -> list[BatchOutcome]:
        """Concurrent requests (at most max_concurrency at a time), outcomes in the order of `prompts`.

        A prompt too long for the model yields its ContextTooLongError in its place; any other failure
        (the server is down, refuses the key, lost the model) stops the batch and is raised.
        """
        check_batch(prompts, scales)
        outcomes: list[BatchOutcome | None] = [None] * len(prompts)
        if not prompts:
            return []
        pool = ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(prompts)),
                                  thread_name_prefix="glider-openai")
        try:
            futures = {
                pool.submit(self.generate, prompt, scale=scale, max_new_tokens=max_new_tokens): index
                for index, (prompt, scale) in enumerate(zip(prompts, scales, strict=True))
            }
            for future in as_completed(futures):
                try:
                    outcomes[futures[future]] = future.result()
                except ContextTooLongError as error:
                    outcomes[futures[future]] = error
        finally:
            # On the first fatal error nothing more is sent; requests already in flight finish or fail.
            pool.shutdown(wait=True, cancel_futures=True)
        return [outcome for outcome in outcomes if outcome is not None]
