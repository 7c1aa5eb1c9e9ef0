"""Training-step time at one size: ours vs neuraloperator, and half vs full, as ratios from one run.

The models are built and stepped exactly as in ``bench_vs_neuraloperator.py`` (same architecture,
AdamW, relative L2 loss, random data) but without generating or training on an ensemble, so one
size is measured in seconds. Steps run round-robin (every model once per round, after 2 warm-up
rounds), so load changes on a shared machine hit all models alike; the ratio of two models is
reported per round and as the median over the rounds.

``ours@REV-<precision>`` is our model with the SpectralConv/contraction of git revision REV
(``ccs_fno/nn/spectral.py`` and ``contract.py`` as of REV, imported from a temporary copy), so a
before/after comparison runs in the same process and rounds as the rest.

    .venv/bin/pip install neuraloperator==2.0.0   # as for bench_vs_neuraloperator.py
    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_step_time.py --modes 12 --repeats 15
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from bench_vs_neuraloperator import Spec, Stepper, build, random_batch, timed_step  # bench/ on sys.path
from torch import nn
from transcript import Transcript, cpu_model  # bench/ on sys.path

from ccs_fno.nn import cpu_has_native_bf16


def parse_spec(text: str) -> Spec:
    library, _, precision = text.partition("-")
    if not (library in ("ours", "neuralop") or library.startswith("ours@")) or not precision:
        raise argparse.ArgumentTypeError(
            f"spec must be ours-<precision>, ours@REV-<precision> or neuralop-<precision>, got {text!r}"
        )
    return Spec(library, precision)


def spectral_conv_at(rev: str) -> type[nn.Module]:
    """SpectralConv as of git revision ``rev`` (its spectral.py + contract.py, renamed package)."""
    package = "ccs_fno_at_" + "".join(c if c.isalnum() else "_" for c in rev)
    root = Path(tempfile.mkdtemp(prefix="bench_step_time_"))
    (root / package).mkdir()
    (root / package / "__init__.py").write_text("")
    for name in ("contract", "spectral"):
        source = subprocess.run(
            ["git", "show", f"{rev}:ccs_fno/nn/{name}.py"], capture_output=True, text=True, check=True
        ).stdout
        (root / package / f"{name}.py").write_text(source.replace("ccs_fno.nn.", f"{package}."))
    sys.path.insert(0, str(root))
    return importlib.import_module(f"{package}.spectral").SpectralConv


def build_model(spec: Spec, times: int, width: int, modes: int) -> nn.Module:
    """As ``bench_vs_neuraloperator.build`` (seed 0); ``ours@REV`` swaps in REV's SpectralConv."""
    if not spec.library.startswith("ours@"):
        return build(spec, times, width, modes, 0)
    model = build(Spec("ours", spec.precision), times, width, modes, 0)
    conv = spectral_conv_at(spec.library.removeprefix("ours@"))
    torch.manual_seed(0)
    for i, layer in enumerate(model.spectral):
        model.spectral[i] = conv(width, width, layer.modes, spec.precision, layer.tanh_preactivation)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--times", type=int, default=51, help="output channels")
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--modes", type=int, default=12, help="ours: |k| < modes per dim")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--repeats", type=int, default=15, help="timed rounds after 2 warm-ups")
    parser.add_argument(
        "--specs",
        type=parse_spec,
        nargs="+",
        default=[Spec("ours", "full"), Spec("neuralop", "full"), Spec("ours", "half")],
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=None, help="also write the output here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    emit = Transcript()
    emit("$ " + shlex.join([Path(sys.executable).name, *sys.argv]))
    emit(
        f"machine: {platform.node()} {platform.machine()} ({cpu_model()}), nproc={os.cpu_count()}, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), device={device}, "
        f"native CPU bf16: {cpu_has_native_bf16()}"
    )
    emit("load average before (1/5/15 min): " + " ".join(f"{v:.2f}" for v in os.getloadavg()))
    emit(
        f"size: batch {args.batch}, {args.size}x{args.size}, {args.times} outputs, width {args.width}, "
        f"ours modes={args.modes} == neuralop n_modes={2 * args.modes - 1}, 4 layers"
    )
    x, y = random_batch(args.batch, args.size, args.times, device)
    steppers = [
        Stepper(spec, build_model(spec, args.times, args.width, args.modes).to(device), 1e-3, 1e-4)
        for spec in args.specs
    ]
    times: dict[str, list[float]] = {s.spec.name: [] for s in steppers}
    for round_ in range(args.repeats + 2):
        for stepper in steppers:
            seconds = timed_step(stepper, x, y)
            if round_ >= 2:
                times[stepper.spec.name].append(seconds)

    emit()
    col = max(16, *(len(name) + 1 for name in times))
    emit(f"{'model':{col}}{'median ms':>10}{'min ms':>8}{'max ms':>8}   per-round ms")
    for name, t in times.items():
        emit(
            f"{name:{col}}{1e3 * statistics.median(t):10.1f}{1e3 * min(t):8.1f}{1e3 * max(t):8.1f}   "
            + " ".join(f"{1e3 * s:.0f}" for s in t)
        )
    names = list(times)
    for n, base in enumerate(names):
        for name in names[n + 1 :]:
            ratios = [a / b for a, b in zip(times[base], times[name], strict=True)]
            emit(
                f"{base} / {name}: median of per-round ratios {statistics.median(ratios):.3f} "
                f"(range {min(ratios):.3f}-{max(ratios):.3f}); ratio of medians "
                f"{statistics.median(times[base]) / statistics.median(times[name]):.3f}"
            )
    emit("load average after (1/5/15 min): " + " ".join(f"{v:.2f}" for v in os.getloadavg()))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text("\n".join(emit.lines) + "\n")
        print(f"written to {args.out}")


if __name__ == "__main__":
    main()
