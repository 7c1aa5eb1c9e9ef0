"""Spatial model parallelism (issue 10) on CPU: bytes, per-rank activation memory, scaling, projection.

Every measurement runs the sharded model (``ccs_fno.spatial.SpatialFNO``) in real ``torchrun``
processes (gloo, ``OMP_NUM_THREADS=1``, one thread per rank); the script launches them itself
(``python -m torch.distributed.run --standalone --nproc-per-node P bench/bench_spatial.py
--worker TASK SPEC``), collects one JSON per rank and prints tables. On a 2-core machine P = 4
is oversubscribed (4 processes, 2 cores): fine for bytes and memory, labelled in timings.

Subcommands:

``memory``  (bytes + activation memory) For P = 1, 2, 4 and each model (2-D canonical 64x64 and
    256x256: batch 8, in 2, out 51, width 32, 4 layers, modes 16x16; 3-D 64x64x32: batch 1,
    in 2, out 1 and out 51, width 32, modes 16x16x8), full and half precision (half on CPU:
    float32 FFTs, bfloat16 contraction and wire): one training step
    (forward, rank's part of the global MSE, backward) on each rank's z slab, measuring

    * bytes sent by the transposes (``comm_counter``: bytes this rank sent to other ranks,
      forward and backward), per Fourier layer = total / n_layers; next to the analytic
      ``transpose_bytes`` and the full-spectrum transpose of the dfno / physicsnemo scheme
      (``full_spectrum_bytes``; 2 transposes per layer forward, 2 backward);
    * saved bytes: unique storages saved for backward (``bench/activation_memory.saved_bytes``:
      saved-tensor hooks; parameters and the rank's input/target slabs excluded);
    * peak live bytes: the maximum, at op granularity, of the bytes of all torch storages
      created during the step and still alive (a TorchDispatchMode tracks each op's output
      storages with weak references): saved activations + transients (FFT buffers, gradient
      tensors, received all_to_all buffers, parameter gradients); parameters and the slabs
      allocated before the step are not counted. Gloo's internal buffers (not torch tensors)
      are not counted.

``scaling``  The seed paper's experiment scaled down: gradient (forward + loss + backward +
    ``reduce_replicated_grads``) of a 3-D FNO (in 2, out 1, width 16, 4 layers, modes 8x8x8,
    batch 2) on random input, P = 1, 2, 4 (4 oversubscribed). Weak scaling: z grows with P
    (32P x 48 x 48); strong: fixed 64 x 48 x 48. Time per gradient: per repeat, the slowest
    rank's time (barrier before), median over repeats. Communication share: time inside
    ``ccs_fno.spatial.fft._all_to_all`` (the packing + ``all_to_all_single`` that both the
    forward and the backward of the transpose autograd function call; there is no public
    timing hook, so the bench wraps that module attribute) plus the replicated-gradient
    all-reduce, over the step time, per rank, median over repeats. Waiting for a slower rank
    inside a collective counts as communication. Also the process CPU time per gradient
    (``time.process_time``) per rank and summed over ranks: the work sharding adds, which
    does not depend on the share of a loaded machine each process gets.

``project``  Paper projection for a Sleipner-size grid (64 x 118 x 263) x 51 times on 80 GB GPUs.
    Peak bytes per sample-cell and the batch-independent part are fitted from two 3-D grids
    (32x64x32 and 64x64x32, P = 1, measured in this process like ``memory``); the deviation
    from 1/P per rank is read from ``memory``'s output (RAW lines); bytes are analytic
    (``transpose_bytes`` vs ``full_spectrum_bytes``).

    .venv/bin/python bench/bench_spatial.py memory --out docs/results/spatial_memory.txt
    .venv/bin/python bench/bench_spatial.py scaling --repeats 7 --out docs/results/spatial_scaling.txt
    .venv/bin/python bench/bench_spatial.py project --memory docs/results/spatial_memory.txt \\
        --out docs/results/spatial_projection.txt
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from activation_memory import saved_bytes  # bench/ is on sys.path when run as a script
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

import ccs_fno.spatial.fft as spatial_fft
from ccs_fno.distributed import get_context, init_context, shutdown_context
from ccs_fno.nn import FNO
from ccs_fno.spatial import (
    SpatialFNO,
    comm_counter,
    full_spectrum_bytes,
    reduce_replicated_grads,
    split_sizes,
    transpose_bytes,
)

LAYERS = 4
# name: grid, batch, in, out, width, modes
MEMORY_MODELS: dict[str, dict[str, Any]] = {
    "2d-64 (canonical)": {"grid": [64, 64], "batch": 8, "out": 51, "width": 32, "modes": [16, 16]},
    "2d-256": {"grid": [256, 256], "batch": 8, "out": 51, "width": 32, "modes": [16, 16]},
    "3d-64x64x32": {"grid": [64, 64, 32], "batch": 1, "out": 1, "width": 32, "modes": [16, 16, 8]},
    "3d-64x64x32-t51": {"grid": [64, 64, 32], "batch": 1, "out": 51, "width": 32, "modes": [16, 16, 8]},
}
SCALING_MODEL = {"batch": 2, "out": 1, "width": 16, "modes": [8, 8, 8]}
IN_CHANNELS = 2
GB = 1e9
MB = 1e6


# ---------------------------------------------------------------------------------------------
# measurement helpers (run inside the workers)


class LivePeak(TorchDispatchMode):
    """Peak bytes of torch storages created while active and still alive, at op granularity."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, tuple[StorageWeakRef, int]] = {}
        self.current = 0
        self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        out = func(*args, **(kwargs or {}))
        dead = [key for key, (ref, _) in self.live.items() if ref.expired()]
        for key in dead:
            self.current -= self.live.pop(key)[1]
        for leaf in tree_leaves(out):
            if isinstance(leaf, torch.Tensor):
                storage = leaf.untyped_storage()
                key = storage.data_ptr()
                if key and key not in self.live:
                    self.live[key] = (StorageWeakRef(storage), storage.nbytes())
                    self.current += storage.nbytes()
        self.peak = max(self.peak, self.current)
        return out


@contextmanager
def timed_transposes(totals: list[float]) -> Iterator[None]:
    """Add the seconds spent in every transpose (forward and backward) to ``totals[0]``."""
    original = spatial_fft._all_to_all

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            totals[0] += time.perf_counter() - start

    spatial_fft._all_to_all = timed
    try:
        yield
    finally:
        spatial_fft._all_to_all = original


def build(spec: dict[str, Any], precision: str) -> SpatialFNO:
    torch.manual_seed(0)
    serial = FNO(IN_CHANNELS, spec["out"], spec["modes"], spec["width"], LAYERS, precision=precision)
    return SpatialFNO.from_fno(serial)


def slabs(spec: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, tuple[int, ...]]:
    """This rank's z slab of a random input and target (each rank reads only its part)."""
    context = get_context()
    parts, me = context.size("spatial"), context.group_rank("spatial")
    grid = spec["grid"]
    cells = split_sizes(grid[0], parts)
    g = torch.Generator().manual_seed(1 + me)
    x = torch.randn(spec["batch"], IN_CHANNELS, cells[me], *grid[1:], generator=g)
    y = torch.randn(spec["batch"], spec["out"], cells[me], *grid[1:], generator=g)
    return x, y, cells


def global_mse(grid: list[int]) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The rank's part of the global MSE (sum over the slab / global count): its gradient is the
    global loss's gradient restricted to the slab (``ccs_fno.spatial.model`` docstring)."""

    def loss(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (out - target).square().sum() / (out.shape[0] * out.shape[1] * math.prod(grid))

    return loss


def memory_case(name: str, spec: dict[str, Any], precision: str) -> dict[str, Any]:
    context = get_context()
    parts, me = context.size("spatial"), context.group_rank("spatial")
    model = build(spec, precision).train()
    x, y, cells = slabs(spec)
    counter = comm_counter()
    counter.reset()
    mode = LivePeak()
    start = time.perf_counter()
    with mode:
        saved = saved_bytes(model, x, y, global_mse(spec["grid"]))
    seconds = time.perf_counter() - start
    element = 4 if precision == "full" else 2  # CPU: float32 wire in full, bfloat16 in half
    width, modes = spec["width"], spec["modes"]
    analytic = transpose_bytes(spec["batch"], width, modes, cells, split_sizes(modes[-1], parts), me, element)
    full_one = full_spectrum_bytes(spec["batch"], width, spec["grid"], parts, 4)
    full_same = full_spectrum_bytes(spec["batch"], width, spec["grid"], parts, element)
    return {
        "model": name,
        "precision": precision,
        "parts": parts,
        "rank": me,
        "cells": cells[me],
        "saved": saved,
        "peak": mode.peak,
        "seconds": seconds,
        "comm_forward": counter.forward_bytes / LAYERS,
        "comm_backward": counter.backward_bytes / LAYERS,
        "transposes": counter.calls,
        "analytic_forward": analytic["forward"] + analytic["inverse"] if parts > 1 else 0,
        "analytic_backward": analytic["forward"] + analytic["inverse"] if parts > 1 else 0,
        # dfno / physicsnemo: the full half spectrum, one transpose forward + one inverse, same
        # again in backward; total over all ranks per layer
        "full_spectrum_fp32": 4 * full_one,
        "full_spectrum_same_dtype": 4 * full_same,
        "element": element,
    }


def scaling_case(kind: str, grid: list[int], repeats: int) -> dict[str, Any]:
    context = get_context()
    spec = SCALING_MODEL | {"grid": grid}
    model = build(spec, "full").train()
    x, y, _ = slabs(spec)
    loss_fn = global_mse(grid)
    steps, comm, shares, cpu = [], [], [], []
    for i in range(repeats + 2):  # two warm-up gradients
        totals = [0.0]
        context.barrier()
        cpu_start = time.process_time()
        start = time.perf_counter()
        with timed_transposes(totals):
            model.zero_grad(set_to_none=True)
            loss_fn(model(x), y).backward()
        reduce_start = time.perf_counter()
        reduce_replicated_grads(model)
        end = time.perf_counter()
        cpu_end = time.process_time()
        step = end - start
        comm_s = totals[0] + (end - reduce_start)
        if i >= 2:
            steps.append(step)
            comm.append(comm_s)
            shares.append(comm_s / step)
            cpu.append(cpu_end - cpu_start)
    slowest = torch.tensor(steps, dtype=torch.float64)
    if context.distributed:
        torch.distributed.all_reduce(slowest, op=torch.distributed.ReduceOp.MAX)
    return {
        "kind": kind,
        "grid": grid,
        "parts": context.size("spatial"),
        "rank": context.group_rank("spatial"),
        "step_median": statistics.median(slowest.tolist()),
        "step_min": min(slowest.tolist()),
        "own_step_median": statistics.median(steps),
        "comm_median": statistics.median(comm),
        "share_median": statistics.median(shares),
        "cpu_median": statistics.median(cpu),
    }


def worker(task: str, spec_path: str) -> None:
    torch.set_num_threads(1)
    spec = json.loads(Path(spec_path).read_text())
    parts = int(os.environ.get("WORLD_SIZE", "1"))
    context = init_context(device="cpu", spatial_size=parts, timeout_s=240)
    result: dict[str, Any] = {"rank": context.rank}
    try:
        if task == "memory":
            result["cases"] = [
                memory_case(name, MEMORY_MODELS[name], precision)
                for name in spec["models"]
                for precision in spec["precisions"]
            ]
        else:
            cases = [("weak", [32 * parts, *spec["plane"]]), ("strong", [64, *spec["plane"]])]
            result["cases"] = [scaling_case(kind, grid, spec["repeats"]) for kind, grid in cases]
    except Exception:  # noqa: BLE001 -- reported by the launcher
        result["error"] = traceback.format_exc()
    Path(spec["out"], f"rank{context.rank}.json").write_text(json.dumps(result))
    shutdown_context()


# ---------------------------------------------------------------------------------------------
# launcher and reports


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def launch(task: str, parts: int, spec: dict[str, Any], log: Callable[[str], None]) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        spec = spec | {"out": tmp}
        spec_path = Path(tmp, "spec.json")
        spec_path.write_text(json.dumps(spec))
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        command += ["--nproc-per-node", str(parts), __file__, "--worker", task, str(spec_path)]
        log(f"# launch P={parts}: {' '.join(command[1:])}   [{uptime()}]")
        env = os.environ | {"OMP_NUM_THREADS": "1"}
        start = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        results = [json.loads(p.read_text()) for p in sorted(Path(tmp).glob("rank*.json"))]
        log(f"# done P={parts} in {time.perf_counter() - start:.1f} s   [{uptime()}]")
    errors = [r["error"] for r in results if "error" in r]
    if done.returncode or errors or len(results) != parts:
        raise RuntimeError(f"P={parts} failed (rc {done.returncode}): {errors[:1]} {done.stderr[-3000:]}")
    return results


def header(log: Callable[[str], None]) -> None:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "?",
    )
    log(f"# torch {torch.__version__}, {os.cpu_count()} cores ({cpu}), one thread per rank, gloo")
    log(f"# {uptime()}")


def memory_report(parts_list: list[int], models: list[str], log: Callable[[str], None]) -> dict[str, Any]:
    spec = {"models": models, "precisions": ["full", "half"]}
    rows: list[dict[str, Any]] = []
    for parts in parts_list:
        for result in launch("memory", parts, spec, log):
            rows.extend(result["cases"])
    for row in rows:
        log("RAW " + json.dumps(row))

    def by(model: str, precision: str, parts: int) -> list[dict[str, Any]]:
        found = [r for r in rows if (r["model"], r["precision"], r["parts"]) == (model, precision, parts)]
        return sorted(found, key=lambda r: r["rank"])

    log("\n## Bytes per Fourier layer (forward + backward), all ranks together")
    log("# ours = transposes of the retained modes only (comm_counter, measured; analytic transpose_bytes);")
    log("# full = dfno/physicsnemo full half-spectrum transpose (full_spectrum_bytes, fp32, analytic)")
    log(
        f"{'model':<18} {'prec':<5} {'P':>2} {'ours measured':>14} {'ours analytic':>14} "
        f"{'full fp32':>12} {'ours/full':>9} {'half/full prec':>14}"
    )
    summary: dict[str, Any] = {"bytes": [], "memory": []}
    for model in models:
        for parts in [p for p in parts_list if p > 1]:
            measured_full = None
            for precision in ("full", "half"):
                ranks = by(model, precision, parts)
                measured = sum(r["comm_forward"] + r["comm_backward"] for r in ranks)
                analytic = sum(r["analytic_forward"] + r["analytic_backward"] for r in ranks)
                full = ranks[0]["full_spectrum_fp32"]
                measured_full = measured_full or measured
                log(
                    f"{model:<18} {precision:<5} {parts:>2} {measured / MB:11.3f} MB "
                    f"{analytic / MB:11.3f} MB {full / MB:9.3f} MB {measured / full:9.4f} "
                    f"{measured / measured_full:14.3f}"
                )
                summary["bytes"].append(
                    {
                        "model": model,
                        "precision": precision,
                        "parts": parts,
                        "measured": measured,
                        "analytic": analytic,
                        "full_fp32": full,
                    }
                )

    log("\n## Per-rank activation memory of one training step (max over ranks; ratio to P=1)")
    log("# saved = unique storages saved for backward; peak = peak live torch storages created in the step")
    log(
        f"{'model':<18} {'prec':<5} {'P':>2} {'saved MB':>9} {'ratio':>6} {'peak MB':>9} {'ratio':>6} "
        f"{'1/P':>5} {'step s':>7}"
    )
    for model in models:
        for precision in ("full", "half"):
            base = by(model, precision, 1)[0]
            for parts in parts_list:
                ranks = by(model, precision, parts)
                saved = max(r["saved"] for r in ranks)
                peak = max(r["peak"] for r in ranks)
                seconds = max(r["seconds"] for r in ranks)
                log(
                    f"{model:<18} {precision:<5} {parts:>2} {saved / MB:9.1f} {saved / base['saved']:6.3f} "
                    f"{peak / MB:9.1f} {peak / base['peak']:6.3f} {1 / parts:5.2f} {seconds:7.2f}"
                )
                spec_m = MEMORY_MODELS[model]
                summary["memory"].append(
                    {
                        "model": model,
                        "precision": precision,
                        "parts": parts,
                        "saved": saved,
                        "peak": peak,
                        "saved_ratio": saved / base["saved"],
                        "peak_ratio": peak / base["peak"],
                        "sample_cells": spec_m["batch"] * math.prod(spec_m["grid"]),
                        **spec_m,
                    }
                )
    return summary


def scaling_report(parts_list: list[int], repeats: int, plane: list[int], log: Callable[[str], None]) -> None:
    spec = {"repeats": repeats, "plane": plane}
    rows = []
    for parts in parts_list:
        for result in launch("scaling", parts, spec, log):
            rows.extend(result["cases"])
    for row in rows:
        log("RAW " + json.dumps(row))
    log(
        f"\n## Gradient of a 3-D FNO (width {SCALING_MODEL['width']}, modes {SCALING_MODEL['modes']}, "
        f"batch {SCALING_MODEL['batch']}, {LAYERS} layers), median of {repeats}; "
        "P=4 is OVERSUBSCRIBED (4 ranks, 2 cores)"
    )
    log(
        f"{'scaling':<7} {'P':>2} {'grid':<14} {'s/gradient':>10} {'min':>7} {'vs P=1':>7} "
        f"{'comm s':>7} {'comm share':>10} {'CPU s/rank':>10} {'CPU s total':>11} {'vs P=1':>7}"
    )
    for kind in ("weak", "strong"):
        base = base_cpu = None
        for parts in parts_list:
            ranks = [r for r in rows if r["kind"] == kind and r["parts"] == parts]
            step = ranks[0]["step_median"]
            base = base or step
            comm = statistics.mean(r["comm_median"] for r in ranks)
            share = statistics.mean(r["share_median"] for r in ranks)
            cpu_rank = max(r["cpu_median"] for r in ranks)
            cpu_total = sum(r["cpu_median"] for r in ranks)
            base_cpu = base_cpu or cpu_total
            label = f"{parts}{'*' if parts > (os.cpu_count() or 1) else ''}"
            grid = "x".join(map(str, ranks[0]["grid"]))
            log(
                f"{kind:<7} {label:>2} {grid:<14} {step:10.3f} {ranks[0]['step_min']:7.3f} "
                f"{step / base:7.2f} {comm:7.3f} {share:10.1%} {cpu_rank:10.3f} {cpu_total:11.3f} "
                f"{cpu_total / base_cpu:7.2f}"
            )
    log("# vs P=1: time ratio (weak: ideal 1.00; strong: ideal 1/P). * = oversubscribed")
    log(
        "# CPU s = process CPU time (time.process_time, all threads of the rank) per gradient, median;\n"
        "# total over ranks vs P=1 (weak: ideal P; strong: ideal 1.00): the work added by sharding,\n"
        "# independent of how much of the shared machine each process got"
    )


def project_report(memory_file: str, log: Callable[[str], None]) -> None:
    rows = [
        json.loads(line[4:]) for line in Path(memory_file).read_text().splitlines() if line.startswith("RAW ")
    ]
    if not rows:
        raise SystemExit(f"{memory_file} has no RAW lines: run the memory subcommand first")
    torch.set_num_threads(1)
    grid = [263, 118, 64]  # z (split, longest) x y x last (rfft) dim
    times, width, modes, hbm = 51, 32, [16, 16, 16], 80e9
    cells = math.prod(grid)
    log(
        f"# Sleipner-size grid 64x118x263 = {cells:,} cells, x {times} times; 80 GB GPUs; layout z = 263 "
        "(split dim), 118, 64 (rfft dim);\n# FNO in 2, width 32, 4 layers, projection 128, modes 16x16x16, "
        "AdamW; batch = samples per spatial group"
    )
    models = {"3-D, time = 51 out channels": "3d-64x64x32-t51", "4-D space-time, 51x cells": "3d-64x64x32"}

    # 1/P scaling: worst measured (per-rank peak at P) x P / (peak at P=1) in the memory run
    overhead = {}
    for model in models.values():
        for precision in ("full", "half"):
            peak = {r["parts"]: r["peak"] for r in rows if (r["model"], r["precision"]) == (model, precision)}
            for r in rows:
                if (r["model"], r["precision"]) == (model, precision):
                    peak[r["parts"]] = max(peak[r["parts"]], r["peak"])
            overhead[model, precision] = max(peak[p] * p / peak[1] for p in peak)

    # bytes per sample-cell, two bounds, measured at P=1 in this process on two grids:
    # low = slope of the saved activations (what must be kept, per cell); high = the whole peak
    # of the 64x64x32 step divided by its cells (fixed parts and transients counted per cell)
    log("\n## Per-cell bytes (this process, P=1, batch 1; grids 32x64x32 and 64x64x32)")
    log(
        f"{'model':<16} {'prec':<5} {'saved/cell slope':>16} {'saved fixed MB':>14} "
        f"{'peak/cell 64x64x32':>18} {'peak MB':>8} {'ovh':>6}"
    )
    bounds = {}
    for model in models.values():
        for precision in ("full", "half"):
            spec = MEMORY_MODELS[model]
            small = memory_case(model, spec | {"grid": [32, 64, 32]}, precision)
            large = memory_case(model, spec, precision)
            n_small, n_large = 32 * 64 * 32, 64 * 64 * 32
            slope = (large["saved"] - small["saved"]) / (n_large - n_small)
            bounds[model, precision] = (slope, large["peak"] / n_large)
            log(
                f"{model:<16} {precision:<5} {slope:16.0f} {(large['saved'] - slope * n_large) / MB:14.1f} "
                f"{large['peak'] / n_large:18.0f} {large['peak'] / MB:8.1f} {overhead[model, precision]:6.3f}"
            )
    n_modes = math.prod(2 * m - 1 for m in modes[:-1]) * modes[-1]
    param_bytes = LAYERS * n_modes * width * width * 2 * 4
    log(
        f"# Sleipner model: spectral weights {param_bytes / GB:.2f} GB fp32; with gradient + 2 AdamW moments "
        f"{4 * param_bytes / GB:.2f} GB, split by mode block over P (replicated 1x1 layers: < 1 MB)"
    )
    log(
        f"\n{'layout':<28} {'prec':<5} {'batch':>5} {'act. GB low-high (P=1)':>22} {'P needed low-high':>17} "
        f"{'limit ok':>8}"
    )
    for layout, model in models.items():
        n = cells * (times if model == "3d-64x64x32" else 1)
        for batch in (1, 8) if model != "3d-64x64x32" else (1,):
            for precision in ("full", "half"):
                factor = overhead[model, precision]
                acts = [cell * n * batch for cell in bounds[model, precision]]
                need = [
                    next(p for p in range(1, 100_000) if (a * factor + 4 * param_bytes) / p <= 0.9 * hbm)
                    for a in acts
                ]
                ok = "yes" if max(need) <= min(grid[0], modes[-1]) else "NO"
                log(
                    f"{layout:<28} {precision:<5} {batch:>5} {acts[0] / GB:10.1f} - {acts[1] / GB:9.1f} "
                    f"{need[0]:>8} - {need[1]:<6} {ok:>8}"
                )
    log(
        "# per rank = (activations x ovh + 4 x fp32 spectral weights) / P; P needed = smallest P with that\n"
        "# <= 72 GB (90 % of 80 GB). low: saved-activation bytes per cell (slope over two grids); high: the\n"
        "# whole measured peak of the 64x64x32 step per cell (transients, weight gradients, bf16 weight\n"
        "# copies included). ovh = worst measured per-rank peak x P / peak at P=1 in the memory run\n"
        "# (1.000 = ideal 1/P). limit ok: P <= modes[-1] = 16 and <= 263 planes (slab decomposition, mode\n"
        "# blocks along the last dim).\n"
        "# The 4-D row assumes a space-time FNO (not implemented here) costs per cell what our 3-D one\n"
        "# does; half = the CPU bf16 measurement (FFTs in fp32 there, fp16 on CUDA)."
    )
    log("\n## Bytes per Fourier layer (fwd + bwd, all ranks, batch 1), 3-D layout, analytic")
    log(f"{'P':>3} {'ours fp32 MB':>12} {'ours 16-bit MB':>14} {'full-spectrum fp32 MB':>21} {'ratio':>7}")
    for parts in (2, 4, 8, 16):
        cells_p = split_sizes(grid[0], parts)
        mode_split = split_sizes(modes[-1], parts)
        ours = {
            e: sum(
                2 * sum(transpose_bytes(1, width, modes, cells_p, mode_split, r, e).values())
                for r in range(parts)
            )
            for e in (4, 2)
        }
        full = 4 * full_spectrum_bytes(1, width, grid, parts, 4)
        log(f"{parts:>3} {ours[4] / MB:12.1f} {ours[2] / MB:14.1f} {full / MB:21.1f} {ours[4] / full:7.3f}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    memory = sub.add_parser("memory", help="bytes per Fourier layer and per-rank activation memory")
    memory.add_argument("--parts", type=int, nargs="+", default=[1, 2, 4])
    memory.add_argument("--models", nargs="+", default=list(MEMORY_MODELS), choices=list(MEMORY_MODELS))
    scaling = sub.add_parser("scaling", help="weak/strong scaling of a 3-D FNO gradient")
    scaling.add_argument("--parts", type=int, nargs="+", default=[1, 2, 4])
    scaling.add_argument("--repeats", type=int, default=7)
    scaling.add_argument("--plane", type=int, nargs=2, default=[48, 48])
    project = sub.add_parser("project", help="P needed for a Sleipner-size model (from memory's output)")
    project.add_argument("--memory", default="docs/results/spatial_memory.txt")
    for p in (memory, scaling, project):
        p.add_argument("--out", help="also write the report here")
    args = parser.parse_args()
    lines: list[str] = []

    def log(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    log(f"$ {' '.join([Path(sys.executable).name, *sys.argv])}")
    header(log)
    if args.command == "memory":
        assert args.parts[0] == 1, "the ratios need P=1 first"
        memory_report(args.parts, args.models, log)
    elif args.command == "scaling":
        scaling_report(args.parts, args.repeats, args.plane, log)
    else:
        project_report(args.memory, log)
    log(f"# end [{uptime()}]")
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
