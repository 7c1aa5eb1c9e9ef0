"""FNO: layouts, checkpoint rebuild from config, super-resolution, precisions."""

import json
import re

import pytest
import torch

from ccs_fno.nn import FNO, PRECISIONS

DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


def _small(modes=(4, 4), precision="full", **kwargs) -> FNO:
    torch.manual_seed(0)
    kwargs = {"width": 8, "n_layers": 2, "projection_width": 16, **kwargs}
    return FNO(2, 5, modes, precision=precision, **kwargs)


def test_layouts_2d_time_as_channels_and_3d():
    assert _small()(torch.randn(3, 2, 16, 12)).shape == (3, 5, 16, 12)
    fno3 = _small(modes=(3, 3, 2))
    assert fno3(torch.randn(2, 2, 8, 8, 6)).shape == (2, 5, 8, 8, 6)


def test_config_rebuilds_the_model():
    model = _small(precision="half")
    config = json.loads(json.dumps(model.config))
    rebuilt = FNO(**config)
    rebuilt.load_state_dict(model.state_dict())
    x = torch.randn(2, 2, 16, 16)
    torch.testing.assert_close(rebuilt(x), model(x), rtol=0, atol=0)
    assert config["tanh_preactivation"] is True  # resolved, so a later precision switch keeps it


def test_zero_shot_super_resolution():
    model = _small()
    x64 = torch.randn(1, 2, 16, 16)
    x128 = torch.nn.functional.interpolate(x64, scale_factor=2, mode="bilinear")
    y = model(x128)
    assert y.shape == (1, 5, 32, 32) and torch.isfinite(y).all()
    # Coordinates are cell centres in [0, 1]: the same physical positions at any resolution.
    g16, g32 = model.grid(x64), model.grid(x128)
    torch.testing.assert_close((g32[..., ::2, ::2] + g32[..., 1::2, 1::2]) / 2, g16)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("precision", ["half", "mixed"])
def test_reduced_precision_close_to_full_and_trains(device, precision):
    model = _small(precision=precision).to(device)
    x = torch.randn(4, 2, 16, 16, device=device)
    y = model(x)
    assert y.dtype == torch.float32
    model.set_precision("full")
    reference = model(x)
    assert ((y - reference).norm() / reference.norm()).item() < 3e-2
    model.set_precision(precision)
    model(x).square().mean().backward()
    for name, p in model.named_parameters():
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_set_precision_reaches_every_layer_and_the_config():
    model = _small()
    model.set_precision("mixed")
    assert model.config["precision"] == "mixed"
    assert {layer.precision for layer in model.spectral} == {"mixed"}
    with pytest.raises(ValueError, match="'quarter'"):
        model.set_precision("quarter")


def test_full_precision_model_under_external_autocast():
    model = _small()
    x = torch.randn(2, 2, 16, 16)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        y = model(x)
    reference = model(x)
    assert y.dtype == torch.float32
    assert ((y - reference).norm() / reference.norm()).item() < 3e-2


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match=re.escape(f"one of {PRECISIONS}, got 'fp8'")):
        _small(precision="fp8")
    with pytest.raises(ValueError, match="width must be a positive int, got 0"):
        _small(width=0)
    with pytest.raises(ValueError, match="2 or 3 entries"):
        _small(modes=(4,))
    with pytest.raises(ValueError, match=r"expected input \[batch, 2, \*2 spatial dims\]"):
        _small()(torch.randn(2, 2, 16, 16, 3))
    with pytest.raises(ValueError, match=r"at least \(7, 7\)"):
        _small()(torch.randn(1, 2, 6, 16))


def test_checkpoint_with_the_old_spectral_weight_layout_fails_clearly(tmp_path):
    """A model saved before the spectral weights moved to [*modes, in, out, 2] (SpectralConv
    layout version 1) does not load -- a clear error through the checkpoint loader."""
    from ccs_fno.checkpoint import load_weights

    model = _small()
    state = model.state_dict()
    for i in range(len(model.spectral)):
        key = f"spectral.{i}.weight"
        state[key] = state[key].permute(2, 3, 0, 1, 4).contiguous()  # [in, out, *modes, 2]
        state._metadata[f"spectral.{i}"]["version"] = 1
    torch.save(state, tmp_path / "old.pt")
    old = torch.load(tmp_path / "old.pt", weights_only=True)  # the version survives a file
    with pytest.raises(ValueError, match=r"spectral\.0\.weight was saved in SpectralConv's old layout"):
        load_weights(_small(), old, tmp_path / "old.pt", "model weights")
