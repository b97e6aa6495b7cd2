"""Time core.agreement.agreement_report on synthetic ratings (seeded): 10,000 items × 3 annotators by default.

    .venv/bin/python bench/agreement_bench.py            # scores only (the target: < 1 s)
    .venv/bin/python bench/agreement_bench.py --spans    # plus a fields text and human/model spans on every row

Prints the median of --runs timed calls (after one untimed warm-up call), with the default 1000 resamples.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.agreement import agreement_report  # noqa: E402

WORDS = "the model answer is faithful to the context and cites the right passage".split()


def synthetic_rows(n_items: int, n_annotators: int, *, spans: bool, seed: int = 0) -> list[dict]:
    """Rows like core.studies.Studies.ratings returns: a 1-5 truth, humans and model within ±1 of it; a study that
    drew its first 80 % of items at random and the rest least-confident first (so every block of the report runs,
    the alt-test and the threshold on the random part)."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(1, 6, n_items)
    model = np.clip(truth + rng.integers(-1, 2, n_items), 1, 5)
    human = np.clip(truth[:, None] + rng.integers(-1, 2, (n_items, n_annotators)), 1, 5)
    confidence = np.round(rng.uniform(0.2, 1.0, n_items), 4)  # the judge's probability of its own score
    rows = []
    for i in range(n_items):
        extra: dict = {}
        if spans:
            text = " ".join(WORDS[(i + k) % len(WORDS)] for k in range(40))
            extra = {
                "fields": {"MODEL OUTPUT": text},
                "model_spans": [{"field": "MODEL OUTPUT", "start": 4, "end": 30, "phrase": text[4:30]}],
            }
        for a in range(n_annotators):
            row = {
                "item_id": i,
                "annotator": f"annotator-{a}",
                "human_score": int(human[i, a]),
                "model_score": int(model[i]),
                "model_status": "ok",
                "model_confidence": float(confidence[i]),  # for the calibration block
                "drawn_at_random": i < n_items * 4 // 5,  # for the sampling block
                **extra,
            }
            if spans:
                row["human_spans"] = [{"field": "MODEL OUTPUT", "start": 10 + a, "end": 40}]
            rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--annotators", type=int, default=3)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--spans", action="store_true", help="add fields text and spans to every row")
    args = parser.parse_args()

    rows = synthetic_rows(args.items, args.annotators, spans=args.spans)
    agreement_report(rows, n_resamples=args.resamples)  # warm-up: first-call imports and caches
    times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        report = agreement_report(rows, n_resamples=args.resamples)
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    print(
        f"agreement_report: {args.items} items x {args.annotators} annotators, {args.resamples} resamples"
        f"{', with spans' if args.spans else ''}: median {median:.3f} s of {args.runs} runs "
        f"(min {min(times):.3f}, max {max(times):.3f}) on {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    kappa = report["weighted_kappa"]
    ci = f" [{kappa['ci_low']:.3f}, {kappa['ci_high']:.3f}]" if kappa.get("ci_low") is not None else ""
    print(f"  weighted kappa {kappa['value']:.3f}{ci}")
    alt = report["alt_test"]  # included in the timing above
    print(f"  alt-test: omega {alt['winning_rate']}, rho {alt['advantage_probability']:.3f} (epsilon {alt['epsilon']}, "
          f"{alt['n_items']} items drawn at random)")
    calibration, versus, sampling = report["calibration"], report["judge_vs_people"], report["sampling"]
    print(f"  calibration: ECE {calibration['ece']['value']:.3f} on {calibration['n_labelled']} items; "
          f"judge vs people: {versus['reading']}; sampling: biased={sampling['biased']}")


if __name__ == "__main__":
    main()
