"""Bit-reproducible matrix products on the CPU.

MKL picks kernels by the memory alignment of each matrix, so the same model at an odd
and at an even position of a stacked group can round differently (after 30 epochs of
SGD the losses differed by 10 %). MKL's conditional numerical reproducibility (CNR) in
its strict mode makes results independent of alignment. The mode must be chosen before
MKL's first call: `pipeline/__init__.py` sets MKL_CBWR for this process and its children,
and `ensure_reproducible()` sets it through MKL's own API when torch was imported first.

Strict CNR fixes the rounding on one kind of processor only: MKL and torch's own kernels
are chosen by the instruction set (AVX2, AVX-512), and another set rounds differently.
`arithmetic()` names what decides the last bits, for the cache key and the run's record.
"""

from __future__ import annotations

import ctypes
import os
import platform
from functools import cache

CBWR_AUTO = 2
CBWR_STRICT = 0x10000
CBWR_ALL = -1


@cache
def _mkl() -> tuple | None:
    """MKL's CNR getter and setter, from the library torch links MKL into; None
    without MKL (a build on OpenBLAS, for example)."""
    import torch

    path = os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so")
    try:
        lib = ctypes.CDLL(path)
        get, set_ = lib.mkl_serv_cbwr_get, lib.mkl_serv_cbwr_set
    except (OSError, AttributeError):
        return None
    get.restype = set_.restype = ctypes.c_int
    get.argtypes = set_.argtypes = [ctypes.c_int]
    return get, set_


def mode() -> str:
    """The BLAS reproducibility mode, as it enters the cell cache's key."""
    mkl = _mkl()
    return "no-mkl" if mkl is None else f"mkl-cbwr-{mkl[0](CBWR_ALL)}"


# MKL's CNR branches (mkl_cbwr_get's low bits), for the mode in words
CBWR_BRANCHES = {CBWR_AUTO: "auto", 3: "compatible", 4: "SSE2", 6: "SSSE3", 7: "SSE4.1",
                 8: "SSE4.2", 9: "AVX", 10: "AVX2", 12: "AVX-512"}


def describe(cbwr: int) -> str:
    """An MKL CNR mode (mkl_cbwr_get's value) in words."""
    branch = cbwr & ~CBWR_STRICT
    strict = ", strict" if cbwr & CBWR_STRICT else ""
    return f"MKL reproducible mode (branch {CBWR_BRANCHES.get(branch, str(branch))}{strict})"


def mode_words() -> str:
    """The BLAS reproducibility mode in words, as the run's record gives it."""
    mkl = _mkl()
    return "no MKL" if mkl is None else describe(mkl[0](CBWR_ALL))


def ensure_reproducible() -> None:
    """Turn on MKL's strict CNR mode, or fail with the reason if MKL already ran in
    another mode (its mode cannot change after its first call)."""
    mkl = _mkl()
    if mkl is None:
        return
    get, set_ = mkl
    if get(CBWR_ALL) & CBWR_STRICT:
        return
    if set_(CBWR_AUTO | CBWR_STRICT) != 0:
        raise RuntimeError(
            "MKL ran matrix products before the engine could switch it to its "
            "reproducible mode, so a model's numbers would depend on its position in a "
            "group: import pipeline before running torch code, or start Python with "
            "MKL_CBWR=AUTO,STRICT")


@cache
def processor() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo), or what the platform reports."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def arithmetic(device: str = "cpu") -> str:
    """What decides a result's last bits on this machine, in words: the processor (or the
    GPU), the kernel set torch dispatches to, and the BLAS mode."""
    import torch

    if str(device).startswith("cuda"):
        return f"{torch.cuda.get_device_name(torch.device(device))}, CUDA {torch.version.cuda}"
    return (f"{processor()}, torch kernels {torch.backends.cpu.get_cpu_capability()}, "
            f"{mode_words()}")
