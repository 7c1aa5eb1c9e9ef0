"""Run by ``torchrun`` in tests/test_spatial.py: the sharded FNO against the serial one, per rank.

``python -m torch.distributed.run --nproc-per-node P tests/spatial_worker.py SPEC`` where SPEC is
a JSON file {"out": ..., "fft": [...], "models": [...], "bad": true}. Every rank computes the
serial reference itself (the serial layers use no collectives when the data group has one
process), runs the sharded version, gathers it and writes its errors to ``out/rank{r}.pt``; the
test process checks every rank's file, so a failure on any rank fails the test.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path

import torch

from ccs_fno.distributed import get_context, init_context, shard_range, shutdown_context
from ccs_fno.metrics import relative_l2
from ccs_fno.nn import FNO, SpectralConv, spectral_conv
from ccs_fno.nn.spectral import _gather_modes, _scatter_modes, spectral_dtypes
from ccs_fno.spatial import (
    SpatialFNO,
    SpatialSpectralConv,
    comm_counter,
    dist_irfft_modes,
    dist_rfft_modes,
    dist_spectral_conv,
    full_grads,
    full_state_dict,
    gather_output,
    reduce_replicated_grads,
    shard_input,
    slab_layout,
    spatial_relative_l2,
    split_sizes,
    transpose_bytes,
    wire_dtype,
)

DTYPES = {"float64": torch.float64, "float32": torch.float32}


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """Relative max error of a vs the reference b."""
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def fft_case(case: dict) -> dict:
    """dist_rfft_modes / dist_irfft_modes vs torch.fft.rfftn / irfftn, values and gradients."""
    context = get_context()
    parts, me = context.size("spatial"), context.group_rank("spatial")
    shape, modes = tuple(case["shape"]), tuple(case["modes"])
    cells, split = split_sizes(shape[0], parts), split_sizes(modes[-1], parts)
    lo = sum(split[:me])
    torch.manual_seed(1)
    x = torch.randn(2, 3, *shape, dtype=torch.float64, requires_grad=True)
    spec_shape = (*(2 * m - 1 for m in modes[:-1]), modes[-1])
    g = torch.randn(2, 3, *spec_shape, 2, dtype=torch.float64)
    ref = _gather_modes(torch.view_as_real(torch.fft.rfftn(x, dim=tuple(range(2, x.dim())))), modes)
    (ref * g).sum().backward()
    ref_block = ref.detach().narrow(-2, lo, split[me])

    x_local = shard_input(x.detach(), context).clone().requires_grad_()
    block = dist_rfft_modes(x_local, modes, cells, split, context)
    (block * g.narrow(-2, lo, split[me])).sum().backward()
    grad_full = gather_output(x_local.grad, context)
    result = {"forward": rel(block.detach(), ref_block), "forward_grad": rel(grad_full, x.grad)}

    # inverse: block -> slab of irfftn(zero-filled spectrum, norm="forward")
    s = torch.randn(2, 3, *spec_shape, 2, dtype=torch.float64, requires_grad=True)
    ref_y = torch.fft.irfftn(
        torch.view_as_complex(_scatter_modes(s, modes, shape)),
        s=shape,
        dim=tuple(range(2, 2 + len(shape))),
        norm="forward",
    )
    gy = torch.randn_like(ref_y)
    (ref_y * gy).sum().backward()
    s_local = s.detach().narrow(-2, lo, split[me]).clone().requires_grad_()
    y = dist_irfft_modes(s_local, modes, shape, cells, split, context)
    (y * shard_input(gy, context)).sum().backward()
    result["inverse"] = rel(gather_output(y.detach(), context), ref_y.detach())
    result["inverse_grad"] = rel(s_local.grad, s.grad.narrow(-2, lo, split[me]))
    return result


def model_case(case: dict) -> dict:
    """SpatialFNO vs FNO: output, input gradient, every weight gradient, state dicts, bytes."""
    context = get_context()
    parts, me = context.size("spatial"), context.group_rank("spatial")
    dtype = DTYPES[case["dtype"]]
    shape, modes = tuple(case["shape"]), tuple(case["modes"])
    config = {
        "in_channels": 2,
        "out_channels": 3,
        "modes": list(modes),
        "width": 6,
        "n_layers": 2,
        "projection_width": 8,
        "precision": case.get("precision", "full"),
        "norm": case.get("norm"),
    }
    torch.manual_seed(2)
    serial = FNO(**config).to(dtype)
    sharded = SpatialFNO.from_fno(serial, context)
    x = torch.randn(2, 2, *shape, dtype=dtype)
    g = torch.randn(2, 3, *shape, dtype=dtype)
    results: dict = {}
    if case.get("reference_full"):  # the serial full-precision model: the half models' own error
        reference = FNO(**(config | {"precision": "full"})).to(dtype)
        reference.load_state_dict(serial.state_dict())
        x_ref = x.clone().requires_grad_()
        y_ref = reference(x_ref)
        (y_ref * g).sum().backward()
    rel_l2 = case.get("loss") == "rel_l2"  # the training loss: replicated, from global sums
    x_serial = x.clone().requires_grad_()
    y_serial = serial(x_serial)
    (relative_l2(y_serial, g).mean() if rel_l2 else (y_serial * g).sum()).backward()

    counter = comm_counter()
    counter.reset()
    x_sharded = x.clone().requires_grad_()
    x_local = shard_input(x_sharded, context)
    y_local = sharded(x_local)
    forward_bytes = counter.forward_bytes
    g_local = shard_input(g, context)
    if rel_l2:
        loss_local = spatial_relative_l2(y_local, g_local).mean()  # the same on every rank
    else:
        loss_local = (y_local * g_local).sum()  # this rank's part of the global sum
    loss_local.backward()
    reduce_replicated_grads(sharded)
    y = gather_output(y_local.detach(), context)

    results["output"] = rel(y, y_serial.detach())
    results["input_grad"] = rel(x_sharded.grad, x_serial.grad)
    grads, serial_grads = full_grads(sharded), {k: p.grad for k, p in serial.named_parameters()}
    assert set(grads) == set(serial_grads), (sorted(grads), sorted(serial_grads))
    results["grads"] = {k: rel(grads[k], serial_grads[k]) for k in serial_grads}
    if case.get("reference_full"):
        ref_grads = {k: p.grad for k, p in reference.named_parameters()}
        results["serial_vs_full"] = {
            "output": rel(y_serial.detach(), y_ref.detach()),
            "input_grad": rel(x_serial.grad, x_ref.grad),
            "grads": max(rel(serial_grads[k], ref_grads[k]) for k in ref_grads),
        }
    # the sharded model's gathered state dict is the serial one (incl. batch-norm running stats)
    state = full_state_dict(sharded)
    results["state"] = max(
        rel(state[k].double(), v.double()) if v.is_floating_point() else 0.0
        for k, v in serial.state_dict().items()
    )
    results["state_keys"] = sorted(state) == sorted(serial.state_dict())
    fresh = FNO(**config).to(dtype)
    fresh.load_state_dict(state)
    results["reloaded"] = rel(fresh.eval()(x).detach(), serial.eval()(x).detach())

    # bytes: measured vs analytic (both transposes of every layer; backward mirrors forward)
    dtypes_wire = wire_dtype(config["precision"], spectral_dtypes(config["precision"], "cpu", dtype))
    element = torch.empty((), dtype=dtypes_wire).element_size()
    cells, split = split_sizes(shape[0], parts), split_sizes(modes[-1], parts)
    per_layer = transpose_bytes(x.shape[0], config["width"], modes, cells, split, me, element)
    analytic = config["n_layers"] * (per_layer["forward"] + per_layer["inverse"])
    results["bytes"] = {
        "forward": forward_bytes,
        "backward": counter.backward_bytes,
        "analytic": analytic,
        "wire_dtype": str(dtypes_wire),
    }
    return results


def padded_case(case: dict) -> dict:
    """dist_spectral_conv with Fourier padding (the float16 cuFFT path, here in float64) vs the
    serial spectral_conv on the same padded grids: output and gradients (input, weight block)."""
    context = get_context()
    parts, me = context.size("spatial"), context.group_rank("spatial")
    shape, modes = tuple(case["shape"]), tuple(case["modes"])
    grid = tuple(1 << (n - 1).bit_length() for n in shape)
    dtypes = spectral_dtypes("full", "cpu", torch.float64)
    torch.manual_seed(4)
    layer = SpectralConv(3, 2, modes).double()
    x = torch.randn(2, 3, *shape, dtype=torch.float64, requires_grad=True)
    g = torch.randn(2, 2, *shape, dtype=torch.float64)
    y = spectral_conv(x, layer.weight, modes, dtypes, grid, grid)
    (y * g).sum().backward()
    sharded = SpatialSpectralConv.from_serial(layer)
    cells = split_sizes(shape[0], parts)
    x_local = shard_input(x.detach(), context).clone().requires_grad_()
    y_local = dist_spectral_conv(
        x_local, sharded.weight, modes, dtypes, cells, sharded.mode_split, context, None, grid, grid
    )
    (y_local * shard_input(g, context)).sum().backward()
    start, stop = shard_range(modes[-1], parts, me)
    return {
        "output": rel(gather_output(y_local.detach(), context), y.detach()),
        "input_grad": rel(gather_output(x_local.grad, context), x.grad),
        "weight_grad": rel(
            sharded.weight.grad, layer.weight.grad.narrow(len(modes) - 1, start, stop - start)
        ),
        "unpadded": rel(y.detach(), spectral_conv(x.detach(), layer.weight.detach(), modes, dtypes)),
    }


def bad_cases() -> dict:
    """Each entry: the error message this rank raised (None: nothing raised -> test fails)."""
    context = get_context()
    parts = context.size("spatial")
    out: dict = {}

    def expect(name: str, fn) -> None:
        try:
            fn()
            out[name] = None
        except (ValueError, RuntimeError) as err:
            out[name] = f"{type(err).__name__}: {err}"

    expect("too_few_cells", lambda: shard_input(torch.zeros(1, 1, parts - 1, 8), context))
    expect(
        "too_few_modes",
        lambda: SpatialFNO(1, 1, [2, parts - 1], width=2, n_layers=1, projection_width=2),
    )
    torch.manual_seed(3)
    other = FNO(1, 1, [3, parts + 1], width=4, n_layers=1, projection_width=4).state_dict()
    model = SpatialFNO(1, 1, [3, parts], width=4, n_layers=1, projection_width=4)
    expect("other_modes", lambda: model.load_state_dict(other))
    # shards that do not form one grid (rank 0's unsharded dim differs): every rank must raise
    n = 9 if context.group_rank("spatial") == 0 else 8
    expect("mismatched_shards", lambda: slab_layout(torch.zeros(1, 1, 2, n), context))
    return out


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    torch.set_num_threads(1)
    context = init_context(device="cpu", spatial_size=spec["spatial"], timeout_s=spec.get("timeout_s", 60))
    result: dict = {"rank": context.rank, "fft": {}, "padded": {}, "models": {}}
    try:
        for case in spec.get("fft", []):
            result["fft"][case["name"]] = fft_case(case)
        for case in spec.get("padded", []):
            result["padded"][case["name"]] = padded_case(case)
        for case in spec.get("models", []):
            result["models"][case["name"]] = model_case(case)
        if spec.get("bad"):
            result["bad"] = bad_cases()
    except Exception:  # recorded for the test's message; the other ranks fail on the timeout
        result["error"] = traceback.format_exc()
        torch.save(result, Path(spec["out"]) / f"rank{context.rank}.pt")
        raise
    torch.save(result, Path(spec["out"]) / f"rank{context.rank}.pt")
    shutdown_context()


if __name__ == "__main__":
    main(sys.argv[1])
