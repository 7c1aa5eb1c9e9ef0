"""The real-arithmetic complex contraction and its memory-minimising, cached path."""

import opt_einsum
import pytest
import torch

from ccs_fno.nn import contract as C


def _complex(*shape: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, dtype=torch.complex128, generator=g)


@pytest.mark.parametrize("modes", [(3, 4), (3, 2, 5)])
def test_spectral_contract_equals_complex_einsum(modes):
    x, w = _complex(2, 3, *modes, seed=0), _complex(3, 4, *modes, seed=1)
    y = C.spectral_contract(torch.view_as_real(x), torch.view_as_real(w))
    m = "xyz"[: len(modes)]
    expected = torch.einsum(f"bi{m},io{m}->bo{m}", x, w)
    torch.testing.assert_close(torch.view_as_complex(y), expected, rtol=1e-12, atol=1e-12)


def test_bfloat16_contraction_is_close_to_float64():
    x, w = _complex(4, 16, 5, 3, seed=2), _complex(16, 8, 5, 3, seed=3)
    exact = C.spectral_contract(torch.view_as_real(x), torch.view_as_real(w))
    low = C.spectral_contract(torch.view_as_real(x).bfloat16(), torch.view_as_real(w))
    assert low.dtype == torch.bfloat16
    assert ((low.double() - exact).norm() / exact.norm()).item() < 1e-2


@pytest.mark.parametrize(
    ("equation", "shapes"),
    [
        (C.spectral_equation(2), [(8, 32, 31, 16, 2), (32, 32, 31, 16, 2), (2, 2, 2)]),
        (C.spectral_equation(2), [(64, 4, 7, 4, 2), (4, 16, 7, 4, 2), (2, 2, 2)]),
        (C.spectral_equation(3), [(2, 8, 7, 7, 4, 2), (8, 8, 7, 7, 4, 2), (2, 2, 2)]),
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
    w = torch.randn(3, 6, 4, 5, 2)
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
        C.spectral_contract(torch.randn(2, 3, 4, 3), torch.randn(3, 4, 4, 3))
    with pytest.raises(ValueError, match="do not match"):
        C.spectral_contract(torch.randn(2, 3, 4, 2), torch.randn(5, 4, 4, 2))
    with pytest.raises(ValueError, match="sizes"):
        C.min_memory_path("ab,bc->ac", [(2, 3), (4, 5)])
    with pytest.raises(TypeError, match="one dtype"):
        C.einsum("ab,bc->ac", torch.randn(2, 3), torch.randn(3, 2).double())
