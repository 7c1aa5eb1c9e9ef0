"""Does this CPU run bfloat16 natively? And a once-per-process warning when half precision is a trap.

On CPU, ``precision="half"`` / ``"mixed"`` run the spectral contraction and the autocast body in
bfloat16 (``ccs_fno.nn.spectral``). CPUs with AMX-BF16 or AVX512-BF16 execute bfloat16 matmuls
natively; on others, oneDNN/ATen emulate them through float32 conversions, and one canonical
training step (batch 8, 64x64, 51 outputs, width 32, 4 layers) was measured at 2.7 s in half
vs 0.35 s in full: 7.6x slower, for no accuracy benefit. ``warn_if_slow_half`` makes that visible.

Detection reads the ``flags`` lines of ``/proc/cpuinfo`` (Linux). torch has no public capability
check for this (``torch.cpu._is_avx512_bf16_supported`` and ``_is_amx_tile_supported`` are
private), so none is used; elsewhere (macOS, Windows, or an unreadable cpuinfo) the CPU counts as
not native, i.e. the warning errs on the side of being shown.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import torch

NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
CPUINFO = Path("/proc/cpuinfo")
SLOW_HALF_MESSAGE = (
    "precision={precision!r} on this CPU runs the spectral contraction and the model body in "
    "bfloat16, but the CPU has no native bfloat16 (no AMX-BF16 / AVX512-BF16 flag in "
    "/proc/cpuinfo), so bfloat16 kernels are emulated: one canonical training step was measured "
    "7.6x slower than in full precision (2.7 s vs 0.35 s). Use --precision full "
    "(precision='full') on this machine; half/mixed pay off on CUDA GPUs and on CPUs with "
    "AMX-BF16 or AVX512-BF16."
)

_warned: set[str] = set()


class SlowPrecisionWarning(UserWarning):
    """A reduced precision that is much slower than full precision on this hardware."""


def cpu_flags(cpuinfo: str) -> list[frozenset[str]]:
    """The flag set of every processor listed in ``cpuinfo`` (the text of /proc/cpuinfo)."""
    flags = []
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "flags":
            flags.append(frozenset(value.split()))
    return flags


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """True if every processor in ``cpuinfo`` (default: this machine's /proc/cpuinfo) reports
    AMX-BF16 or AVX512-BF16; False otherwise, also when there is no cpuinfo to read."""
    if cpuinfo is None:
        return _this_cpu_has_native_bf16()
    per_cpu = cpu_flags(cpuinfo)
    return bool(per_cpu) and all(any(f in flags for f in NATIVE_BF16_FLAGS) for flags in per_cpu)


@functools.cache
def _this_cpu_has_native_bf16() -> bool:
    try:
        text = CPUINFO.read_text()
    except OSError:
        return False
    return cpu_has_native_bf16(text)


def warn_if_slow_half(precision: str, device: torch.device | str) -> bool:
    """Warn (``SlowPrecisionWarning``, once per process) if ``precision`` is "half" or "mixed" on a
    CPU device whose processor has no native bfloat16; return whether this call warned.

    Call it where a run's precision and device are known, before training starts, for each
    precision the run will use (e.g. every stage of a precision schedule).
    """
    if precision == "full" or torch.device(device).type != "cpu" or cpu_has_native_bf16():
        return False
    if "cpu" in _warned:
        return False
    _warned.add("cpu")
    warnings.warn(SLOW_HALF_MESSAGE.format(precision=precision), SlowPrecisionWarning, stacklevel=2)
    return True
