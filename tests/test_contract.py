"""The real-arithmetic complex contraction and its memory-minimising, cached path."""

import math

import opt_einsum
import pytest
import torch

from ccs_fno.nn import contract as C


def _complex(*shape: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, dtype=torch.complex128, generator=g)


@pytest.mark.parametrize("modes", [(3, 4), (3, 2, 5)])
def test_spectral_contract_equals_complex_einsum(modes):
    x, w = _complex(2, 3, *modes, seed=0), _complex(*modes, 3, 4, seed=1)
    y = C.spectral_contract(torch.view_as_real(x), torch.view_as_real(w))
    m = "xyz"[: len(modes)]
    expected = torch.einsum(f"bi{m},{m}io->bo{m}", x, w)
    torch.testing.assert_close(torch.view_as_complex(y), expected, rtol=1e-12, atol=1e-12)


# (batch, in, out) for each contraction order the memory-minimising plan can choose.
ORDERS = {"x·w first": (3, 7, 5), "x·S first": (6, 3, 7), "w·S first": (9, 2, 3)}
FIRST_PAIR = {"x·w first": (0, 1), "x·S first": (0, 2), "w·S first": (1, 2)}


def _plan_first_pair(b: int, i: int, o: int, modes: tuple[int, ...]) -> tuple[int, int]:
    shapes = [(b, i, *modes, 2), (*modes, i, o, 2), (2, 2, 2)]
    return C.contraction_path(C.spectral_equation(len(modes)), shapes, torch.float64).path[0]


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("modes", [(3, 4), (3, 2, 5)])
def test_every_plan_order_equals_complex_einsum(order, modes):
    b, i, o = ORDERS[order]
    assert _plan_first_pair(b, i, o, modes) == FIRST_PAIR[order]
    x, w = _complex(b, i, *modes, seed=4), _complex(*modes, i, o, seed=5)
    y = C.spectral_contract(torch.view_as_real(x), torch.view_as_real(w))
    m = "xyz"[: len(modes)]
    expected = torch.einsum(f"bi{m},{m}io->bo{m}", x, w)
    torch.testing.assert_close(torch.view_as_complex(y), expected, rtol=1e-12, atol=1e-12)


def weight_sized_copies(fn, weight: torch.Tensor) -> list[tuple[str, list]]:
    """Copy ops (forward and backward) run by ``fn()`` on a tensor with the weight's size."""
    copies = ("aten::copy_", "aten::clone", "aten::_to_copy", "aten::contiguous")
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True) as prof:
        fn()
    return [
        (e.name, e.input_shapes)
        for e in prof.events()
        if e.name in copies
        and any(isinstance(s, list) and len(s) > 1 and math.prod(s) == weight.numel() for s in e.input_shapes)
    ]


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_weight_is_consumed_in_place(order, dtype):
    """Full precision: no rearranged copy of the weight in forward, backward or gradient
    accumulation, for both orders that start from the weight; the x·S-first order (left to
    torch.einsum) does copy it, which shows that the probe sees such copies."""
    b, i, o = ORDERS[order]
    modes = (5, 3)
    x = torch.randn(b, i, *modes, 2, dtype=dtype)
    weight = torch.nn.Parameter(torch.randn(*modes, i, o, 2, dtype=dtype))
    activations = {x.numel(), b * o * 15 * 2, b * o * 15 * 4, b * i * 15 * 4}
    assert weight.numel() not in activations  # the probe tells weight copies by their size

    def step() -> None:
        C.spectral_contract(x, weight).square().sum().backward()

    step()  # the first call plans the path
    copies = weight_sized_copies(step, weight)
    assert (copies != []) == (order == "x·S first"), copies


def test_bfloat16_contraction_is_close_to_float64():
    x, w = _complex(4, 16, 5, 3, seed=2), _complex(5, 3, 16, 8, seed=3)
    exact = C.spectral_contract(torch.view_as_real(x), torch.view_as_real(w))
    low = C.spectral_contract(torch.view_as_real(x).bfloat16(), torch.view_as_real(w))
    assert low.dtype == torch.bfloat16
    assert ((low.double() - exact).norm() / exact.norm()).item() < 1e-2


@pytest.mark.parametrize(
    ("equation", "shapes"),
    [
        (C.spectral_equation(2), [(8, 32, 31, 16, 2), (31, 16, 32, 32, 2), (2, 2, 2)]),
        (C.spectral_equation(2), [(64, 4, 7, 4, 2), (7, 4, 4, 16, 2), (2, 2, 2)]),
        (C.spectral_equation(3), [(2, 8, 7, 7, 4, 2), (7, 7, 4, 8, 8, 2), (2, 2, 2)]),
        ("ab,bc,cd->ad", [(8, 40), (40, 3), (3, 2)]),
        ("ab,bc,cd,de->ae", [(3, 8), (8, 5), (5, 100), (100, 8)]),
    ],
)
def test_path_largest_intermediate_is_minimal(equation, shapes):
    path, largest, _ = C.min_memory_path(equation, shapes)
    ours = opt_einsum.contract_path(equation, *shapes, shapes=True, optimize=list(path))[1]
    auto = opt_einsum.contract_path(equation, *shapes, shapes=True, optimize="auto")[1]
    assert ours.largest_intermediate == largest  # our accounting is opt_einsum's
    assert largest <= auto.largest_intermediate


def test_memory_path_beats_flop_path_where_they_differ():
    shapes = [(8, 40), (40, 3), (3, 2)]
    _, largest, _ = C.min_memory_path("ab,bc,cd->ad", shapes)
    auto = opt_einsum.contract_path("ab,bc,cd->ad", *shapes, shapes=True, optimize="auto")[1]
    assert (largest, auto.largest_intermediate) == (24, 80)


def test_plan_is_cached_per_equation_shapes_dtype():
    C.cache_clear()
    x = torch.randn(2, 3, 4, 5, 2)
    w = torch.randn(4, 5, 3, 6, 2)
    C.spectral_contract(x, w)
    assert (C.cache_info().hits, C.cache_info().misses) == (0, 1)
    C.spectral_contract(x + 1, w)
    assert (C.cache_info().hits, C.cache_info().misses) == (1, 1)  # no new path search
    C.spectral_contract(x.double(), w)
    C.spectral_contract(torch.randn(3, 3, 4, 5, 2), w)
    assert C.cache_info().misses == 3  # new dtype, new batch size


def test_einsum_matches_torch_einsum():
    a, b, c = torch.randn(8, 40), torch.randn(40, 3), torch.randn(3, 2)
    expected = torch.einsum("ab,bc,cd->ad", a, b, c)
    torch.testing.assert_close(C.einsum("ab,bc,cd->ad", a, b, c), expected)


def test_bad_operands_raise():
    with pytest.raises(ValueError, match="trailing"):
        C.spectral_contract(torch.randn(2, 3, 4, 3), torch.randn(4, 3, 4, 3))
    with pytest.raises(ValueError, match="do not match"):
        C.spectral_contract(torch.randn(2, 3, 4, 2), torch.randn(4, 5, 4, 2))
    with pytest.raises(ValueError, match="do not match"):  # the old [i, o, *modes, 2] layout
        C.spectral_contract(torch.randn(2, 3, 4, 2), torch.randn(3, 4, 4, 2))
    with pytest.raises(ValueError, match="sizes"):
        C.min_memory_path("ab,bc->ac", [(2, 3), (4, 5)])
    with pytest.raises(TypeError, match="one dtype"):
        C.einsum("ab,bc->ac", torch.randn(2, 3), torch.randn(3, 2).double())
