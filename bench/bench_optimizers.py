"""Time to target, AdamW vs SOAP, at several global batch sizes (issue 9).

Every run trains the same model on the same store, split and initialisation (seed 0) with the
real ``Trainer`` (one process, full precision, float32, one thread) and stops at the end of the
first epoch whose validation relative L2 is <= ``--target`` (a hook raises a private exception in
``on_epoch_end``; that epoch's checkpoint is already written) or once the run's wall time (sum of
``epoch_time_s``: training + validation, no checkpoint writing) reaches ``--budget-s``.

Learning rate: ``lr(B) = base * sqrt(B / 16)`` (the square-root rule for Adam-type methods), base
``--adamw-lr`` / ``--soap-lr``. The schedule is constant (``scheduler="step"``, ``gamma=1``): a
cosine schedule over a fixed horizon makes the learning rate at any epoch, and so the time to
target, depend on that horizon, which differs between batch sizes and optimisers in a wall-time
budget. The two optimisers of one batch size run back to back (order alternating between batch
sizes) so load on a shared machine hits both alike.

Also reported: time per step in each run (data loading from Zarr included), of one
``Trainer.train_step`` on an in-memory batch (forward + backward + optimiser step), and of
``optimizer.step()`` alone on the model's parameters with fixed gradients (SOAP's
preconditioner cost, refresh every 10 steps included), both optimisers interleaved over rounds.

    .venv/bin/ccs-fno generate /work/bench_data/opt32.zarr --samples 640 --geology channel \\
        --resolution 32 --seed 21 --workers 2
    # calibration: AdamW at B=16 with no target; proposes the value reached at 60 % of the budget
    .venv/bin/python bench/bench_optimizers.py /work/bench_data/opt32.zarr --calibrate --budget-s 150 \\
        --out docs/results/optimizers_calibration.txt
    .venv/bin/python bench/bench_optimizers.py /work/bench_data/opt32.zarr --target 0.30 \\
        --budget-s 120 150 240 --levels 0.6 0.5 0.4 0.35 --out docs/results/optimizers.txt

``--budget-s`` takes one value per ``--batches`` entry (default 16 64 256); ``--levels`` adds a
table of steps / wall time to looser validation levels, read off the same runs.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transcript import Transcript, cpu_model  # bench/ on sys.path

from ccs_fno.data import INPUT_CHANNELS
from ccs_fno.optim import build_optimizer
from ccs_fno.train import Trainer
from ccs_fno.train_config import ModelConfig, TrainConfig

MODEL = ModelConfig(width=16, modes=8, n_layers=4, projection_width=64)
OPTIMIZERS = ("adamw", "soap")
BASE_BATCH = 16


class _Stop(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised by the hook to end a run; ``reason`` is "target" or "budget"."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Result:
    optimizer: str
    batch: int
    lr: float
    reached: bool = False
    epochs: int = 0
    steps: int = 0
    wall_s: float = 0.0  # train + val time up to the stop
    train_s: float = 0.0
    best_val: float = math.inf
    curve: list[tuple[int, float, float]] = field(default_factory=list)  # (epoch, wall_s, val)
    load: str = ""

    @property
    def step_ms(self) -> float:
        return 1e3 * self.train_s / max(self.steps, 1)


class StopHook:
    """Tracks the run and stops it at the target or when the wall-time budget is spent."""

    def __init__(self, result: Result, target: float | None, budget_s: float, say: Transcript) -> None:
        self.result, self.target, self.budget_s, self.say = result, target, budget_s, say

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        r = self.result
        steps = len(trainer.train_loader)
        r.epochs, r.steps = record["epoch"], r.steps + steps
        r.wall_s += record["epoch_time_s"]
        r.train_s += steps * trainer.config.batch_size / record["samples_per_s"]
        val = record["val_rel_l2"] if record["val_rel_l2"] is not None else math.inf
        r.best_val = min(r.best_val, val)
        r.curve.append((r.epochs, r.wall_s, val))
        self.say(
            f"  {r.optimizer:5s} B={r.batch:<4d} epoch {r.epochs:4d} steps {r.steps:6d} "
            f"t {r.wall_s:7.1f} s  train {record['train_loss']:.4f}  val {val:.4f}"
        )
        if self.target is not None and val <= self.target:
            r.reached = True
            raise _Stop("target")
        if r.wall_s >= self.budget_s:
            raise _Stop("budget")


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def scaled_lr(base: float, batch: int) -> float:
    return base * math.sqrt(batch / BASE_BATCH)


def train_run(
    store: str, optimizer: str, batch: int, lr: float, target: float | None, budget_s: float, say: Transcript
) -> Result:
    result = Result(optimizer, batch, lr, load=load_average())
    config = TrainConfig(
        epochs=100_000,  # an upper bound only: the hook stops the run
        batch_size=batch,
        lr=lr,
        weight_decay=1e-4,
        scheduler="step",
        gamma=1.0,  # constant learning rate; see the module docstring
        optimizer=optimizer,
        precision_schedule="full",
        dtype="float32",
        device="cpu",
        seed=0,
        split_seed=0,
    )
    say(f"run {optimizer} B={batch} lr={lr:.3g} (load average {result.load})")
    with tempfile.TemporaryDirectory(prefix=f"bench_opt_{optimizer}_{batch}_") as tmp:
        hook = StopHook(result, target, budget_s, say)
        trainer = Trainer.start(store, Path(tmp) / "run", config, MODEL, hooks=[hook])
        try:
            trainer.fit(progress=False)
        except _Stop as stop:
            say(f"  stopped: {stop.reason}")
    result.load += f" -> {load_average()}"
    return result


def optimizer_step_ms(rounds: int, steps: int) -> dict[str, float]:
    """Median ms of ``optimizer.step()`` alone, each optimiser in turn every round."""
    torch.manual_seed(0)
    states = {}
    for name in OPTIMIZERS:
        model = MODEL.build(len(INPUT_CHANNELS), 10, "full")
        for p in model.parameters():
            p.grad = torch.randn_like(p) * 1e-2
        states[name] = build_optimizer(name, model.parameters(), 1e-3, 1e-4)
        for _ in range(steps):  # warm-up: SOAP builds its preconditioner on the first steps
            states[name].step()
    times: dict[str, list[float]] = {name: [] for name in OPTIMIZERS}
    for _ in range(rounds):
        for name, opt in states.items():
            start = time.perf_counter()
            for _ in range(steps):
                opt.step()
            times[name].append(1e3 * (time.perf_counter() - start) / steps)
    return {name: statistics.median(t) for name, t in times.items()}


def train_step_ms(store: str, batches: list[int], rounds: int) -> dict[tuple[str, int], float]:
    """Median ms of one ``Trainer.train_step`` (forward, backward, optimiser step) on a real batch
    already in memory (no data loading), both optimisers in turn every round."""
    medians = {}
    for batch in batches:
        with tempfile.TemporaryDirectory(prefix="bench_opt_step_") as tmp:
            steppers = {}
            for name in OPTIMIZERS:
                config = TrainConfig(batch_size=batch, optimizer=name, device="cpu", seed=0)
                trainer = Trainer.start(store, Path(tmp) / name, config, MODEL)
                x, y = next(iter(trainer.train_loader))
                trainer.train_step(x, y)  # warm-up (SOAP: first preconditioner)
                steppers[name] = (trainer, x, y)
            times: dict[str, list[float]] = {name: [] for name in OPTIMIZERS}
            for _ in range(rounds):
                for name, (trainer, x, y) in steppers.items():
                    start = time.perf_counter()
                    trainer.train_step(x, y)
                    times[name].append(1e3 * (time.perf_counter() - start))
            for name in OPTIMIZERS:
                medians[name, batch] = statistics.median(times[name])
    return medians


def first_reach(result: Result, level: float) -> tuple[int, float] | None:
    """(steps, wall s) at the end of the first epoch with val <= level, or None."""
    steps_per_epoch = result.steps // max(result.epochs, 1)
    for epoch, wall, val in result.curve:
        if val <= level:
            return epoch * steps_per_epoch, wall
    return None


def calibrate(args: argparse.Namespace, say: Transcript) -> None:
    lr = scaled_lr(args.adamw_lr, BASE_BATCH)
    r = train_run(args.store, "adamw", BASE_BATCH, lr, None, args.budget_s[0], say)
    at = args.fraction * r.wall_s
    reached = min((val for _, t, val in r.curve if t <= at), default=math.inf)
    say()
    say(
        f"calibration: AdamW B={BASE_BATCH} best val rel-L2 {r.best_val:.4f} after {r.wall_s:.1f} s "
        f"({r.epochs} epochs, {r.steps} steps, {r.step_ms:.1f} ms/step); best within the first "
        f"{args.fraction:.0%} ({at:.1f} s): {reached:.4f} -> proposed --target {reached:.3f}"
    )


def fmt_ratio(num: Result, den: Result, attr: str) -> str:
    a, b = getattr(num, attr), getattr(den, attr)
    if num.reached and den.reached:
        return f"{a / b:.2f}"
    if den.reached:  # numerator not reached: at least this
        return f">{a / b:.2f}"
    if num.reached:
        return f"<{a / b:.2f}"
    return "n/a"


def compare(args: argparse.Namespace, say: Transcript) -> None:
    results: dict[tuple[str, int], Result] = {}
    for i, batch in enumerate(args.batches):
        order = OPTIMIZERS if i % 2 == 0 else OPTIMIZERS[::-1]
        for name in order:
            base = args.adamw_lr if name == "adamw" else args.soap_lr
            results[name, batch] = train_run(
                args.store, name, batch, scaled_lr(base, batch), args.target, budget_for(args, batch), say
            )
    say()
    say(f"optimizer.step() alone ({args.opt_rounds} interleaved rounds of {args.opt_steps} steps, median):")
    step_alone = optimizer_step_ms(args.opt_rounds, args.opt_steps)
    for name, ms in step_alone.items():
        say(f"  {name:5s} {ms:7.2f} ms/step")
    say(f"training step on an in-memory batch ({args.step_rounds} interleaved rounds, median):")
    step_full = train_step_ms(args.store, args.batches, args.step_rounds)
    for batch in args.batches:
        a, s = step_full["adamw", batch], step_full["soap", batch]
        say(f"  B={batch:<4d} adamw {a:8.1f} ms  soap {s:8.1f} ms  soap/adamw {s / a:.2f}")
    say()
    say(f"target: val rel-L2 <= {args.target}; budget (train+val s per run) {budgets_text(args)}")
    head = (
        f"{'opt':5s} {'B':>4s} {'lr':>8s} {'reached':>7s} {'epochs':>6s} {'steps':>6s} "
        f"{'wall s':>7s} {'best val':>8s} {'ms/step':>7s}  load (start -> end)"
    )
    say(head)
    say("-" * len(head))
    for batch in args.batches:
        for name in OPTIMIZERS:
            r = results[name, batch]
            say(
                f"{name:5s} {batch:4d} {r.lr:8.2e} {'yes' if r.reached else 'NO':>7s} {r.epochs:6d} "
                f"{r.steps:6d} {r.wall_s:7.1f} {r.best_val:8.4f} {r.step_ms:7.1f}  {r.load}"
            )
    say("(ms/step: training time per step in the run itself, data loading included)")
    say()
    levels = sorted({*args.levels, args.target}, reverse=True)
    say("steps / wall s to first reach each val rel-L2 level (from the same runs; - = not reached):")
    say(f"{'opt':5s} {'B':>4s} " + " ".join(f"{f'<={v:g}':>14s}" for v in levels))
    for batch in args.batches:
        for name in OPTIMIZERS:
            cells = []
            for level in levels:
                hit = first_reach(results[name, batch], level)
                cells.append(f"{hit[0]:>6d} /{hit[1]:6.1f}" if hit else f"{'-':>14s}")
            say(f"{name:5s} {batch:4d} " + " ".join(cells))
    say()
    for batch in args.batches:
        a, s = results["adamw", batch], results["soap", batch]
        cost = step_full["soap", batch] / step_full["adamw", batch]
        wall, steps = fmt_ratio(s, a, "wall_s"), fmt_ratio(s, a, "steps")
        if a.reached and s.reached:
            gain = a.wall_s / s.wall_s
            verdict = f"SOAP {gain:.2f}x {'faster' if gain > 1 else 'slower'} to target"
        elif a.reached:
            verdict = "SOAP did not reach the target in the budget: AdamW wins"
        elif s.reached:
            verdict = "AdamW did not reach the target in the budget: SOAP wins"
        else:
            verdict = "neither reached the target in the budget"
        say(
            f"B={batch}: SOAP/AdamW wall time {wall}, steps {steps}; a SOAP step costs {cost:.2f}x "
            f"AdamW's (in-memory step), so SOAP breaks even in wall time at <= {1 / cost:.2f}x "
            f"AdamW's steps. {verdict}."
        )


def budgets_text(args: argparse.Namespace) -> str:
    return ", ".join(f"B={b}: {budget_for(args, b):g}" for b in args.batches)


def budget_for(args: argparse.Namespace, batch: int) -> float:
    """``--budget-s`` is one value for all batch sizes or one per batch size."""
    return args.budget_s[0] if len(args.budget_s) == 1 else args.budget_s[args.batches.index(batch)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("store", help="ccs-fno Zarr store (e.g. /work/bench_data/opt32.zarr)")
    parser.add_argument("--calibrate", action="store_true", help="AdamW at B=16, no target; propose one")
    parser.add_argument("--target", type=float, help="validation relative L2 to reach")
    parser.add_argument(
        "--fraction", type=float, default=0.6, help="calibration: target at this budget share"
    )
    parser.add_argument("--batches", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument(
        "--budget-s",
        type=float,
        nargs="+",
        default=[150.0],
        help="train+val seconds per run: one value, or one per --batches entry",
    )
    parser.add_argument(
        "--levels", type=float, nargs="*", default=[0.5, 0.4, 0.35], help="extra val levels to report"
    )
    parser.add_argument("--step-rounds", type=int, default=3)
    parser.add_argument("--adamw-lr", type=float, default=1e-3, help="AdamW lr at B=16")
    parser.add_argument("--soap-lr", type=float, default=3e-3, help="SOAP lr at B=16")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--opt-rounds", type=int, default=7)
    parser.add_argument("--opt-steps", type=int, default=20)
    parser.add_argument("--out", type=Path, help="also write the output to this file")
    args = parser.parse_args(argv)
    if not args.calibrate and args.target is None:
        parser.error("give --target (or --calibrate to choose one)")
    if len(args.budget_s) not in (1, len(args.batches)):
        parser.error("--budget-s takes one value or one per --batches entry")
    torch.set_num_threads(args.threads)
    say = Transcript()
    argv_text = " ".join(
        shlex.quote(a) for a in (sys.argv if argv is None else ["bench_optimizers.py", *argv])
    )
    say(f"$ {argv_text}")
    say(
        f"{cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s), load average {load_average()}"
    )
    say(f"model {MODEL}; full precision, float32, weight decay 1e-4, constant lr, seed 0")
    start = time.perf_counter()
    if args.calibrate:
        calibrate(args, say)
    else:
        compare(args, say)
    say(f"total {time.perf_counter() - start:.0f} s, load average {load_average()}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(say.lines) + "\n")


if __name__ == "__main__":
    main()
