"""What this machine offers the judge: CPU counts, a CUDA GPU, llama-cpp-python (stdlib only, cheap to import).

Shared by the back-ends that choose a thread count (llama.cpp, torch on CPU) and by the automatic
back-end choice (core.judge.options.resolve_backend).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path


def physical_cores() -> int:
    """Physical cores among the CPUs this process may run on (llama.cpp decodes fastest with one thread each).

    Decoding is bound by memory bandwidth and SIMD units, which two hyper-threads of one core share, so a
    second thread per core only adds synchronisation. Linux: distinct (package, core) pairs of the CPUs in
    the affinity mask (a container's cpuset included); elsewhere the logical count is the best available.
    llama-cpp-python's own default, cpu_count() // 2, assumes two threads per core and halves machines
    without SMT.
    """
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    cores = set()
    for cpu in cpus:
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            package = (topology / "physical_package_id").read_text().strip()
            cores.add((package, (topology / "core_id").read_text().strip()))
        except OSError:
            return max(1, len(cpus))
    return max(1, len(cores))


def logical_cpus() -> int:
    """CPUs this process may run on (prompt processing is compute-bound and can use every one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


# Device nodes an NVIDIA (or ROCm, which torch also reports through torch.cuda) driver creates on Linux.
_GPU_DEVICE_FILES = ("/proc/driver/nvidia/version", "/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd")


def cuda_available() -> bool:
    """Whether torch can use a CUDA (or ROCm) GPU; on Linux without a GPU driver, answered without importing torch."""
    if sys.platform.startswith("linux") and not any(Path(name).exists() for name in _GPU_DEVICE_FILES):
        return False
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def llama_cpp_installed() -> bool:
    """Whether llama-cpp-python can be imported (looked up, not imported: importing loads the native library)."""
    return importlib.util.find_spec("llama_cpp") is not None
