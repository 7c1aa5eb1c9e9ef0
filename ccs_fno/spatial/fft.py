"""Distributed real FFT restricted to the retained modes, and its inverse (slab decomposition).

The input ``[B, C, n_0, n_1, (n_2)]`` is split along n_0 (z) over the P ranks of the ``spatial``
group (``cells[r]`` planes on rank r). Forward, per rank:

1. real FFT along the last dim (local), keep k_last < m_last;
2. (3-D) FFT along n_1 (local), keep |k_1| < m_1 in FFT order;
3. transpose (``all_to_all``, a custom autograd function around ``dist.all_to_all_single``): send
   rank s the block ``modes[s]`` of the m_last retained last-dim modes, receive every rank's planes
   of this rank's block -- afterwards n_0 is whole and the last mode axis is split;
4. FFT along n_0 (now local), keep |k_0| < m_0.

Result: ``[B, C, 2m_0 - 1, (2m_1 - 1), modes[r], 2]`` (real view), this rank's block of the
retained spectrum of the serial ``rfftn``, in FFT order. The inverse runs the steps backwards
(zero-fill + inverse FFT along n_0, transpose back, zero-fill + inverse FFT along n_1, c2r along
the last dim). Only retained modes cross the network, ``2·m_last·prod(2m_d - 1 for middle d)``
numbers per (sample, channel, z plane) instead of the full half spectrum's ``n_1·(n_last/2 + 1)``.

Bytes per Fourier layer and training step (``transpose_bytes``): in the forward pass rank r sends
``cells[r]·(m_last - modes[r])·K_mid·2·B·C·e`` bytes to other ranks (its own block stays),
the inverse sends ``(n_0 - cells[r])·modes[r]·K_mid·2·B·C·e``; backward sends the same again in
the other direction. ``e`` is the element size of the wire dtype (``wire_dtype``):

==================  ================================  ========================================
precision, device   FFTs                              wire (what ``all_to_all_single`` moves)
==================  ================================  ========================================
full                float32 / float64                 float32 / float64
half, CUDA          float16                           float16
mixed, CUDA         forward float32, inverse float16  float16 (forward spectra are rounded to
                                                      float16 before the n_0 FFT instead of after)
half/mixed, CPU     float32                           bfloat16 (cast back to float32 for the FFTs;
                                                      the contraction rounds to bfloat16 anyway)
==================  ================================  ========================================

so ``half``/``mixed`` halve the bytes. Spectra travel as real views (``view_as_real``) in the
wire dtype; gloo's ``all_to_all_single`` accepts float16, bfloat16, float32 and float64 (checked
on torch 2.13), NCCL all of them, so no dtype is widened for transport.

Float16 FFTs on CUDA run on power-of-two grids (``ccs_fno.nn.spectral.fft_grid``): the unsharded
dims are Fourier-interpolated locally before the first FFT as in the serial layer; n_0 is
interpolated after the transpose (where it is whole) -- interpolation along one dim commutes with
the FFTs along the others, so the operator is the serial one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ccs_fno.distributed import ProcessContext
from ccs_fno.nn.spectral import SpectralDtypes, _RealFFT, fourier_resample_matrix
from ccs_fno.spatial.partition import GROUP


@dataclass
class CommCounter:
    """Bytes this process sent to OTHER ranks through ``all_to_all`` (its own block excluded)."""

    forward_bytes: int = 0
    backward_bytes: int = 0
    calls: int = 0

    def reset(self) -> None:
        self.forward_bytes = self.backward_bytes = self.calls = 0


COMM = CommCounter()


def comm_counter() -> CommCounter:
    """The process-wide counter of transpose traffic (``COMM``); ``reset()`` it between measurements."""
    return COMM


def _all_to_all(
    x: torch.Tensor,
    split_dim: int,
    split_sizes: Sequence[int],
    cat_dim: int,
    cat_sizes: Sequence[int],
    context: ProcessContext,
) -> tuple[torch.Tensor, int]:
    """Send chunk s of ``x`` (along ``split_dim``) to rank s, concatenate the received chunks along
    ``cat_dim`` (rank s's has ``cat_sizes[s]`` there). Returns the result and off-rank bytes sent."""
    me = context.group_rank(GROUP)
    x = x.contiguous()
    chunks = torch.split(x, list(split_sizes), dim=split_dim)
    send = torch.cat([c.reshape(-1) for c in chunks])
    shape = list(x.shape)
    shape[split_dim] = split_sizes[me]
    recv_shapes = []
    for size in cat_sizes:
        shape[cat_dim] = size
        recv_shapes.append(tuple(shape))
    recv_counts = [math.prod(s) for s in recv_shapes]
    recv = send.new_empty(sum(recv_counts))
    send_counts = [c.numel() for c in chunks]
    dist.all_to_all_single(recv, send, recv_counts, send_counts, group=context.group(GROUP))
    parts = [p.view(s) for p, s in zip(torch.split(recv, recv_counts), recv_shapes, strict=True)]
    sent = (sum(send_counts) - send_counts[me]) * x.element_size()
    return torch.cat(parts, cat_dim), sent


class _Transpose(torch.autograd.Function):
    """Differentiable ``_all_to_all``; backward is the reverse transpose of the gradient."""

    @staticmethod
    def forward(ctx, x, split_dim, split_sizes, cat_dim, cat_sizes, context):  # noqa: ANN001
        ctx.args = (cat_dim, cat_sizes, split_dim, split_sizes, context)
        y, sent = _all_to_all(x, split_dim, split_sizes, cat_dim, cat_sizes, context)
        COMM.forward_bytes += sent
        COMM.calls += 1
        return y

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001
        y, sent = _all_to_all(grad, *ctx.args)
        COMM.backward_bytes += sent
        return y, None, None, None, None, None


def transpose(
    x: torch.Tensor,
    split_dim: int,
    split_sizes: Sequence[int],
    cat_dim: int,
    cat_sizes: Sequence[int],
    context: ProcessContext,
) -> torch.Tensor:
    """Differentiable all-to-all: ``x``'s ``split_dim`` is split into ``split_sizes`` (chunk s to
    rank s), the received chunks are concatenated along ``cat_dim`` (rank s sends ``cat_sizes[s]``).
    ``x.shape[cat_dim]`` must be ``cat_sizes[this rank]``. Identity for a group of one."""
    if context.size(GROUP) == 1:
        return x
    return _Transpose.apply(x, split_dim, tuple(split_sizes), cat_dim, tuple(cat_sizes), context)


def wire_dtype(precision: str, dtypes: SpectralDtypes) -> torch.dtype:
    """The dtype spectra are transposed in (module table): the contraction's unless ``full``."""
    return dtypes.forward_fft if precision == "full" else dtypes.contraction


def _wired(
    spec: torch.Tensor,
    wire: torch.dtype | None,
    context: ProcessContext,
    send: Callable[[torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """``send(spec)`` in the ``wire`` dtype, back in spec's dtype; no cast when nothing is sent
    (a group of one), so one process computes exactly the serial layer."""
    if context.size(GROUP) == 1:
        return spec
    return send(spec.to(wire or spec.dtype)).to(spec.dtype)


def _as_complex(t: torch.Tensor) -> torch.Tensor:
    return torch.view_as_complex(t.contiguous())


def _keep(spec: torch.Tensor, dim: int, m: int) -> torch.Tensor:
    """Keep |k| < m along ``dim`` of a real-viewed full spectrum, FFT order (0..m-1, -(m-1)..-1)."""
    n = spec.shape[dim]
    return torch.cat([spec.narrow(dim, 0, m), spec.narrow(dim, n - m + 1, m - 1)], dim)


def _fill(spec: torch.Tensor, dim: int, m: int, n: int) -> torch.Tensor:
    """Inverse of ``_keep``: zero-filled real-viewed spectrum of ``n`` frequencies along ``dim``."""
    pad = list(spec.shape)
    pad[dim] = n - (2 * m - 1)
    return torch.cat([spec.narrow(dim, 0, m), spec.new_zeros(pad), spec.narrow(dim, m, m - 1)], dim)


def _resample_dim(x: torch.Tensor, dim: int, n_to: int) -> torch.Tensor:
    """Fourier-interpolate real ``x`` along ``dim`` onto ``n_to`` points (no-op when equal)."""
    n_from = x.shape[dim]
    if n_from == n_to:
        return x
    r = torch.tensor(fourier_resample_matrix(n_from, n_to), dtype=x.dtype, device=x.device)
    return torch.movedim(torch.movedim(x, dim, -1) @ r.T, -1, dim)


def dist_rfft_modes(
    x: torch.Tensor,
    modes: Sequence[int],
    cells: Sequence[int],
    mode_split: Sequence[int],
    context: ProcessContext,
    wire: torch.dtype | None = None,
    grid: Sequence[int] | None = None,
) -> torch.Tensor:
    """This rank's block of the retained modes of ``rfftn(x_global)`` (unnormalised).

    x: [B, C, cells[r], n_1, (n_2)] real, this rank's z slab (``cells``: planes per rank);
    ``mode_split``: retained last-dim modes per rank (sums to ``modes[-1]``). Returns the real view
    [B, C, 2m_0 - 1, (2m_1 - 1), mode_split[r], 2] in x's dtype. ``wire``: transpose dtype
    (default x's). ``grid``: the global FFT grid (default the global shape); a larger one
    Fourier-interpolates first (float16 cuFFT), which multiplies the result by grid/shape per dim.
    """
    nd = x.dim() - 2
    shape = (sum(cells), *x.shape[3:])
    grid = tuple(grid or shape)
    for axis in range(1, nd):
        x = _resample_dim(x, 2 + axis, grid[axis])
    spec = torch.view_as_real(_RealFFT.apply(x, (x.dim() - 1,))).narrow(-2, 0, modes[-1])
    for axis in range(1, nd - 1):
        d = 2 + axis
        spec = _keep(torch.view_as_real(torch.fft.fft(_as_complex(spec), dim=d)), d, modes[axis])
    spec = _wired(spec, wire, context, lambda t: transpose(t, 1 + nd, mode_split, 2, cells, context))
    spec = _resample_dim(spec, 2, grid[0])
    return _keep(torch.view_as_real(torch.fft.fft(_as_complex(spec), dim=2)), 2, modes[0])


def dist_irfft_modes(
    block: torch.Tensor,
    modes: Sequence[int],
    shape: Sequence[int],
    cells: Sequence[int],
    mode_split: Sequence[int],
    context: ProcessContext,
    wire: torch.dtype | None = None,
    grid: Sequence[int] | None = None,
) -> torch.Tensor:
    """Inverse of ``dist_rfft_modes``: ``irfftn(zero-filled spectrum, norm="forward")``, sliced.

    block: [B, C, 2m_0 - 1, (2m_1 - 1), mode_split[r], 2] real view; ``shape``: the global spatial
    shape. Returns this rank's slab [B, C, cells[r], n_1, (n_2)] in block's dtype. ``grid``: the
    global grid of the inverse transform (default ``shape``; larger = Fourier padding, then crop).
    """
    nd = len(shape)
    grid = tuple(grid or shape)
    spec = _fill(block, 2, modes[0], grid[0])
    spec = torch.view_as_real(torch.fft.ifft(_as_complex(spec), dim=2, norm="forward"))
    spec = _resample_dim(spec, 2, shape[0])
    spec = _wired(spec, wire, context, lambda t: transpose(t, 2, cells, 1 + nd, mode_split, context))
    for axis in range(1, nd - 1):
        d = 2 + axis
        spec = _fill(spec, d, modes[axis], grid[axis])
        spec = torch.view_as_real(torch.fft.ifft(_as_complex(spec), dim=d, norm="forward"))
    pad = list(spec.shape)
    pad[-2] = grid[-1] // 2 + 1 - modes[-1]
    spec = torch.cat([spec, spec.new_zeros(pad)], -2)
    y = torch.fft.irfft(_as_complex(spec), n=grid[-1], dim=-1, norm="forward")
    for axis in range(1, nd):
        y = _resample_dim(y, 2 + axis, shape[axis])
    return y


def transpose_bytes(
    batch: int,
    channels: int,
    modes: Sequence[int],
    cells: Sequence[int],
    mode_split: Sequence[int],
    rank: int,
    element_size: int,
) -> dict[str, int]:
    """Analytic off-rank bytes that rank ``rank`` sends per Fourier layer in the forward pass.

    ``forward``: the transpose after the local FFTs, ``inverse``: the one before the local inverse
    FFTs (module docstring); the backward pass sends ``inverse`` for the forward transpose and
    ``forward`` for the inverse one. ``element_size``: bytes per real number on the wire.
    """
    k_mid = math.prod(2 * m - 1 for m in modes[1:-1])
    unit = batch * channels * k_mid * 2 * element_size
    return {
        "forward": unit * cells[rank] * (modes[-1] - mode_split[rank]),
        "inverse": unit * (sum(cells) - cells[rank]) * mode_split[rank],
    }


def full_spectrum_bytes(
    batch: int, channels: int, shape: Sequence[int], parts: int, element_size: int
) -> int:
    """Total off-rank bytes (all ranks) of ONE transpose of the full half spectrum (dfno scheme):
    ``(P-1)/P`` of ``n_0·n_1·...·(n_last/2 + 1)`` complex numbers per sample and channel."""
    numbers = math.prod(shape[:-1]) * (shape[-1] // 2 + 1) * 2 * batch * channels
    return numbers * element_size * (parts - 1) // parts
