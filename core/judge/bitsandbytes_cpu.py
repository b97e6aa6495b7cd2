"""bitsandbytes on a CPU: imported without its Hub kernel download, and which of its 4-bit routines runs.

Kept apart from the transformers back-end: it is about one library's CPU behaviour (what it fetches at import,
what it picks by CPU flag), which the back-end only asks for.
"""

from __future__ import annotations

import logging
import sys
import threading
from types import ModuleType

log = logging.getLogger(__name__)


# bitsandbytes 0.50 on a CPU with AVX512-BF16 asks the `kernels` package for this Hub repository's compiled
# 4-bit kernel while it is being imported (bitsandbytes/backends/cpu/ops.py); its warning starts with this text.
BNB_HUB_KERNEL_REPO = "kernels-community/quantization-bitsandbytes"
BNB_HUB_KERNEL_WARNING = "Failed to load CPU gemm_4bit_forward from kernels-community"
_BNB_CPU_LOGGER = "bitsandbytes.backends.cpu.ops"
_bnb_import_lock = threading.Lock()


class _DropHubKernelWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(BNB_HUB_KERNEL_WARNING)


def import_bitsandbytes() -> ModuleType:
    """Import bitsandbytes without its Hub kernel download, so every start runs its own native CPU routine.

    Why: on a CPU with AVX512-BF16, importing bitsandbytes 0.50 calls kernels.get_kernel(BNB_HUB_KERNEL_REPO),
    which downloads compiled code from the Hub (a network call at every start; offline it fails with a warning
    on every load, then bitsandbytes falls back to its native routine). Neither bitsandbytes nor `kernels` has a
    switch for this call (`kernels` reads only LOCAL_KERNELS, KERNELS_CACHE and UNSTABLE_KERNELS_ALL_LATEST;
    transformers' USE_HUB_KERNELS covers transformers' own layers, not bitsandbytes). So, for the length of
    this one import only, `kernels` is made unimportable and bitsandbytes' failure message is dropped:
    bitsandbytes then uses its native routine, the one every offline start already ran, so the numbers are
    those of an offline start, online or not. The speed no longer depends on reaching the Hub.
    """
    with _bnb_import_lock:
        if "bitsandbytes" in sys.modules:
            return sys.modules["bitsandbytes"]
        absent = object()
        saved = sys.modules.get("kernels", absent)
        sys.modules["kernels"] = None  # type: ignore[assignment]  # makes `import kernels` raise ImportError
        quiet = _DropHubKernelWarning()
        logger = logging.getLogger(_BNB_CPU_LOGGER)
        logger.addFilter(quiet)
        try:
            import bitsandbytes
        finally:
            logger.removeFilter(quiet)
            if saved is absent:
                del sys.modules["kernels"]
            else:
                sys.modules["kernels"] = saved  # type: ignore[assignment]
        log.debug("bitsandbytes imported without asking the Hub for %s", BNB_HUB_KERNEL_REPO)
        return bitsandbytes


def bnb_cpu_path(native_library: bool, avx512_bf16: bool) -> str:
    """In plain words, the bitsandbytes routine that multiplies nf4 weights on a CPU with these flags.

    bitsandbytes picks it by itself: with its compiled library and AVX512-BF16 it repacks the weights once
    and runs a fused 4-bit kernel; with the library but without AVX512-BF16 it unpacks each weight matrix
    to bf16 and multiplies with PyTorch; without the library everything is PyTorch code (slowest).
    """
    if not native_library:
        return "nf4 via bitsandbytes (PyTorch fallback, no native library: slow)"
    if avx512_bf16:
        return "nf4 via bitsandbytes (native CPU kernel, AVX512-BF16 path)"
    return "nf4 via bitsandbytes (native unpack + PyTorch matmul, no AVX512-BF16)"


def detect_bnb_cpu_path() -> str:
    """The bitsandbytes nf4 routine this machine's CPU runs (see bnb_cpu_path)."""
    import_bitsandbytes()
    from bitsandbytes.cextension import ErrorHandlerMockBNBNativeLibrary, lib
    from bitsandbytes.functional import has_avx512bf16

    return bnb_cpu_path(not isinstance(lib, ErrorHandlerMockBNBNativeLibrary), bool(has_avx512bf16()))
