"""Activation memory and step time of one FNO training step in full / mixed / half precision.

Canonical case: 64x64 section, 51 output times, width 32, 4 Fourier layers, modes 16 (x16, x8 in
time for the 3-D layout). Layouts:
  2d: FNO2d with time as output channels, [B, 2, 64, 64] -> [B, 51, 64, 64]
  3d: FNO3d, [B, 2, 64, 64, 51] -> [B, 1, 64, 64, 51] (static inputs repeated along time)

Activation memory = bytes of the unique storages saved for backward during the forward pass
(torch.autograd.graph.saved_tensors_hooks), parameters and the data batch excluded; it is split
into a part that grows with the batch (per sample) and a fixed part (weight copies) by measuring
at batch 1 too. On CUDA the peak of torch.cuda.max_memory_allocated during the step (above what the model
and optimiser hold before it) is printed as well. Prints figures; asserts nothing.

    .venv/bin/python bench/bench_precision.py --device cpu --layout 2d --batch 8 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from activation_memory import saved_bytes  # bench/ is on sys.path when run as a script

from ccs_fno.nn import FNO, PRECISIONS

SIZE, TIMES, IN_CHANNELS = 64, 51, 2


def build(layout: str, precision: str, width: int, modes: int, layers: int, device: str) -> FNO:
    torch.manual_seed(0)
    if layout == "2d":
        model = FNO(IN_CHANNELS, TIMES, (modes, modes), width, layers, precision=precision)
    else:
        model = FNO(IN_CHANNELS, 1, (modes, modes, modes // 2), width, layers, precision=precision)
    return model.to(device)


def batch(layout: str, size: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(size, IN_CHANNELS, SIZE, SIZE, generator=g)
    if layout == "2d":
        y = torch.rand(size, TIMES, SIZE, SIZE, generator=g)
    else:
        x = x[..., None].expand(-1, -1, -1, -1, TIMES).contiguous()
        y = torch.rand(size, 1, SIZE, SIZE, TIMES, generator=g)
    return x.to(device), y.to(device)


def step_times(model: FNO, x: torch.Tensor, y: torch.Tensor, repeats: int) -> tuple[float, int]:
    """Median seconds of a training step (Adam), and the CUDA peak above the pre-step level."""
    cuda = x.device.type == "cuda"
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cuda", enabled=cuda and model.precision != "full")
    times, peak = [], 0
    for i in range(repeats + 2):  # two warm-up steps (allocator, cuFFT plans, path cache)
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
        start = time.perf_counter()
        optimiser.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(optimiser)
        scaler.update()
        if cuda:
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated() - before
        if i >= 2:
            times.append(time.perf_counter() - start)
    return statistics.median(times), peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--layout", choices=["2d", "3d"], default="2d")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--modes", type=int, default=16)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--precisions", default=",".join(PRECISIONS))
    args = parser.parse_args()

    print(
        f"device={args.device} ({torch.cuda.get_device_name() if args.device == 'cuda' else 'cpu'},"
        f" {torch.get_num_threads()} threads) layout={args.layout} batch={args.batch} "
        f"{SIZE}x{SIZE} times={TIMES} width={args.width} modes={args.modes} layers={args.layers}"
    )
    header = (
        f"{'precision':>9} {'saved MB':>9} {'per-sample MB':>13} {'fixed MB':>8} "
        f"{'ratio':>6} {'per-sample ratio':>16} {'step ms':>8} {'speed-up':>8} {'CUDA peak MB':>12}"
    )
    print(header)
    reference = None
    x1, y1 = batch(args.layout, 1, args.device)
    x, y = batch(args.layout, args.batch, args.device)
    for precision in args.precisions.split(","):
        model = build(args.layout, precision, args.width, args.modes, args.layers, args.device)
        mse = torch.nn.functional.mse_loss
        one, total = saved_bytes(model, x1, y1, mse), saved_bytes(model, x, y, mse)
        per_sample = (total - one) / max(args.batch - 1, 1)
        fixed = total - per_sample * args.batch
        seconds, peak = step_times(model, x, y, args.repeats)
        reference = reference or (total, per_sample, seconds)
        print(
            f"{precision:>9} {total / 1e6:9.1f} {per_sample / 1e6:13.2f} {fixed / 1e6:8.1f} "
            f"{total / reference[0]:6.2f} {per_sample / reference[1]:16.2f} "
            f"{seconds * 1e3:8.1f} {reference[2] / seconds:8.2f} "
            f"{peak / 1e6 if peak else float('nan'):12.1f}"
        )
        del model


if __name__ == "__main__":
    main()
