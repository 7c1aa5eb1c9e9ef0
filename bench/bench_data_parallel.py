"""Data-parallel scaling on CPU (gloo): P = 1 vs P = 2 processes, one thread each, real training.

Runs ``ccs-fno train STORE --nproc P`` (torchrun) for a few epochs per setting and reads the
training throughput (samples/s, the training loop of the last epoch, validation excluded) from the
run's ``metrics.jsonl``:

* strong scaling: the same global batch B on P = 1 and P = 2 (per-rank B / P);
* weak scaling: the same per-rank batch b (global b * P);
* gradient bytes per rank and step (``grad_bytes_per_rank``, counted by the DDP comm hook) with
  and without ``--grad-compression fp16``;
* communication share: the time of one all-reduce of the model's gradient (measured alone, in a
  2-process torchrun job, median of repeats) over the P = 2 step time. DDP overlaps its
  all-reduces with the backward pass, so this is an upper bound of the exposed share.

Parallel efficiency = throughput(P = 2) / (2 x throughput(P = 1)).

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_data_parallel.py STORE [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODEL = ["--width", "32", "--modes", "12", "--layers", "4"]


def train(store: str, nproc: int, batch: int, epochs: int, extra: list[str], workdir: Path) -> dict:
    run = workdir / f"run-p{nproc}-b{batch}-{len(extra)}-{time.monotonic_ns()}"
    command = [sys.executable, "-m", "ccs_fno.train_cli", "train", store, "--run-dir", str(run)]
    command += ["--epochs", str(epochs), "--batch-size", str(batch), "--device", "cpu", "--no-progress"]
    command += ["--val-fraction", "0.1", "--test-fraction", "0.1", *MODEL, *extra]
    if nproc > 1:
        command += ["--nproc", str(nproc)]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    subprocess.run(command, check=True, env=env, capture_output=True, text=True)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return records[-1]


def allreduce_worker(n_floats: int, repeats: int) -> None:
    import torch

    from ccs_fno.distributed import init_context, shutdown_context

    torch.set_num_threads(1)
    context = init_context(device="cpu")
    buffer = torch.randn(n_floats)
    times = []
    for _ in range(repeats):
        context.barrier()
        start = time.perf_counter()
        context.all_reduce_sum(buffer)
        times.append(time.perf_counter() - start)
    if context.is_main:
        print(json.dumps({"allreduce_s": statistics.median(times[2:])}))
    shutdown_context()


def allreduce_time(n_floats: int) -> float:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    command += [__file__, "--allreduce-worker", str(n_floats)]
    done = subprocess.run(
        command, check=True, capture_output=True, text=True, env=os.environ | {"OMP_NUM_THREADS": "1"}
    )
    return json.loads(done.stdout.strip().splitlines()[-1])["allreduce_s"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("store", nargs="?")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8, help="global batch (strong) / per-rank (weak)")
    parser.add_argument("--allreduce-worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.allreduce_worker:
        allreduce_worker(args.allreduce_worker, 12)
        return
    import torch

    from ccs_fno.nn import FNO

    n_params = sum(p.numel() for p in FNO(5, 51, (12, 12), width=32).parameters())
    b = args.batch
    print(f"store {args.store}; width 32, modes 12, 4 layers ({n_params} parameters); {args.epochs} epochs")
    print(f"machine: {os.cpu_count()} cores, torch {torch.__version__}, one thread per process")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        results = {
            "P1 B": train(args.store, 1, b, args.epochs, [], work),
            "P2 B": train(args.store, 2, b, args.epochs, [], work),
            "P2 2B": train(args.store, 2, 2 * b, args.epochs, [], work),
            "P2 B fp16": train(args.store, 2, b, args.epochs, ["--grad-compression", "fp16"], work),
        }
    for name, record in results.items():
        print(
            f"{name:>10}: {record['samples_per_s']:7.2f} samples/s, epoch {record['epoch_time_s']:.1f} s, "
            f"grad bytes/rank/epoch {record.get('grad_bytes_per_rank', 0)}, "
            f"train loss {record['train_loss']:.4f}"
        )
    p1, p2, weak = (results[k]["samples_per_s"] for k in ("P1 B", "P2 B", "P2 2B"))
    print(f"strong scaling (global batch {b}): speed-up {p2 / p1:.2f}x, efficiency {p2 / (2 * p1):.2f}")
    print(f"weak scaling (per-rank batch {b}): speed-up {weak / p1:.2f}x, efficiency {weak / (2 * p1):.2f}")
    compressed = results["P2 B fp16"]["grad_bytes_per_rank"] / results["P2 B"]["grad_bytes_per_rank"]
    print(f"fp16 gradient compression: {compressed:.2f}x the bytes")
    t_allreduce = allreduce_time(n_params)
    step_p2 = b / p2
    print(
        f"all-reduce of the gradient ({4 * n_params / 1e6:.2f} MB float32, 2 processes): "
        f"{1e3 * t_allreduce:.1f} ms = {100 * t_allreduce / step_p2:.1f} % of a P=2 step "
        f"({1e3 * step_p2:.0f} ms)"
    )


if __name__ == "__main__":
    main()
