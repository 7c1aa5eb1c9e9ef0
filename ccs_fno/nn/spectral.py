"""Spectral convolution (the Fourier layer's global part) in full, half or mixed precision.

Operator (all precisions): ``y = irfftn(W · P rfftn(x))`` over the n spatial dims, where P keeps
the frequencies |k_d| < modes_d in every dim (k_last >= 0 from the real FFT's half spectrum).
This symmetric set never contains a Nyquist frequency and is exactly representable on any grid
with ``2 * modes - 1 <= n`` points per dim, so one set of weights defines the same operator at
every resolution (zero-shot super-resolution) and in every precision.

Weight layout: one real parameter ``[2m_1 - 1, ..., 2m_{n-1} - 1, m_n, in, out, 2]`` -- the mode
axes first, the non-last ones in FFT order (k = 0..m-1, then -(m-1)..-1), then in and out
channels and a trailing (re, im) axis. This is the layout the contraction consumes
(``ccs_fno.nn.contract``): per mode an [in, 2*out] matrix, read in place, so no rearranged copy
of the weight is made per step in full precision and its gradient needs no re-layout either. A
block of modes (for spatial sharding later) is a slice along a mode axis (contiguous for the
first one). ``weight[..., 0] + 1j * weight[..., 1]`` is the complex weight w[k, i, o].

Layout version 2 (``SpectralConv._version``). Version 1 stored ``[in, out, *modes, 2]``; loading a
state dict written by it raises (RuntimeError from ``load_state_dict``) instead of silently
reading channels as modes: no model had been shipped, so there is no conversion.

Precision (``PRECISIONS``), per device:

============  ==================  ====================  ==================
precision     forward FFT         contraction           inverse FFT
============  ==================  ====================  ==================
full          float32 (float64)   float32 (float64)     float32 (float64)
half, CUDA    float16             float16               float16
mixed, CUDA   float32             float16               float16
half/mixed,   float32             bfloat16              float32
other devices
============  ==================  ====================  ==================

Other devices have no half-precision FFT; bfloat16 is used for the contraction there because it
is the dtype CPU autocast uses, has float32's exponent range (no overflow to guard against) and
has native CPU matmul kernels (float16 CPU matmul is slow or emulated).

cuFFT runs float16 transforms only on power-of-two sizes. Other sizes are padded up to the next
power of two -- not with zeros in space, which would turn the N-periodic circular convolution
into an N'-periodic one on a signal with a jump at the wrap (so k would mean k cycles per N'
cells and the half model would compute a different operator than the full one, breaking both the
precision schedule and resolution independence) -- but with zeros in the spectrum: the input is
Fourier-interpolated onto N' points by a small float16 matmul, transformed on N', and the output
(band-limited to the retained modes) is sampled back onto the N original points by another
matmul (the crop). For every input this equals the unpadded operator up to rounding, because
only frequencies |k| < N/2 are ever kept. A ``tanh`` pre-activation (default on for half/mixed)
bounds the FFT input; transforms are scaled by 1/sqrt(N) on the way in so no float16
intermediate exceeds ~sqrt(N) times the input.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ccs_fno.nn.contract import spectral_contract

PRECISIONS = ("full", "half", "mixed")


def validate_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return precision


def reduced_dtype(device: torch.device | str) -> torch.dtype:
    """The half dtype used on ``device``: float16 on CUDA, bfloat16 elsewhere."""
    return torch.float16 if torch.device(device).type == "cuda" else torch.bfloat16


@dataclass(frozen=True)
class SpectralDtypes:
    """Dtypes of the three stages of a spectral convolution."""

    forward_fft: torch.dtype
    contraction: torch.dtype
    inverse_fft: torch.dtype


def spectral_dtypes(
    precision: str, device: torch.device | str, input_dtype: torch.dtype = torch.float32
) -> SpectralDtypes:
    """Stage dtypes for ``precision`` on ``device`` (see the module table)."""
    validate_precision(precision)
    full = torch.float64 if input_dtype == torch.float64 else torch.float32
    if precision == "full":
        return SpectralDtypes(full, full, full)
    if torch.device(device).type != "cuda":
        return SpectralDtypes(torch.float32, torch.bfloat16, torch.float32)
    half = torch.float16
    return SpectralDtypes(torch.float32 if precision == "mixed" else half, half, half)


def fft_grid(shape: Sequence[int], dtype: torch.dtype) -> tuple[int, ...]:
    """Grid the FFT runs on: next powers of two for float16 (cuFFT's limit), else ``shape``."""
    if dtype != torch.float16:
        return tuple(shape)
    return tuple(1 << (n - 1).bit_length() for n in shape)


@functools.lru_cache(maxsize=64)
def fourier_resample_matrix(n_from: int, n_to: int) -> np.ndarray:
    """[n_to, n_from] float64 matrix: trigonometric interpolation between periodic grids.

    Keeps the frequencies |k| < min(n_from, n_to) / 2 exactly (the Nyquist one is dropped) and
    samples them on the new grid; both grids cover the same period.
    """
    n_min = min(n_from, n_to)
    k = np.arange(-((n_min - 1) // 2), (n_min - 1) // 2 + 1)  # |k| < n_min / 2
    x_from = np.arange(n_from) / n_from
    x_to = np.arange(n_to) / n_to
    basis = np.exp(2j * np.pi * np.outer(x_to, k)) @ np.exp(-2j * np.pi * np.outer(k, x_from))
    matrix = basis.real / n_from
    matrix.flags.writeable = False
    return matrix


def _resample(x: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Fourier-interpolate the trailing spatial dims of x onto ``shape`` (no-op where equal)."""
    n_dim = len(shape)
    for axis, n_to in enumerate(shape):
        dim = x.dim() - n_dim + axis
        n_from = x.shape[dim]
        if n_from != n_to:
            r = torch.tensor(fourier_resample_matrix(n_from, n_to), dtype=x.dtype, device=x.device)
            x = torch.movedim(torch.movedim(x, dim, -1) @ r.T, -1, dim)
    return x


def _gather_modes(spec: torch.Tensor, modes: Sequence[int]) -> torch.Tensor:
    """Retained block of a real-viewed half spectrum [b, c, *grid_half, 2]."""
    for axis, m in enumerate(modes[:-1]):
        dim, n = 2 + axis, spec.shape[2 + axis]
        spec = torch.cat([spec.narrow(dim, 0, m), spec.narrow(dim, n - m + 1, m - 1)], dim)
    return spec.narrow(1 + len(modes), 0, modes[-1])


def _scatter_modes(block: torch.Tensor, modes: Sequence[int], grid: Sequence[int]) -> torch.Tensor:
    """Inverse of ``_gather_modes``: zero-filled real-viewed half spectrum of ``grid``."""
    last = 1 + len(modes)
    pad = list(block.shape)
    pad[last] = grid[-1] // 2 + 1 - modes[-1]
    block = torch.cat([block, block.new_zeros(pad)], last)
    for axis, m in enumerate(modes[:-1]):
        dim = 2 + axis
        pad = list(block.shape)
        pad[dim] = grid[axis] - (2 * m - 1)
        block = torch.cat([block.narrow(dim, 0, m), block.new_zeros(pad), block.narrow(dim, m, m - 1)], dim)
    return block.contiguous()


def spectral_conv(
    x: torch.Tensor,
    weight: torch.Tensor,
    modes: Sequence[int],
    dtypes: SpectralDtypes,
    forward_grid: Sequence[int] | None = None,
    inverse_grid: Sequence[int] | None = None,
) -> torch.Tensor:
    """Functional spectral convolution; returns the inverse-FFT dtype.

    x: [b, i, *spatial]; weight: [*mode_axes, i, o, 2] (module docstring). ``forward_grid`` and
    ``inverse_grid`` are the grids the transforms run on (default: ``fft_grid`` of each stage's
    dtype); a grid larger than ``spatial`` means Fourier padding, which does not change the result.
    """
    spatial = tuple(x.shape[2:])
    dims = tuple(range(2, x.dim()))
    forward_grid = tuple(forward_grid or fft_grid(spatial, dtypes.forward_fft))
    inverse_grid = tuple(inverse_grid or fft_grid(spatial, dtypes.inverse_fft))
    n_points = math.prod(spatial)

    h = _resample(x.to(dtypes.forward_fft), forward_grid)
    # Scaling by sqrt(N)/N' makes the spectrum DFT_N(x)/sqrt(N) on any grid and keeps float16
    # FFT intermediates near sqrt(N)*|x| instead of N*|x|.
    h = h * (math.sqrt(n_points) / math.prod(forward_grid))
    spec = torch.view_as_real(_RealFFT.apply(h, dims))
    block = spectral_contract(_gather_modes(spec, modes).to(dtypes.contraction), weight)
    spec_out = _scatter_modes(block.to(dtypes.inverse_fft), modes, inverse_grid)
    y = torch.fft.irfftn(torch.view_as_complex(spec_out), s=inverse_grid, dim=dims, norm="forward")
    return _resample(y, spatial) * (1.0 / math.sqrt(n_points))


class _RealFFT(torch.autograd.Function):
    """Unnormalised rfftn over ``dims`` that saves nothing for backward (torch's saves its
    activation-sized input, in float32 even on the reduced-precision CPU path)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
        ctx.dims, ctx.last_size = dims, x.shape[dims[-1]]
        return torch.fft.rfftn(x, dim=dims)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        # Adjoint of (keep half spectrum) o DFT: zero-fill the dropped bins, apply conj(DFT).
        grad = torch.view_as_real(grad)
        pad = list(grad.shape)
        pad[ctx.dims[-1]] = ctx.last_size - pad[ctx.dims[-1]]
        full = torch.view_as_complex(torch.cat([grad, grad.new_zeros(pad)], ctx.dims[-1]))
        with torch.autocast(device_type=grad.device.type, enabled=False):
            return torch.fft.ifftn(full, dim=ctx.dims, norm="forward").real, None


class _TanhSavingInput(torch.autograd.Function):
    """tanh that saves its input (which the Fourier layer's skip path saves anyway) rather than a
    second activation-sized output; backward recomputes tanh."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return torch.tanh(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        t = torch.tanh(x)
        return grad * (1 - t * t)


def validate_grid(modes: Sequence[int], spatial: Sequence[int]) -> None:
    """Raise ValueError unless every dim has at least 2*modes - 1 points."""
    needed = tuple(2 * m - 1 for m in modes)
    if any(n < k for n, k in zip(spatial, needed, strict=True)):
        raise ValueError(
            f"modes {tuple(modes)} need a grid of at least {needed} points (2*modes - 1 per dim); "
            f"got spatial shape {tuple(spatial)}"
        )


class SpectralConv(nn.Module):
    """Fourier-space channel mixing on the lowest ``modes`` frequencies of an n-D field.

    Input [b, in_channels, *spatial] with n = len(modes) in {2, 3} spatial dims; output
    [b, out_channels, *spatial] in the input's dtype. ``modes[d]`` counts frequencies
    |k| < modes[d] (independent of resolution). ``tanh_preactivation`` None means on for
    half/mixed, off for full; it is fixed at construction, so switching precision later (e.g. a
    half-then-full schedule) does not change the function computed.
    """

    _version = 2  # weight layout [*mode_axes, in, out, 2]; version 1 was [in, out, *mode_axes, 2]

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        modes: Sequence[int],
        precision: str = "full",
        tanh_preactivation: bool | None = None,
    ) -> None:
        super().__init__()
        modes = tuple(int(m) for m in modes)
        if len(modes) not in (2, 3) or min(modes) < 1:
            raise ValueError(f"modes must be 2 or 3 positive ints (one per dim), got {modes}")
        if in_channels < 1 or out_channels < 1:
            raise ValueError(f"channels must be >= 1, got in={in_channels}, out={out_channels}")
        self.in_channels, self.out_channels, self.modes = in_channels, out_channels, modes
        self.precision = validate_precision(precision)
        self.tanh_preactivation = (
            precision != "full" if tanh_preactivation is None else bool(tanh_preactivation)
        )
        # Complex variance 1/in_channels per weight keeps the layer's output variance at O(1).
        std = (2.0 * in_channels) ** -0.5
        self.weight = nn.Parameter(std * torch.randn(*self.weight_shape))

    @property
    def weight_shape(self) -> tuple[int, ...]:
        """``[*mode_axes, in, out, 2]`` (module docstring)."""
        mode_axes = [2 * m - 1 for m in self.modes[:-1]] + [self.modes[-1]]
        return (*mode_axes, self.in_channels, self.out_channels, 2)

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        # Refuse weights in the version-1 layout [in, out, *mode_axes, 2]: same numbers, other
        # axes, and for some sizes even the same shape, so a plain load could silently permute.
        version = local_metadata.get("version")
        weight = state_dict.get(prefix + "weight")
        old_shape = (self.in_channels, self.out_channels, *self.weight_shape[:-3], 2)
        old_layout = (version is not None and version < 2) or (
            weight is not None and tuple(weight.shape) == old_shape != self.weight_shape
        )
        if weight is not None and old_layout:
            error_msgs.append(
                f"{prefix}weight was saved in SpectralConv's old layout [in, out, *modes, 2] "
                f"(layout version {version}); this version stores [*modes, in, out, 2] "
                f"{list(self.weight_shape)} and does not convert old checkpoints: retrain the model"
            )
            return
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    @property
    def n_dim(self) -> int:
        return len(self.modes)

    def set_precision(self, precision: str) -> None:
        self.precision = validate_precision(precision)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, modes={self.modes}, "
            f"precision={self.precision!r}, tanh_preactivation={self.tanh_preactivation}"
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != self.n_dim + 2:
            raise ValueError(
                f"expected input [batch, channels, *{self.n_dim} spatial dims] "
                f"(rank {self.n_dim + 2}), got shape {tuple(x.shape)}"
            )
        if x.shape[1] != self.in_channels:
            raise ValueError(f"expected {self.in_channels} input channels, got {x.shape[1]}")
        validate_grid(self.modes, x.shape[2:])
        dtypes = spectral_dtypes(self.precision, x.device, x.dtype)
        # Autocast would recast FFT inputs and the einsum behind our back: dtypes are explicit.
        with torch.autocast(device_type=x.device.type, enabled=False):
            h = _TanhSavingInput.apply(x) if self.tanh_preactivation else x
            y = spectral_conv(h, self.weight, self.modes, dtypes)
        return y.to(x.dtype)
