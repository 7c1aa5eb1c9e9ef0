"""Complex spectral contraction with real arithmetic, on a memory-minimising opt_einsum path.

Spectral weights live as real tensors with a trailing (re, im) axis of 2, because DDP cannot
all-reduce complex parameters and because float16/bfloat16 complex arithmetic is patchy. The
complex product ``y[b,o,k] = sum_i x[b,i,k] w[k,i,o]`` is therefore written as ONE real einsum
with a constant (2)x(2)->(2) structure tensor ``S[a,c,d]`` holding the sign pattern of complex
multiplication::

    y[b,o,k,d] = sum_{i,a,c} x[b,i,k,a] w[k,i,o,c] S[a,c,d]

Three operands give three contraction orders (x·w, x·S or w·S first) whose intermediates are
``b·o·K·4``, ``b·i·K·4`` and ``i·o·K·4`` numbers: which one is smallest depends on batch and
channel counts, and FLOP-optimal planners do not look at it. We pick the order with the smallest
LARGEST intermediate (ties broken by FLOPs, then by operand order: x·w first) by exhaustive
search, and cache the plan per (equation, shapes, dtype).

Weight layout ``[*modes, i, o, 2]`` is the one the contraction consumes; both orders that
involve the weight first are executed as matmuls on free views of it, so in full precision no
rearranged copy of the weight is made, and its gradient comes out of the backward matmul already
in the parameter's layout (no re-layout copy when it is accumulated):

* x·w first (the plan when batch <= in_channels >= out_channels, e.g. every FNO layer at batch
  <= width): one batched matmul over the K modes, ``[K, 2b, i] @ weight[K, i, 2o]``;
* w·S first (batch > in_channels): ``weight[K·i·o, 2] @ S[2, 4]``.

Only the x·S-first plan (in_channels < out_channels and < batch) is left to opt_einsum, whose
torch.einsum rearranges the weight. Reduced precision casts the weight every step regardless.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import opt_einsum
import torch

# Letters for the mode axes; b, i, o (batch, in, out) and a, c, d (re/im axes) are taken.
_MODE_LETTERS = "klmnpq"


@dataclass(frozen=True)
class ContractionPlan:
    """A contraction order in opt_einsum's format, with its cost.

    largest_intermediate: number of elements of the biggest tensor the path creates (the output
    included, as opt_einsum's ``PathInfo.largest_intermediate`` counts it); flops: the sum over
    pairwise steps of the product of the index sizes involved (multiply-adds).
    """

    equation: str
    path: tuple[tuple[int, int], ...]
    largest_intermediate: int
    flops: int
    expression: opt_einsum.contract.ContractExpression

    def __call__(self, *operands: torch.Tensor) -> torch.Tensor:
        return self.expression(*operands, backend="torch")


def _parse(equation: str) -> tuple[list[str], str]:
    if "->" not in equation or "." in equation:
        raise ValueError(f"equation must be explicit ('ab,bc->ac', no '...'); got {equation!r}")
    inputs, output = equation.replace(" ", "").split("->")
    return inputs.split(","), output


def min_memory_path(
    equation: str, shapes: Sequence[Sequence[int]]
) -> tuple[tuple[tuple[int, int], ...], int, int]:
    """Exhaustive search for the pairwise order with the smallest largest intermediate.

    Returns (path, largest_intermediate, flops); ties on memory are broken by FLOPs. The cost
    grows factorially with the number of operands: fine for the 2-5 of spectral contractions.
    """
    inputs, output = _parse(equation)
    if len(inputs) != len(shapes) or len(inputs) < 2:
        raise ValueError(
            f"equation {equation!r} has {len(inputs)} operands (need >= 2); got {len(shapes)} shapes"
        )
    sizes: dict[str, int] = {}
    for term, shape in zip(inputs, shapes, strict=True):
        if len(term) != len(shape):
            raise ValueError(f"term {term!r} does not match shape {tuple(shape)}")
        for letter, n in zip(term, shape, strict=True):
            if sizes.setdefault(letter, n) != n:
                raise ValueError(f"index {letter!r} has sizes {sizes[letter]} and {n}")
    out_set = frozenset(output)

    def size(indices: frozenset[str]) -> int:
        return math.prod(sizes[c] for c in indices)

    @functools.cache
    def best(operands: tuple[frozenset[str], ...]) -> tuple[int, int, tuple[tuple[int, int], ...]]:
        if len(operands) == 1:
            return 0, 0, ()
        candidates = []
        for i, j in itertools.combinations(range(len(operands)), 2):
            rest = tuple(t for k, t in enumerate(operands) if k not in (i, j))
            needed = out_set.union(*rest)
            kept = (operands[i] | operands[j]) & needed
            sub_mem, sub_flops, sub_path = best((*rest, kept))
            candidates.append(
                (
                    max(size(kept), sub_mem),
                    size(operands[i] | operands[j]) + sub_flops,
                    ((i, j), *sub_path),
                )
            )
        return min(candidates)

    memory, flops, path = best(tuple(frozenset(t) for t in inputs))
    return path, memory, flops


@functools.lru_cache(maxsize=512)
def _cached_plan(equation: str, shapes: tuple[tuple[int, ...], ...], dtype: str) -> ContractionPlan:
    path, memory, flops = min_memory_path(equation, shapes)
    expression = opt_einsum.contract_expression(equation, *shapes, optimize=list(path))
    return ContractionPlan(equation, path, memory, flops, expression)


def contraction_path(
    equation: str, shapes: Sequence[Sequence[int]], dtype: torch.dtype | str
) -> ContractionPlan:
    """The memory-minimising plan for ``equation`` on operands of ``shapes``, cached.

    The cache key is (equation, shapes, dtype); ``cache_info()`` reports hits and misses.
    """
    key_shapes = tuple(tuple(int(n) for n in s) for s in shapes)
    return _cached_plan(equation, key_shapes, str(dtype))


def cache_info() -> functools._CacheInfo:
    """Hits/misses of the plan cache (a miss is one path search)."""
    return _cached_plan.cache_info()


def cache_clear() -> None:
    _cached_plan.cache_clear()


def einsum(equation: str, *operands: torch.Tensor) -> torch.Tensor:
    """Real einsum of ``operands`` along the cached memory-minimising path."""
    dtypes = {t.dtype for t in operands}
    if len(dtypes) != 1:
        raise TypeError(f"operands must share one dtype, got {sorted(map(str, dtypes))}")
    plan = contraction_path(equation, [t.shape for t in operands], operands[0].dtype)
    return plan(*operands)


@functools.lru_cache(maxsize=8)
def spectral_equation(n_mode_dims: int) -> str:
    """Real einsum for x[b,i,modes..,a] · w[modes..,i,o,c] · S[a,c,d] -> y[b,o,modes..,d]."""
    if not 1 <= n_mode_dims <= len(_MODE_LETTERS):
        raise ValueError(f"n_mode_dims must be in 1..{len(_MODE_LETTERS)}, got {n_mode_dims}")
    m = _MODE_LETTERS[:n_mode_dims]
    return f"bi{m}a,{m}ioc,acd->bo{m}d"


def complex_structure(dtype: torch.dtype, device: torch.device | str) -> torch.Tensor:
    """S[a,c,d] with (x_a w_c) contributing S[a,c,d] to y_d; 0 = real, 1 = imaginary part."""
    s = torch.zeros(2, 2, 2, dtype=dtype, device=device)
    s[0, 0, 0], s[1, 1, 0] = 1, -1  # re = xr wr - xi wi
    s[0, 1, 1], s[1, 0, 1] = 1, 1  # im = xr wi + xi wr
    return s


def _contract_x_weight_first(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The x·w-first plan as one batched matmul over the modes, consuming the weight in place.

    ``weight.reshape(K, i, 2o)`` is a view of a contiguous weight, so neither the forward nor
    the backward pass (whose weight gradient ``xk^T @ grad`` is [K, i, 2o] contiguous, the
    parameter's own layout) rearranges it; only the activation-sized x is permuted. The second
    step, ·S, applies S's sign pattern (re = p00 - p11, im = p01 + p10) elementwise: same
    numbers as contracting with ``complex_structure``, without the permuted copy of the
    intermediate that torch.einsum would make for it.
    """
    b, i, *modes, _ = x.shape
    o = weight.shape[-2]
    k = math.prod(modes)
    xk = x.reshape(b, i, k, 2).permute(2, 0, 3, 1).reshape(k, 2 * b, i)  # [K, (b a), i]
    p = torch.bmm(xk, weight.reshape(k, i, 2 * o)).view(k, b, 2, o, 2)  # the plan's intermediate
    y = torch.stack([p[:, :, 0, :, 0] - p[:, :, 1, :, 1], p[:, :, 0, :, 1] + p[:, :, 1, :, 0]], -1)
    return y.permute(1, 2, 0, 3).reshape(b, o, *modes, 2)


def _contract_weight_structure_first(x: torch.Tensor, weight: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """The w·S-first plan: the weight enters as its free [K·i·o, 2] view (gradient in place)."""
    b, i, *modes, _ = x.shape
    o = weight.shape[-2]
    k = math.prod(modes)
    s2 = s.permute(1, 0, 2).reshape(2, 4)  # [c, (a d)]
    w2 = (weight.reshape(k * i * o, 2) @ s2).view(k, i, o, 2, 2)  # the plan's intermediate
    y = torch.einsum("bika,kioad->bokd", x.reshape(b, i, k, 2), w2)
    return y.reshape(b, o, *modes, 2)


def spectral_contract(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Complex channel mixing per mode, on real views.

    x: [b, i, *modes, 2] (re, im); weight: [*modes, i, o, 2]; returns [b, o, *modes, 2]
    (contiguous), all in x's dtype (weight is cast to it: that cast makes the contraction
    reduced-precision). The order is the cached memory-minimising plan (module docstring).
    """
    if x.shape[-1] != 2 or weight.shape[-1] != 2:
        raise ValueError(
            f"x and weight need a trailing (re, im) axis of 2; got {tuple(x.shape)}, {tuple(weight.shape)}"
        )
    if x.dim() != weight.dim() or x.shape[1] != weight.shape[-3] or x.shape[2:-1] != weight.shape[:-3]:
        raise ValueError(
            f"x [b, i, *modes, 2] and weight [*modes, i, o, 2] do not match: "
            f"{tuple(x.shape)} vs {tuple(weight.shape)}"
        )
    weight = weight.to(x.dtype)
    s = complex_structure(x.dtype, x.device)
    plan = contraction_path(spectral_equation(x.dim() - 3), [x.shape, weight.shape, s.shape], x.dtype)
    if plan.path[0] == (0, 1):
        return _contract_x_weight_first(x, weight).contiguous()
    if plan.path[0] == (1, 2):
        return _contract_weight_structure_first(x, weight, s).contiguous()
    # Contiguous so that torch.view_as_complex accepts the result.
    return plan(x, weight, s).contiguous()
