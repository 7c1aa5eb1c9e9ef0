"""SpectralConv against a brute-force DFT, across resolutions, paddings and precisions."""

import math

import numpy as np
import pytest
import torch

from ccs_fno.nn.spectral import (
    PRECISIONS,
    SpectralConv,
    fourier_resample_matrix,
    spectral_conv,
    spectral_dtypes,
)

DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
FULL64 = spectral_dtypes("full", "cpu", torch.float64)


def _brute_force(x: np.ndarray, weight: np.ndarray, modes: tuple[int, ...]) -> np.ndarray:
    """y = irfftn(W * rfftn(x)) on the retained modes, written with explicit DFT matrices.

    Non-last dims keep k = 0..m-1 and -(m-1)..-1 (the weight's FFT order), the last dim
    k = 0..m-1 of the real half spectrum; a real output counts every k_last > 0 twice (for its
    Hermitian partner -k) and k_last = 0 once.
    """
    spatial = x.shape[2:]
    freqs = [np.r_[0:m, -(m - 1) : 0] for m in modes[:-1]] + [np.arange(modes[-1])]
    dft = [np.exp(-2j * np.pi * np.outer(np.arange(n), k) / n) for n, k in zip(spatial, freqs, strict=True)]
    s, k = "zxt"[: len(spatial)], "ZXT"[: len(spatial)]
    pairs = ",".join(f"{a}{b}" for a, b in zip(s, k, strict=True))
    x_hat = np.einsum(f"bi{s},{pairs}->bi{k}", x, *dft)
    w = weight[..., 0] + 1j * weight[..., 1]
    y_hat = np.einsum(f"bi{k},{k}io->bo{k}", x_hat, w)
    y_hat = y_hat * np.where(freqs[-1] == 0, 1.0, 2.0)
    y = np.einsum(f"bo{k},{pairs}->bo{s}", y_hat, *[d.conj() for d in dft])
    return y.real / math.prod(spatial)


@pytest.mark.parametrize(
    ("modes", "spatial"),
    [((3, 4), (5, 9)), ((3, 4), (8, 12)), ((2, 3, 2), (3, 5, 3)), ((2, 3, 2), (4, 6, 7))],
)
def test_matches_brute_force_dft(modes, spatial):
    torch.manual_seed(0)
    conv = SpectralConv(3, 2, modes).double()
    x = torch.randn(2, 3, *spatial, dtype=torch.float64)
    expected = _brute_force(x.numpy(), conv.weight.detach().numpy(), modes)
    np.testing.assert_allclose(conv(x).detach().numpy(), expected, atol=1e-12)


def _band_limited(shape: tuple[int, ...], freqs: list[tuple[int, ...]]) -> torch.Tensor:
    """sum of cosines with integer frequencies, sampled at i / n on each periodic axis."""
    axes = torch.meshgrid(*[torch.arange(n, dtype=torch.float64) / n for n in shape], indexing="ij")
    field = sum(
        math.cos(j + 1) * torch.cos(2 * math.pi * sum(k * a for k, a in zip(f, axes, strict=True)) + j)
        for j, f in enumerate(freqs)
    )
    return field.expand(1, 2, *shape)


def test_same_operator_at_every_resolution():
    """A band-limited input gives the same output at the shared points of 8x10 and 16x20."""
    torch.manual_seed(1)
    conv = SpectralConv(2, 3, (3, 4)).double()
    freqs = [(1, 2), (-2, 3), (0, 1), (3, 4)]  # (3, 4) lies outside the modes: filtered out
    coarse = conv(_band_limited((8, 10), freqs))
    fine = conv(_band_limited((16, 20), freqs))
    torch.testing.assert_close(fine[..., ::2, ::2], coarse, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("modes", "spatial"), [((3, 4), (6, 12)), ((2, 3, 2), (5, 6, 7))])
@pytest.mark.parametrize("padded", ["forward", "inverse", "both"])
def test_fourier_padding_to_power_of_two_changes_nothing(modes, spatial, padded):
    """The float16 path's pad-to-2^k (Fourier interpolation there, sampling back after the
    inverse FFT) run in float64: equal to the unpadded operator for ANY input (not only
    band-limited ones), since only |k| < n/2 is kept. Plain spatial zero padding would not be:
    it changes the period from n to 2^k."""
    torch.manual_seed(2)
    weight = torch.randn(*[2 * m - 1 for m in modes[:-1]], modes[-1], 3, 2, 2, dtype=torch.float64)
    x = torch.randn(2, 3, *spatial, dtype=torch.float64)
    pow2 = tuple(1 << (n - 1).bit_length() for n in spatial)
    grids = {
        "forward_grid": pow2 if padded in ("forward", "both") else None,
        "inverse_grid": pow2 if padded in ("inverse", "both") else None,
    }
    reference = spectral_conv(x, weight, modes, FULL64)
    torch.testing.assert_close(spectral_conv(x, weight, modes, FULL64, **grids), reference)


def test_resample_matrix_interpolates_trig_polynomials_exactly():
    t6, t16 = np.arange(6) / 6, np.arange(16) / 16
    f = lambda t: 1 + np.sin(2 * np.pi * t) - 0.5 * np.cos(4 * np.pi * t + 0.3)  # noqa: E731
    np.testing.assert_allclose(fourier_resample_matrix(6, 16) @ f(t6), f(t16), atol=1e-12)
    np.testing.assert_allclose(fourier_resample_matrix(16, 6) @ f(t16), f(t6), atol=1e-12)


def _pair(precision: str, tanh: bool, device: str) -> tuple[SpectralConv, SpectralConv]:
    torch.manual_seed(3)
    full = SpectralConv(8, 8, (4, 5), "full", tanh).to(device)
    low = SpectralConv(8, 8, (4, 5), precision, tanh).to(device)
    low.load_state_dict(full.state_dict())
    return full, low


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("precision", ["half", "mixed"])
@pytest.mark.parametrize("spatial", [(16, 16), (12, 20)])
def test_reduced_precision_close_to_full(device, precision, spatial):
    full, low = _pair(precision, True, device)
    x = 3 * torch.randn(4, 8, *spatial, device=device)
    reference, y = full(x), low(x)
    assert y.dtype == torch.float32 and torch.isfinite(y).all()
    assert ((y - reference).norm() / reference.norm()).item() < 2e-2


@pytest.mark.parametrize("device", DEVICES)
def test_autocast_does_not_reach_the_fft(device):
    conv = SpectralConv(4, 4, (3, 3)).to(device)
    x = torch.randn(2, 4, 8, 8, device=device)
    dtype = torch.float16 if device == "cuda" else torch.bfloat16
    with torch.autocast(device_type=device, dtype=dtype):
        y32 = conv(x)
        y_low = conv(x.to(dtype))
    assert y32.dtype == torch.float32 and y_low.dtype == dtype
    torch.testing.assert_close(y32, conv(x), rtol=0, atol=0)  # full precision stays full


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("precision", PRECISIONS)
def test_gradients_flow_in_every_precision(device, precision):
    conv = SpectralConv(4, 3, (3, 3, 2), precision).to(device)
    x = torch.randn(2, 4, 6, 8, 5, device=device, requires_grad=True)
    conv(x).square().mean().backward()
    for grad in (x.grad, conv.weight.grad):
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_gradcheck_float64_with_tanh_and_padding():
    torch.manual_seed(4)
    conv = SpectralConv(2, 2, (2, 3), tanh_preactivation=True).double()
    x = torch.randn(1, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(conv, (x,), fast_mode=True)
    weight = conv.weight.detach().requires_grad_()
    padded = lambda x, w: spectral_conv(x, w, (2, 3), FULL64, (8, 8), (8, 8))  # noqa: E731
    assert torch.autograd.gradcheck(padded, (x, weight), fast_mode=True)


def test_tanh_default_follows_precision_and_is_then_fixed():
    assert not SpectralConv(2, 2, (2, 2)).tanh_preactivation
    conv = SpectralConv(2, 2, (2, 2), "half")
    assert conv.tanh_preactivation
    conv.set_precision("full")
    assert conv.tanh_preactivation and conv.precision == "full"


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match=r"one of \('full', 'half', 'mixed'\), got 'double'"):
        SpectralConv(2, 2, (2, 2), "double")
    with pytest.raises(ValueError, match="2 or 3 positive ints"):
        SpectralConv(2, 2, (4,))
    conv = SpectralConv(2, 2, (4, 6))
    with pytest.raises(ValueError, match=r"at least \(7, 11\) points.*got spatial shape \(6, 16\)"):
        conv(torch.randn(1, 2, 6, 16))
    with pytest.raises(ValueError, match="rank 4"):
        conv(torch.randn(2, 16, 16))
    with pytest.raises(ValueError, match="2 input channels, got 3"):
        conv(torch.randn(1, 3, 16, 16))


def test_full_precision_step_makes_no_rearranged_weight_copy():
    """The weight is stored as the contraction reads it ([*modes, in, out, 2]): a training step
    in full precision copies no weight-sized tensor (forward, backward, grad accumulation)."""
    from test_contract import weight_sized_copies

    conv = SpectralConv(6, 6, (3, 4))
    assert conv.weight.shape == (5, 4, 6, 6, 2)
    x = torch.randn(2, 6, 8, 8)

    def step() -> None:
        conv(x).square().sum().backward()

    step()
    assert weight_sized_copies(step, conv.weight) == []


def test_a_mode_block_is_a_slice_along_a_mode_axis():
    conv = SpectralConv(3, 2, (3, 4)).double()
    w = conv.weight.detach()
    block = w[1:3]  # k_z = 1, 2 for every k_x, in, out
    assert block.is_contiguous() and block.shape == (2, 4, 3, 2, 2)
    torch.testing.assert_close(
        torch.view_as_complex(block.contiguous())[1, 2], w[2, 2, ..., 0] + 1j * w[2, 2, ..., 1]
    )


@pytest.mark.parametrize(("channels", "modes"), [(3, (2, 2)), (5, (3, 5))])
def test_old_weight_layout_is_refused_not_permuted(channels, modes):
    """A state dict written with the version-1 layout [in, out, *modes, 2] fails to load with
    a clear error -- also when both layouts have the same shape (5 channels, modes (3, 5))."""
    conv = SpectralConv(channels, channels, modes)
    old = conv.state_dict()
    old["weight"] = conv.weight.detach().permute(3, 4, 0, 1, 2).contiguous()  # as version 1 stored it
    old._metadata[""]["version"] = 1
    before = conv.weight.detach().clone()
    with pytest.raises(RuntimeError, match=r"old layout \[in, out, \*modes, 2\].*retrain"):
        conv.load_state_dict(old)
    with pytest.raises(RuntimeError, match="old layout"):
        conv.load_state_dict(old, strict=False)
    torch.testing.assert_close(conv.weight.detach(), before, rtol=0, atol=0)
    conv.load_state_dict(conv.state_dict())  # the current layout loads


def test_old_layout_shape_without_metadata_is_refused():
    conv = SpectralConv(3, 3, (2, 2))
    with pytest.raises(RuntimeError, match="old layout"):
        conv.load_state_dict({"weight": torch.zeros(3, 3, 3, 2, 2)})
