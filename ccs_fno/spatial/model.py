"""The spatially sharded Fourier layer and FNO: the serial operator, with the grid split in z.

``SpatialSpectralConv`` is ``SpectralConv`` (same constructor, same precision semantics, same
operator) running on a z slab of the grid with the distributed FFT of ``ccs_fno.spatial.fft``;
its ``weight`` is only this rank's block ``[..., modes_split[r], in, out, 2]`` of the serial
``[2m_0 - 1, (2m_1 - 1), m_last, in, out, 2]`` along the last mode axis (the axis that is split
after the transpose). Weights are never broadcast: each rank holds and updates its block.

``SpatialFNO`` is ``FNO`` (same config, same ``forward`` -- one definition of the operator) with
its Fourier layers replaced by sharded ones, the coordinate channels of the global grid (offset
per slab) and batch norm statistics summed over the ``data`` and ``spatial`` groups. Lifting,
skips and projection are 1x1 convolutions and act on each slab locally.

Sharded parameters are recorded per module in ``_ccs_shards`` ({parameter name: ShardSpec}),
which the generic helpers read: ``full_state_dict`` (all ranks call it; serial-compatible
result), ``load_state_dict`` of a serial state dict (each rank slices its block),
``reduce_replicated_grads`` (see below).

Training (each rank of a spatial group holds the same samples, different slabs):

* the loss on each rank must be such that its gradient w.r.t. the rank's output slab is the
  gradient of the replica's global loss restricted to that slab. Either (a) the rank's part of
  a global sum -- e.g. MSE: ``((y - t)**2).sum() / (B * C * N_global)`` with ``N_global`` the
  number of cells of the WHOLE grid, the replica loss being the ``spatial_sum`` of these -- or
  (b) a replicated loss computed from global sums via ``spatial_sum`` (identity backward), e.g.
  relative L2: ``sqrt(spatial_sum(((y - t)**2).flatten(1).sum(1)) / spatial_sum((t**2)...))``;
* after ``backward``, ``reduce_replicated_grads(model)`` sums the gradients of the replicated
  (unsharded) parameters over the spatial group; sharded blocks already have their full gradient;
* data parallelism over the ``data`` group (DDP) averages as usual; both reductions are linear,
  so their order (and GradScaler's unscale) does not matter.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ccs_fno.distributed import ProcessContext, get_context, shard_range
from ccs_fno.nn.contract import spectral_contract
from ccs_fno.nn.fno import FNO
from ccs_fno.nn.norm import BatchNorm
from ccs_fno.nn.spectral import (
    SpectralConv,
    SpectralDtypes,
    _TanhSavingInput,
    fft_grid,
    spectral_dtypes,
    validate_grid,
)
from ccs_fno.spatial.fft import dist_irfft_modes, dist_rfft_modes, wire_dtype
from ccs_fno.spatial.partition import GROUP, check_split, gather_ints, split_sizes


@dataclass(frozen=True)
class ShardSpec:
    """A parameter split along tensor dim ``dim`` over process group ``group`` (shard_range parts
    of ``full_size``)."""

    dim: int
    group: str
    full_size: int

    def block(self, context: ProcessContext) -> tuple[int, int]:
        """[start, stop) of this rank's block along ``dim``."""
        return shard_range(self.full_size, context.size(self.group), context.group_rank(self.group))


def slab_layout(
    x: torch.Tensor, context: ProcessContext | None = None, channels: int | None = None
) -> tuple[int, ...]:
    """z planes per rank of the sharded ``x`` [B, C, n_0 local, n_1, (n_2)], checked on every rank.

    One all-gather of every rank's shape; every rank then raises the same ValueError when the
    shapes do not form one grid (rank, batch, channels or unsharded dims differ, a rank has no
    plane, ``channels`` given and differs), so a bad input on one rank fails all, without a hang.
    """
    context = context or get_context()
    dims = list(x.shape)[:5] + [0] * (5 - min(x.dim(), 5))
    shapes = gather_ints([x.dim(), *dims], context)
    ranks, rest = shapes[:, 0].tolist(), [tuple(s) for s in shapes[:, 1:].tolist()]
    ndim = ranks[0]
    seen = [tuple(s[: r if r < 5 else 5]) for s, r in zip(rest, ranks, strict=True)]
    consistent = all(r == ndim for r in ranks) and ndim in (4, 5)
    consistent = consistent and all(s[:2] == seen[0][:2] and s[3:] == seen[0][3:] for s in seen)
    if not consistent or (channels is not None and seen[0][1] != channels):
        expected = f"[batch, {channels if channels is not None else 'C'}, z slab, *unsharded dims]"
        raise ValueError(
            f"the spatial shards do not form one grid: shapes per spatial rank {seen}; allowed: "
            f"{expected} with the same batch, channels and unsharded dims on every rank (2 or 3 "
            "spatial dims); shard the full input with ccs_fno.spatial.shard_input"
        )
    cells = tuple(s[2] for s in seen)
    if min(cells) < 1:
        raise ValueError(
            f"z planes per spatial rank {cells}: every rank needs at least 1 (allowed: a spatial "
            f"parallel size <= {sum(cells)} for this grid); use fewer spatial ranks or a larger grid"
        )
    return cells


def dist_spectral_conv(
    x: torch.Tensor,
    weight: torch.Tensor,
    modes: Sequence[int],
    dtypes: SpectralDtypes,
    cells: Sequence[int],
    mode_split: Sequence[int],
    context: ProcessContext,
    wire: torch.dtype | None = None,
    forward_grid: Sequence[int] | None = None,
    inverse_grid: Sequence[int] | None = None,
) -> torch.Tensor:
    """``ccs_fno.nn.spectral.spectral_conv`` on this rank's z slab; returns the inverse-FFT dtype.

    x: [b, i, cells[r], *unsharded]; weight: this rank's block [*mode_axes[:-1], mode_split[r],
    i, o, 2]; returns [b, o, cells[r], *unsharded]. Same scaling (DFT/sqrt(N) in, sqrt(N)/N'
    out), mode set and Fourier padding as the serial function: ``forward_grid``/``inverse_grid``
    are the global grids of the transforms (default ``fft_grid`` of each stage's dtype, i.e.
    powers of two for float16); a larger grid does not change the result.
    """
    shape = (sum(cells), *x.shape[3:])
    n_points = math.prod(shape)
    forward_grid = tuple(forward_grid or fft_grid(shape, dtypes.forward_fft))
    inverse_grid = tuple(inverse_grid or fft_grid(shape, dtypes.inverse_fft))
    h = x.to(dtypes.forward_fft) * (math.sqrt(n_points) / math.prod(forward_grid))
    block = dist_rfft_modes(h, modes, cells, mode_split, context, wire, forward_grid)
    block = spectral_contract(block.to(dtypes.contraction), weight)
    y = dist_irfft_modes(
        block.to(dtypes.inverse_fft), modes, shape, cells, mode_split, context, wire, inverse_grid
    )
    return y * (1.0 / math.sqrt(n_points))


class SpatialSpectralConv(SpectralConv):
    """``SpectralConv`` on z slabs over the ``spatial`` group (module docstring).

    Input [b, in, cells[r], n_1, (n_2)], output [b, out, cells[r], ...] in the input's dtype.
    Built like ``SpectralConv`` (the full weight is drawn with the same random numbers and this
    rank's block kept, so equal seeds give the serial model's weights). Raises ValueError on
    every rank when ``modes[-1]`` is smaller than the spatial group (each rank needs a mode).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        modes: Sequence[int],
        precision: str = "full",
        tanh_preactivation: bool | None = None,
    ) -> None:
        super().__init__(in_channels, out_channels, modes, precision, tanh_preactivation)
        context = get_context()
        self.parts = context.size(GROUP)
        check_split(
            self.modes[-1],
            self.parts,
            f"the retained modes of the last dim (modes[-1] of modes {self.modes})",
            "use fewer spatial ranks or more modes along the last dim",
        )
        self._ccs_shards = {"weight": ShardSpec(dim=self.n_dim - 1, group=GROUP, full_size=self.modes[-1])}
        self.mode_split = split_sizes(self.modes[-1], self.parts)
        self._take_block(self.weight)
        self.cells: tuple[int, ...] | None = None  # set by SpatialFNO for one forward (saves a gather)

    @classmethod
    def from_serial(cls, layer: SpectralConv) -> SpatialSpectralConv:
        """The sharded copy of ``layer`` (its weight's block; the global RNG is left untouched)."""
        with torch.random.fork_rng(devices=[]):
            sharded = cls(
                layer.in_channels, layer.out_channels, layer.modes, layer.precision, layer.tanh_preactivation
            )
        sharded._take_block(layer.weight)
        return sharded.to(device=layer.weight.device, dtype=layer.weight.dtype)

    def _take_block(self, full: torch.Tensor) -> None:
        start, stop = self._ccs_shards["weight"].block(get_context())
        self.weight = nn.Parameter(full.detach().narrow(self.n_dim - 1, start, stop - start).clone())

    @property
    def local_weight_shape(self) -> tuple[int, ...]:
        """This rank's block of ``weight_shape`` (the serial one)."""
        shape = list(self.weight_shape)
        shape[self.n_dim - 1] = self.mode_split[get_context().group_rank(GROUP)]
        return tuple(shape)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", spatial ranks={self.parts}, mode split={self.mode_split}"

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
        key = prefix + "weight"
        weight = state_dict.get(key)
        if weight is not None and tuple(weight.shape) != self.local_weight_shape:
            if tuple(weight.shape) == self.weight_shape:  # serial layout: keep this rank's block
                start, stop = self._ccs_shards["weight"].block(get_context())
                state_dict[key] = weight.narrow(self.n_dim - 1, start, stop - start)
            elif len(weight.shape) == len(self.weight_shape):
                axes = weight.shape[: self.n_dim]
                seen = tuple((a + 1) // 2 for a in axes[:-1]) + (axes[-1],)
                error_msgs.append(
                    f"{key}: the checkpoint's spectral weight has shape {list(weight.shape)} "
                    f"(modes {seen}, channels {weight.shape[-3]}->{weight.shape[-2]}); this model "
                    f"has modes {self.modes}, channels {self.in_channels}->{self.out_channels} and "
                    f"reads the serial shape {list(self.weight_shape)} (or this rank's block "
                    f"{list(self.local_weight_shape)}); build the model from the checkpoint's config "
                    "(FNO(**config), then SpatialFNO.from_fno) instead"
                )
                return
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        context = get_context()
        if context.size(GROUP) != self.parts:
            raise ValueError(
                f"this layer was built for {self.parts} spatial ranks but the process context has "
                f"{context.size(GROUP)}; build the model after init_context(spatial_size=...)"
            )
        cells = self.cells or slab_layout(x, context, self.in_channels)
        shape = (sum(cells), *x.shape[3:])
        validate_grid(self.modes, shape)
        dtypes = spectral_dtypes(self.precision, x.device, x.dtype)
        with torch.autocast(device_type=x.device.type, enabled=False):
            h = _TanhSavingInput.apply(x) if self.tanh_preactivation else x
            y = dist_spectral_conv(
                h,
                self.weight,
                self.modes,
                dtypes,
                cells,
                self.mode_split,
                context,
                wire_dtype(self.precision, dtypes),
            )
        return y.to(x.dtype)


class SpatialFNO(FNO):
    """``FNO`` with the grid split in z over the ``spatial`` group (module docstring).

    Same constructor as ``FNO`` (``config`` rebuilds the serial model); input and output are this
    rank's slabs ([B, C, cells[r], ...], e.g. from ``shard_input``). ``load_state_dict`` accepts
    a serial state dict; ``full_state_dict()`` returns one (a collective: call it on every rank).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spectral = nn.ModuleList(SpatialSpectralConv.from_serial(layer) for layer in self.spectral)
        for norm in self.norms:
            if isinstance(norm, BatchNorm):
                norm.groups = ("data", GROUP)
        self._cells: tuple[int, ...] | None = None

    @classmethod
    def from_fno(cls, fno: FNO, context: ProcessContext | None = None) -> SpatialFNO:
        """The sharded copy of ``fno`` (same config, weights, dtype, device and train/eval mode).

        ``context`` must be the process's context (``get_context()``, the default) after
        ``init_context(spatial_size=...)``.
        """
        if context is not None and context is not get_context():
            raise ValueError(
                "SpatialFNO.from_fno needs the process context (ccs_fno.distributed.get_context())"
            )
        reference = next(fno.parameters())
        model = cls(**fno.config).to(device=reference.device, dtype=reference.dtype)
        model.load_state_dict(fno.state_dict())
        return model.train(fno.training)

    def grid(self, x: torch.Tensor) -> torch.Tensor:
        """Cell-centre coordinates of this rank's slab of the GLOBAL grid, [B, n_dim, *local]."""
        context = get_context()
        cells = self._cells or slab_layout(x, context)
        start = sum(cells[: context.group_rank(GROUP)])
        n0 = sum(cells)
        z = (torch.arange(start, start + x.shape[2], device=x.device, dtype=x.dtype) + 0.5) / n0
        axes = [z] + [(torch.arange(n, device=x.device, dtype=x.dtype) + 0.5) / n for n in x.shape[3:]]
        coords = torch.stack(torch.meshgrid(*axes, indexing="ij"))
        return coords.unsqueeze(0).expand(x.shape[0], *coords.shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cells = slab_layout(x, get_context(), self.in_channels)  # one check for every layer
        self._cells = cells
        for layer in self.spectral:
            layer.cells = cells
        try:
            return super().forward(x)
        finally:
            self._cells = None
            for layer in self.spectral:
                layer.cells = None

    def full_state_dict(self) -> dict[str, torch.Tensor]:
        """The serial FNO's state dict (collective over the spatial group); see ``full_state_dict``."""
        return full_state_dict(self)

    def reduce_replicated_grads(self) -> None:
        """Sum the replicated parameters' gradients over the spatial group (after backward)."""
        reduce_replicated_grads(self)


def _shards(model: nn.Module) -> dict[str, ShardSpec]:
    """{state-dict key: ShardSpec} of every sharded parameter of ``model``."""
    found = {}
    for name, module in model.named_modules():
        for param, spec in getattr(module, "_ccs_shards", {}).items():
            found[f"{name}.{param}" if name else param] = spec
    return found


def gather_shard(block: torch.Tensor, spec: ShardSpec, context: ProcessContext | None = None) -> torch.Tensor:
    """The full tensor from every rank's ``block`` (collective; exact: blocks are summed into
    zeros, one all-reduce)."""
    context = context or get_context()
    if context.size(spec.group) == 1:
        return block.detach().clone()
    shape = list(block.shape)
    shape[spec.dim] = spec.full_size
    full = block.new_zeros(shape)
    start, stop = spec.block(context)
    full.narrow(spec.dim, start, stop - start).copy_(block.detach())
    return context.all_reduce_sum(full, spec.group)


def full_state_dict(model: nn.Module, context: ProcessContext | None = None) -> dict[str, torch.Tensor]:
    """``model.state_dict()`` with every sharded parameter gathered: loads into the serial model
    (``FNO(**config).load_state_dict``). Collective: every rank of the spatial group calls it."""
    state = model.state_dict()
    for key, spec in _shards(model).items():
        state[key] = gather_shard(state[key], spec, context)
    return state


def full_grads(model: nn.Module, context: ProcessContext | None = None) -> dict[str, torch.Tensor]:
    """{parameter name: gradient}, sharded ones gathered to the serial shape (collective; tests,
    diagnostics). Replicated gradients are returned as they are (reduce them first)."""
    shards = _shards(model)
    grads = {}
    for name, param in model.named_parameters():
        if param.grad is not None:
            spec = shards.get(name)
            grads[name] = param.grad.clone() if spec is None else gather_shard(param.grad, spec, context)
    return grads


def reduce_replicated_grads(model: nn.Module, context: ProcessContext | None = None) -> None:
    """Sum the gradients of the unsharded parameters over the spatial group, in one all-reduce.

    Each rank's replicated parameters (lifting, skips, norms, projection) only saw its slab, so
    the global gradient is the sum over slabs; sharded blocks already have theirs. No-op serially.
    """
    context = context or get_context()
    if context.size(GROUP) == 1:
        return
    shards = _shards(model)
    grads = [p.grad for name, p in model.named_parameters() if name not in shards and p.grad is not None]
    if not grads:
        return
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for grad in grads:
        by_dtype.setdefault(grad.dtype, []).append(grad)
    for same in by_dtype.values():
        flat = context.all_reduce_sum(torch.cat([g.reshape(-1) for g in same]), GROUP)
        for grad, part in zip(same, torch.split(flat, [g.numel() for g in same]), strict=True):
            grad.copy_(part.view_as(grad))
