"""Surrogate inference time per scenario against one simulation of the canonical case.

Canonical case: 64x64 cells of 15 m, 51 report times (0 ... 1000 d), channel geology, the
default wells and rate (``data_gen.physics.SimulationConfig()``). The simulation is timed with
``data_gen.physics.simulate``; the surrogate with ``Surrogate.predict`` on a batch of scenarios
(same rock, different rates), after a warm-up call, median over repeats, including input
encoding, transfers, clipping and the xarray result; the FNO forward pass alone is timed too.
Without ``--run-dir`` an untrained FNO of the given size stands in (inference time does not
depend on the weights). Prints figures; asserts nothing.

    .venv/bin/python bench/bench_inference.py --batch 32 --repeats 5
    .venv/bin/python bench/bench_inference.py --run-dir runs/channel64 --device cuda
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from ccs_fno.data import Normalisers
from ccs_fno.nn import FNO, reduced_dtype
from ccs_fno.surrogate import Surrogate, load_surrogate
from data_gen.physics import SimulationConfig, simulate
from data_gen.scenarios import default_space, sample_scenario


def canonical_case() -> tuple[np.ndarray, np.ndarray, SimulationConfig]:
    """Channel permeability (mD) of sample 0, porosity 0.25, the default simulation config."""
    config = SimulationConfig()
    scenario = sample_scenario(default_space("channel", resolution=config.grid.nx), 0, 0)
    return scenario.permeability_md(), scenario.porosity(), config


def untrained_surrogate(args: argparse.Namespace, k_md: np.ndarray, config: SimulationConfig):
    torch.manual_seed(0)
    times = config.report_times_days
    model = FNO(5, len(times), (args.modes, args.modes), args.width, args.layers, precision=args.precision)
    rates = np.linspace(50.0, 150.0, 8)
    normalisers = Normalisers.fit(k_md[None], np.full((1, *k_md.shape), 0.25), rates, config.grid)
    return Surrogate(model, normalisers, config.grid, times, 1.0, device=args.device)


def model_forward_s(surrogate: Surrogate, batch: int, shape: tuple[int, int], repeats: int) -> float:
    """Median time of the model alone on a device-resident batch (no encoding, no transfers)."""
    x = torch.randn(batch, surrogate.model.in_channels, *shape, device=surrogate.device)
    autocast = torch.autocast(
        surrogate.device.type,
        dtype=reduced_dtype(surrogate.device),
        enabled=surrogate.model.precision != "full",
    )
    times = []
    with torch.inference_mode(), autocast:
        for _ in range(repeats + 1):  # the first is a warm-up
            start = time.perf_counter()
            surrogate.model(x)
            if surrogate.device.type == "cuda":
                torch.cuda.synchronize(surrogate.device)
            times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", help="a trained run (default: an untrained FNO of the size below)")
    parser.add_argument("--batch", type=int, default=32, help="scenarios per predict call")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sim-repeats", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="full", choices=("full", "half", "mixed"))
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--modes", type=int, default=12)
    parser.add_argument("--layers", type=int, default=4)
    args = parser.parse_args()

    k_md, phi, config = canonical_case()
    sim_s = []
    for _ in range(args.sim_repeats):
        start = time.perf_counter()
        simulate(k_md, phi, config)
        sim_s.append(time.perf_counter() - start)
    sim = statistics.median(sim_s)

    if args.run_dir:
        surrogate = load_surrogate(args.run_dir, device=args.device, precision=args.precision)
    else:
        surrogate = untrained_surrogate(args, k_md, config)
    batch_k = np.broadcast_to(k_md, (args.batch, *k_md.shape))
    inputs = {
        "rate_m3_per_day": np.linspace(50.0, 150.0, args.batch),
        "injector_zx": config.injector_zx,
        "producer_zx": config.producer_zx,
        "porosity": phi,
        "batch_size": args.batch,
    }
    surrogate.predict(batch_k, **inputs)  # warm-up: allocations, contraction plans, cuFFT plans
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        surrogate.predict(batch_k, **inputs)
        times.append(time.perf_counter() - start)
    per_batch = statistics.median(times)
    per_scenario = per_batch / args.batch
    model_only = model_forward_s(surrogate, args.batch, k_md.shape, args.repeats)

    cfg = surrogate.model.config
    print(f"device {args.device}, torch threads {torch.get_num_threads()}, precision {args.precision}")
    print(
        f"FNO width {cfg['width']}, modes {cfg['modes']}, layers {cfg['n_layers']}; grid "
        f"{config.grid.nz}x{config.grid.nx}, {len(config.report_times_days)} report times"
    )
    print(f"simulation (data_gen.physics.simulate): {sim:.3f} s per scenario")
    print(
        f"surrogate: {per_batch * 1e3:.1f} ms per batch of {args.batch} = "
        f"{per_scenario * 1e3:.2f} ms per scenario"
    )
    print(f"  of which the FNO forward pass: {model_only * 1e3:.1f} ms per batch")
    print(f"speed-up: {sim / per_scenario:.0f}x (target >= 1000x)")


if __name__ == "__main__":
    main()
