"""Spatial model parallelism on real torchrun processes (gloo, CPU) against the serial FNO.

One torchrun launch per spatial size P (2 and 4) runs every case (tests/spatial_worker.py): the
distributed FFT alone vs ``torch.fft.rfftn``/``irfftn`` (values, gradients); ``SpatialFNO`` vs
``FNO`` on 2-D and 3-D grids, even and uneven splits of cells and modes: output, input gradient
and every weight gradient (gathered), the gathered state dict loaded into a serial FNO, the
transpose bytes measured vs analytic; bad input refused on every rank. Each rank writes its own
errors and the test checks all of them.

Half/mixed tolerance (CPU: float32 FFTs, bfloat16 contraction, spectra on the wire in bfloat16):
the sharded half model differs from the serial half model by the bfloat16 rounding of the
transposed spectra, which is of the size of the serial half model's own error w.r.t. full
precision. Checked: relative max error <= HALF_TOL (outputs, input and weight gradients), and
<= 2x the serial half model's error vs the full-precision model + 1e-2.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from torchrun import torchrun

from ccs_fno.distributed import get_context
from ccs_fno.spatial import (
    SpatialFNO,
    full_state_dict,
    gather_output,
    reduce_replicated_grads,
    shard_input,
    spatial_sum,
    split_sizes,
    transpose_bytes,
)

WORKER = Path(__file__).with_name("spatial_worker.py")
TIMEOUT_S = 150
TOLERANCE = {"float64": 1e-10, "float32": 1e-5}
HALF_TOL = 5e-2
ENV = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parent)}

FFT_CASES = [
    {"name": "2d-even", "shape": [16, 12], "modes": [4, 5]},
    {"name": "2d-uneven", "shape": [15, 10], "modes": [4, 4]},
    {"name": "3d", "shape": [8, 6, 8], "modes": [3, 2, 4]},
]

# Fourier padding to powers of two (the float16 cuFFT path) exercised in float64 on CPU
PADDED_CASES = [
    {"name": "2d", "shape": [15, 10], "modes": [4, 4]},
    {"name": "3d", "shape": [7, 6, 7], "modes": [3, 2, 4]},
]


def _models(parts: int) -> list[dict]:
    """2-D and 3-D, even and uneven splits of cells (z) and of modes (last dim) for P = parts."""
    if parts == 2:
        grids = {"2d-even": ([16, 12], [4, 3]), "2d-uneven": ([15, 10], [4, 4]), "3d": ([7, 6, 6], [3, 2, 3])}
    else:
        grids = {"2d-even": ([16, 12], [4, 5]), "2d-uneven": ([15, 10], [4, 4]), "3d": ([8, 6, 8], [3, 2, 4])}
    cases = []
    for name, (shape, modes) in grids.items():
        base = {"shape": shape, "modes": modes}
        cases.append(base | {"name": f"{name}-f64-batchnorm", "dtype": "float64", "norm": "batch"})
        cases.append(base | {"name": f"{name}-f64", "dtype": "float64"})
    shape, modes = grids["2d-uneven"]
    rel_l2 = {"name": "2d-uneven-f64-rel_l2", "dtype": "float64", "norm": "batch", "loss": "rel_l2"}
    cases.append(rel_l2 | {"shape": shape, "modes": modes})
    for name in ("2d-uneven", "3d"):
        shape, modes = grids[name]
        base = {"shape": shape, "modes": modes, "dtype": "float32"}
        cases.append(base | {"name": f"{name}-f32", "norm": "batch"})
        for precision in ("half", "mixed"):
            cases.append(
                base | {"name": f"{name}-{precision}", "precision": precision, "reference_full": True}
            )
    return cases


@pytest.fixture(scope="module", params=[2, 4], ids=lambda p: f"P{p}")
def ranks(request, tmp_path_factory) -> tuple[int, list[dict]]:
    """Per-rank results of one torchrun launch with ``P`` processes (one spatial group)."""
    parts = request.param
    out = tmp_path_factory.mktemp(f"spatial{parts}")
    spec = {
        "out": str(out),
        "spatial": parts,
        "fft": FFT_CASES,
        "padded": PADDED_CASES,
        "models": _models(parts),
        "bad": True,
    }
    (out / "spec.json").write_text(json.dumps(spec))
    done = torchrun(parts, str(WORKER), str(out / "spec.json"), env=ENV, timeout=TIMEOUT_S)
    results = [torch.load(f, weights_only=False) for f in sorted(out.glob("rank*.pt"))]
    errors = [r["error"] for r in results if "error" in r]
    assert done.returncode == 0 and not errors, (errors or [""])[0] + done.stderr[-4000:]
    assert len(results) == parts
    return parts, results


def test_distributed_fft_matches_rfftn(ranks):
    parts, results = ranks
    for result in results:
        assert set(result["fft"]) == {c["name"] for c in FFT_CASES}
        for name, errors in result["fft"].items():
            for what, err in errors.items():
                assert err <= 1e-12, (parts, result["rank"], name, what, err)


def test_fourier_padding_path_matches_serial(ranks):
    """The float16-cuFFT code path (pad to powers of two, n_0 after the transpose) = serial."""
    parts, results = ranks
    for result in results:
        assert set(result["padded"]) == {c["name"] for c in PADDED_CASES}
        for name, errors in result["padded"].items():
            for what, err in errors.items():
                assert err <= 1e-10, (parts, result["rank"], name, what, err)


def _model_cases(results: list[dict], precision: str):
    for result in results:
        for name, case in result["models"].items():
            if (precision == "full") == (name.endswith(("f64", "f32", "batchnorm", "rel_l2"))):
                yield result["rank"], name, case


def test_sharded_fno_matches_serial(ranks):
    """float64 <= 1e-10, float32 <= 1e-5: output, input gradient, EVERY weight gradient."""
    parts, results = ranks
    seen = 0
    for rank, name, case in _model_cases(results, "full"):
        tol = TOLERANCE["float32" if "f32" in name else "float64"]
        where = (parts, rank, name)
        assert case["output"] <= tol, (*where, "output", case["output"])
        assert case["input_grad"] <= tol, (*where, "input_grad", case["input_grad"])
        assert case["grads"] and max(case["grads"].values()) <= tol, (*where, case["grads"])
        assert case["state_keys"] and case["state"] <= tol, (*where, "state", case["state"])
        assert case["reloaded"] <= tol, (*where, "reloaded", case["reloaded"])
        seen += 1
    assert seen == parts * 9


def test_sharded_half_and_mixed_within_documented_tolerance(ranks):
    parts, results = ranks
    seen = 0
    for rank, name, case in _model_cases(results, "half"):
        own = case["serial_vs_full"]
        for what in ("output", "input_grad"):
            bound = min(HALF_TOL, 2 * own[what] + 1e-2)
            assert case[what] <= bound, (parts, rank, name, what, case[what], own)
        worst = max(case["grads"].values())
        assert worst <= min(HALF_TOL, 2 * own["grads"] + 1e-2), (parts, rank, name, case["grads"], own)
        seen += 1
    assert seen == parts * 4


def test_bytes_measured_equal_analytic_and_halve_in_half(ranks):
    parts, results = ranks
    for result in results:
        for name, case in result["models"].items():
            count = case["bytes"]
            assert count["forward"] == count["analytic"] > 0, (parts, result["rank"], name, count)
            assert count["backward"] == count["analytic"], (parts, result["rank"], name, count)
            expected = {"half": "torch.bfloat16", "mixed": "torch.bfloat16", "f32": "torch.float32"}
            suffix = name.rsplit("-", 1)[-1]
            assert count["wire_dtype"] == expected.get(suffix, "torch.float64"), (name, count)
        half, single = result["models"]["3d-half"]["bytes"], result["models"]["3d-f32"]["bytes"]
        assert 2 * half["forward"] == single["forward"]


def test_bad_input_fails_on_every_rank(ranks):
    parts, results = ranks
    for result in results:
        bad = result["bad"]
        assert bad["too_few_cells"] and f"size {parts - 1}" in bad["too_few_cells"], bad
        assert "spatial parallel size <=" in bad["too_few_cells"]
        assert bad["too_few_modes"] and "modes[-1]" in bad["too_few_modes"], bad
        assert bad["other_modes"] and f"modes (3, {parts + 1})" in bad["other_modes"], bad
        assert "FNO(**config)" in bad["other_modes"]
        assert bad["mismatched_shards"] and "do not form one grid" in bad["mismatched_shards"], bad


def test_serial_context_is_the_serial_model():
    """With one process every helper is the identity and SpatialFNO is FNO, to the bit."""
    assert get_context().size("spatial") == 1
    torch.manual_seed(0)
    config = {"in_channels": 2, "out_channels": 2, "modes": [3, 3, 2], "width": 4, "n_layers": 2}
    from ccs_fno.nn import FNO

    serial = FNO(**config, projection_width=4, norm="batch").double()
    sharded = SpatialFNO.from_fno(serial)
    x = torch.randn(1, 2, 6, 5, 4, dtype=torch.float64)
    assert shard_input(x) is x and gather_output(x) is x and spatial_sum(x) is x
    torch.testing.assert_close(sharded(x), serial(x), rtol=0, atol=1e-14)
    reduce_replicated_grads(sharded)
    state = full_state_dict(sharded)
    assert all(torch.equal(state[k], v) for k, v in sharded.state_dict().items())


def test_split_sizes_and_analytic_bytes():
    assert split_sizes(15, 4) == (4, 4, 4, 3)
    assert split_sizes(3, 2) == (2, 1)
    # rank 1 of (8, 7) planes, modes (4, 3) split (2, 1): keeps its 1 mode of 3 for its 7 planes
    counts = transpose_bytes(2, 6, [4, 3], (8, 7), (2, 1), 1, 4)
    assert counts == {"forward": 2 * 6 * 2 * 4 * 7 * 2, "inverse": 2 * 6 * 2 * 4 * 8 * 1}
