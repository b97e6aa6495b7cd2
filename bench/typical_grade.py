"""A typical GLIDER grade, end to end through the running app's /grade, per back-end (the suite's `grade` section).

Typical means what README's "What to expect" promises: a prompt of about 600 tokens (the 204-token constant
head reused from the previous grade) and 300 written tokens. Each back-end is started as a user starts it
(`python app.py` with its judge flags), one grade warms it (and computes the head's cache), then `runs`
grades are timed on the client, from the call to the answer. Random weights never write a stop token in
practice; each answer's completion_tokens is recorded, so a shorter one would show.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

NEW_TOKENS = 300
PROMPT_TOKENS = 600
CRITERIA = "Is the MODEL OUTPUT faithful to the CONTEXT, without adding facts the CONTEXT does not state?"
RUBRIC = ("0: The MODEL OUTPUT states facts the CONTEXT does not support.\n"
          "1: Every fact in the MODEL OUTPUT is supported by the CONTEXT.")
_SENTENCES = (
    "The river rises in the northern hills and reaches the sea after four hundred kilometres.",
    "Its delta holds three towns, the largest of which was founded in the twelfth century.",
    "Barges carried grain and timber downstream until the railway opened in 1871.",
    "Today the lower valley is known for orchards, wine and a music festival every July.",
)

AppStarter = Callable[[list[str], Path, str], AbstractContextManager[tuple[str, Any]]]


def typical_fields(tokenizer_dir: Path, target_tokens: int = PROMPT_TOKENS) -> tuple[dict[str, str], int]:
    """(CONTEXT / MODEL OUTPUT fields whose chat-formatted GLIDER prompt has >= target_tokens tokens, that count)."""
    from core.judge.transformers_backend import _load_tokenizer
    from core.prompt import CONTEXT, MODEL_OUTPUT, build_prompt, chat_messages

    tokenizer = _load_tokenizer(str(tokenizer_dir), None, True)

    def count(fields: dict[str, str]) -> int:
        text = tokenizer.apply_chat_template(chat_messages(build_prompt(fields, CRITERIA, RUBRIC)), tokenize=False,
                                             add_generation_prompt=True)
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    sentences: list[str] = []
    while True:
        sentences.append(_SENTENCES[len(sentences) % len(_SENTENCES)])
        fields = {CONTEXT: " ".join(sentences), MODEL_OUTPUT: " ".join(sentences[: max(1, len(sentences) // 3)])}
        tokens = count(fields)
        if tokens >= target_tokens:
            return fields, tokens


def peak_rss_bytes(pid: int) -> int | None:
    """VmHWM (the process's peak resident memory) from /proc, else None."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def grade_through_app(url: str, fields: dict[str, str], new_tokens: int) -> Iterator[dict[str, Any]]:
    """Endless /grade calls of the same item; each yields the client's wall time and the server's answer."""
    from gradio_client import Client

    from core.prompt import CONTEXT, MODEL_OUTPUT

    client = Client(url, verbose=False)
    try:
        while True:
            started = time.perf_counter()
            answer = client.predict(fields[CONTEXT], "", fields[MODEL_OUTPUT], "", CRITERIA, RUBRIC, new_tokens,
                                    api_name="/grade")
            yield {"wall_s": time.perf_counter() - started, "server_total_s": answer["timings"].get("total_s"),
                   "generation_s": answer["timings"].get("generation_s"), "prompt_tokens": answer["prompt_tokens"],
                   "completion_tokens": answer["completion_tokens"], "record": answer["backend"]}
    finally:
        client.close()


def measure_configuration(start_app: AppStarter, label: str, flags: list[str], shown: str, workdir: Path,
                          fields: dict[str, str], runs: int, new_tokens: int,
                          log: Callable[[str], None]) -> dict[str, Any]:
    """Start the app with `flags`, grade once to warm it, then time `runs` grades; its status and peak memory."""
    from gradio_client import Client

    started = time.perf_counter()
    with start_app(flags, workdir, shown) as (url, process):
        ready_s = time.perf_counter() - started
        client = Client(url, verbose=False)
        status = client.predict(api_name="/status")
        client.close()
        grades = grade_through_app(url, fields, new_tokens)
        warm = next(grades)
        log(f"[grade] {label}: ready after {ready_s:.0f} s; warm-up grade {warm['wall_s']:.1f} s")
        timed = []
        for _ in range(runs):
            timed.append(next(grades))
            log(f"[grade] {label}: {timed[-1]['wall_s']:.1f} s ({timed[-1]['completion_tokens']} tokens written)")
        grades.close()
        peak = peak_rss_bytes(process.pid)
    walls = [g["wall_s"] for g in timed]
    return {"label": label, "command": shown, "ready_s": ready_s, "warm_up": warm, "grades": timed,
            "median_s": statistics.median(walls), "min_s": min(walls), "max_s": max(walls),
            "prompt_tokens": timed[0]["prompt_tokens"], "completion_tokens": [g["completion_tokens"] for g in timed],
            "record": timed[0]["record"], "status": status, "peak_rss_bytes": peak}
