"""Benchmark ensemble generation: wall time with 1 vs N dask workers, and Zarr write overhead.

Prints figures only (no asserts). Targets: speed-up >= 1.7x from 1 to 2 workers; writing <= 10 % of
simulation time (both measured inside the tasks). Wall times include starting the LocalCluster. On
a machine shared with other jobs, "cores the tasks got" shows how much CPU the workers really had.
Run from the repository root, e.g.::

    .venv/bin/python bench/bench_generate.py --samples 64 --resolution 64 --workers 1 2
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from data_gen.pipeline import generate
from data_gen.scenarios import default_space


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--geology", default="channel")
    parser.add_argument("--samples-per-chunk", type=int, default=4)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    space = default_space(args.geology, args.resolution)
    print(
        f"{args.samples} samples, {args.geology} geology, {args.resolution}x{args.resolution}, "
        f"{args.samples_per_chunk} samples per chunk; {os.cpu_count()} CPUs, "
        f"load average before: {os.getloadavg()[0]:.2f}"
    )
    walls = {}
    with tempfile.TemporaryDirectory(prefix="bench_generate_") as tmp:
        for workers in args.workers:
            report = generate(
                Path(tmp) / f"w{workers}.zarr",
                space,
                args.samples,
                args.seed,
                workers=workers,
                samples_per_chunk=args.samples_per_chunk,
                progress=False,
            )
            walls[workers] = report.wall_s
            print(
                f"workers={workers}: wall {report.wall_s:7.1f} s, "
                f"simulate {report.simulate_s:7.1f} s, write {report.write_s:5.2f} s "
                f"(write / simulate = {100 * report.write_s / report.simulate_s:.2f} %), "
                f"{report.simulate_s / args.samples:.2f} s per sample in a task, "
                f"{report.n_done}/{args.samples} done, load average now {os.getloadavg()[0]:.2f}"
            )
            # CPU time the tasks got per second of task wall time, summed over workers: about
            # `workers` on idle cores; lower when other processes share the cores.
            busy_s = report.simulate_s + report.write_s
            print(f"           cores the tasks got: {workers * report.cpu_s / busy_s:.2f} of {workers}")
    base = min(walls)
    for workers, wall in walls.items():
        if workers != base:
            print(f"speed-up {base} -> {workers} workers: {walls[base] / wall:.2f}x")


if __name__ == "__main__":
    main()
