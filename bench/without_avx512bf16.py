"""Run a Python script with bitsandbytes told that this CPU has no AVX512-BF16, to measure its other nf4 path.

    .venv/bin/python bench/without_avx512bf16.py app.py --model <cache-dir>/glider/bf16
    .venv/bin/python bench/suite.py --bnb-without-avx512bf16 ...   # runs its nf4 workers and apps through this

bitsandbytes picks its CPU routine for nf4 by asking its native library whether the CPU has AVX512-BF16
(`lib.has_avx512bf16_cpu`): with it, weights are repacked once and a fused 4-bit kernel multiplies; without it,
each matrix is unpacked to bf16 and multiplied by PyTorch (see core/judge/bitsandbytes_cpu.py). The question
is asked when bitsandbytes registers its kernels (at import) and when each layer is built, so the answer is
changed right after the native library is loaded, before anything asks it: the script then runs exactly as
it would on a CPU without the flag, with this machine's cores and memory. Benchmark use only.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import runpy
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

NATIVE_MODULE = "bitsandbytes.cextension"


class _AnswerNoAvx512Bf16(importlib.abc.MetaPathFinder):
    """Finds bitsandbytes.cextension as usual, and makes its library answer "no AVX512-BF16" once loaded."""

    def find_spec(self, name: str, path: Sequence[str] | None, target: ModuleType | None = None) -> Any:
        if name != NATIVE_MODULE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        load = spec.loader.exec_module

        def exec_module(module: ModuleType) -> None:
            load(module)
            module.lib.has_avx512bf16_cpu = lambda: False  # an instance attribute wins over the library lookup

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def install() -> None:
    """From now on in this process, bitsandbytes (imported after this) sees a CPU without AVX512-BF16."""
    if NATIVE_MODULE in sys.modules:
        raise RuntimeError("bitsandbytes is already imported; install() must run before it is")
    sys.meta_path.insert(0, _AnswerNoAvx512Bf16())


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit("usage: without_avx512bf16.py SCRIPT [ARGS...]")
    install()
    sys.argv = list(argv)
    sys.path.insert(0, str(Path(argv[0]).resolve().parent))  # as `python SCRIPT` would
    runpy.run_path(argv[0], run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
