"""Wall time of one canonical simulation (64x64 channel, 51 report times) on one core.

Usage: python bench/bench_simulator.py [--repeats 5] [--seed 7] [--pressure]
Run it pinned to one core for the figure in docs/benchmarks.md:
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 taskset -c 0 python bench/bench_simulator.py
Target: <= 1.0 s per simulation.
"""

from __future__ import annotations

import argparse
import statistics
import time

from data_gen.geology import ChannelParams, channel_permeability
from data_gen.grid import Grid
from data_gen.physics import SimulationConfig, simulate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--pressure", action="store_true", help="also solve and record pressure at report times"
    )
    args = parser.parse_args()
    grid = Grid()
    k = channel_permeability(grid, ChannelParams(), args.seed)
    config = SimulationConfig(grid=grid)
    simulate(k, 0.25, config, record_pressure=args.pressure)  # warm-up: imports, caches
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        result = simulate(k, 0.25, config, record_pressure=args.pressure)
        times.append(time.perf_counter() - start)
    print(f"grid {grid.nz}x{grid.nx}, {len(config.report_times_days)} report times, pressure={args.pressure}")
    print(f"transport steps {result.n_steps}, pressure solves {result.n_pressure_solves}")
    print(
        f"wall time per simulation: median {statistics.median(times):.3f} s, "
        f"min {min(times):.3f} s over {args.repeats} runs (target <= 1.0 s)"
    )


if __name__ == "__main__":
    main()
