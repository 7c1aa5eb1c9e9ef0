"""Slabs of a grid over the ``spatial`` process group: split, gather, sum, and their gradients.

A tensor ``[B, C, n_0, n_1, ...]`` is partitioned along one spatial dim (``dim``, counted among
the spatial dims; the FNO uses 0, i.e. z) into near-equal slabs, rank ``r`` of the spatial group
holding cells ``shard_range(n_0, P, r)`` (``ccs_fno.distributed``): the first ``n_0 % P`` ranks
hold one cell more, so uneven splits (15 cells over 4 ranks: 4, 4, 4, 3) work. A serial context
(P = 1) makes every function here the identity.

Gradient conventions (what each autograd function assumes about the code around it):

* ``shard_input`` (replicated full tensor -> local slab): backward all-gathers the slab
  gradients, so every rank gets the gradient of the full input (the input is replicated).
* ``gather_output`` (local slab -> replicated full tensor): backward keeps the rank's own slab of
  the gradient, which is right when what follows is computed identically on every rank.
* ``spatial_sum`` (sum over the group, result replicated): backward passes the gradient through
  unchanged, again for a replicated downstream (e.g. a loss computed from global sums).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist

from ccs_fno.distributed import ProcessContext, get_context, shard_range

GROUP = "spatial"


def split_sizes(n: int, parts: int) -> tuple[int, ...]:
    """Cells (or modes) per part when ``n`` are split into ``parts`` near-equal parts."""
    return tuple(b - a for a, b in (shard_range(n, parts, i) for i in range(parts)))


def check_split(n: int, parts: int, what: str, remedy: str) -> None:
    """Raise ValueError (same text on every rank) unless each of ``parts`` ranks gets >= 1 of ``n``."""
    if n < parts:
        raise ValueError(
            f"cannot split {what} of size {n} over a spatial group of {parts} ranks: every rank "
            f"needs at least 1 (allowed: a spatial parallel size <= {n}); {remedy}"
        )


def _gather_dim(x: torch.Tensor, dim: int, sizes: Sequence[int], context: ProcessContext) -> torch.Tensor:
    """Concatenate every rank's ``x`` along ``dim`` (rank s contributes ``sizes[s]``), uneven allowed."""
    if context.size(GROUP) == 1:
        return x
    largest = max(sizes)
    pad = list(x.shape)
    pad[dim] = largest - x.shape[dim]
    padded = torch.cat([x, x.new_zeros(pad)], dim).contiguous() if pad[dim] else x.contiguous()
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded, group=context.group(GROUP))
    return torch.cat([p.narrow(dim, 0, s) for p, s in zip(parts, sizes, strict=True)], dim)


class _Shard(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, dim: int, context: ProcessContext) -> torch.Tensor:
        parts, index = context.size(GROUP), context.group_rank(GROUP)
        ctx.dim, ctx.context, ctx.sizes = dim, context, split_sizes(x.shape[dim], parts)
        start, stop = shard_range(x.shape[dim], parts, index)
        return x.narrow(dim, start, stop - start).contiguous()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        return _gather_dim(grad.contiguous(), ctx.dim, ctx.sizes, ctx.context), None, None


class _Gather(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx, x: torch.Tensor, dim: int, sizes: tuple[int, ...], context: ProcessContext
    ) -> torch.Tensor:
        ctx.dim, ctx.sizes, ctx.index = dim, sizes, context.group_rank(GROUP)
        return _gather_dim(x, dim, sizes, context)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None, None]:
        start = sum(ctx.sizes[: ctx.index])
        return grad.narrow(ctx.dim, start, ctx.sizes[ctx.index]).contiguous(), None, None, None


class _SpatialSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, context: ProcessContext) -> torch.Tensor:
        x = x.clone()
        return context.all_reduce_sum(x, GROUP)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad, None


def shard_input(x: torch.Tensor, context: ProcessContext | None = None, dim: int = 0) -> torch.Tensor:
    """This rank's slab of a full (replicated) ``x`` [B, C, *spatial] along spatial dim ``dim``.

    Differentiable: the gradient of the full ``x`` is all-gathered in backward (module docstring).
    Raises ValueError on every rank when the dim has fewer cells than the group has ranks.
    """
    context = context or get_context()
    axis = 2 + dim
    check_split(x.shape[axis], context.size(GROUP), f"spatial dim {dim} (shape {tuple(x.shape)})", _FEWER)
    if context.size(GROUP) == 1:
        return x
    return _Shard.apply(x, axis, context)


def gather_output(
    y: torch.Tensor, context: ProcessContext | None = None, dim: int = 0, sizes: Sequence[int] | None = None
) -> torch.Tensor:
    """The full ``y`` on every rank from the slabs [B, C, *local spatial] along spatial dim ``dim``.

    ``sizes`` (cells per rank) defaults to those of ``shard_input``'s split of the gathered size,
    which one extra all-gather of the local sizes finds. Differentiable (module docstring).
    """
    context = context or get_context()
    if context.size(GROUP) == 1:
        return y
    axis = 2 + dim
    if sizes is None:
        sizes = gather_sizes(y.shape[axis], context)
    return _Gather.apply(y, axis, tuple(int(s) for s in sizes), context)


def gather_sizes(n_local: int, context: ProcessContext | None = None) -> tuple[int, ...]:
    """``n_local`` of every rank of the spatial group, in group-rank order (one tiny all-gather)."""
    return tuple(int(v) for v in gather_ints([n_local], context)[:, 0])


def gather_ints(values: Sequence[int], context: ProcessContext | None = None) -> torch.Tensor:
    """[P, len(values)] int64: ``values`` of every rank of the spatial group (small control data)."""
    context = context or get_context()
    local = torch.tensor([list(values)], dtype=torch.int64, device=context.device)
    if context.size(GROUP) == 1:
        return local.cpu()
    parts = [torch.empty_like(local) for _ in range(context.size(GROUP))]
    dist.all_gather(parts, local, group=context.group(GROUP))
    return torch.cat(parts).cpu()


def spatial_sum(x: torch.Tensor, context: ProcessContext | None = None) -> torch.Tensor:
    """Sum of ``x`` over the spatial group, on every rank (e.g. per-sample sums of squares).

    Backward is the identity: use it where everything after it is computed identically on every
    rank (a replicated loss), so each rank's gradient w.r.t. its local terms is the global one.
    """
    context = context or get_context()
    if context.size(GROUP) == 1:
        return x
    return _SpatialSum.apply(x, context)


def spatial_relative_l2(
    pred: torch.Tensor, target: torch.Tensor, context: ProcessContext | None = None
) -> torch.Tensor:
    """Per-sample ``||pred - target|| / ||target||`` over the WHOLE grid from slabs, shape [B].

    ``ccs_fno.metrics.relative_l2`` of the gathered tensors, the same value on every rank of
    the spatial group (one all-reduce of 2B numbers); its gradient w.r.t. each slab is the
    global one (``spatial_sum``), so ``spatial_relative_l2(y, t).mean().backward()`` followed by
    ``reduce_replicated_grads`` gives the serial gradients.
    """
    sums = torch.stack([(pred - target).flatten(1).square().sum(1), target.flatten(1).square().sum(1)])
    sums = spatial_sum(sums, context)
    tiny = torch.finfo(sums.dtype).tiny  # sqrt's gradient at 0 is infinite; norm's is 0
    return sums[0].clamp_min(tiny).sqrt() / sums[1].sqrt().clamp_min(1e-12)


_FEWER = "use a smaller --spatial-parallel, a larger grid, or split another dim"
