"""Our FNO side by side with neuraloperator's FNO: same data, same size, same training, one run.

1. Generates a small real ensemble with ``data_gen.pipeline.generate`` into a temporary store.
2. Reads it through ``ccs_fno.data`` (split, normalisers fitted on train, ZarrSaturationDataset):
   every model sees the same 5 input channels and T target channels, the same split, the same
   batches in the same order, AdamW with the same lr / weight decay, a cosine schedule over the
   epochs, and the mean per-sample relative L2 loss.
3. Models: ours (``ccs_fno.nn.FNO``) in full and half precision; neuraloperator's
   ``neuralop.models.FNO`` configured as the same architecture -- single 1x1 lifting, 4 Fourier
   layers (spectral + linear 1x1 skip, GELU), 2-layer projection of width 4 x width, no channel
   MLP, grid positional embedding (ours appends cell-centre coordinates, it appends i/n: both
   add 2 channels) -- in full, half and mixed (with its tanh stabilizer). A neuraloperator
   precision that raises on this device (CPU has no half FFT) is reported with its exception
   and left out. Mode sets are identical: our ``modes=m`` keeps |k| < m, i.e. (2m-1) x m complex
   coefficients, as does neuraloperator's ``n_modes=(2m-1, 2m-1)``; parameter counts match
   exactly (spectral bias there, skip bias here). One difference remains: with
   ``use_channel_mlp=False`` neuraloperator's FNOBlocks applies its non-linearity twice between
   layers (gelu(gelu(h))).
4. Per model: test relative L2 after training (mean and sd over ``--seeds`` initialisation /
   shuffling seeds; the split is fixed), training wall time, and the median time of a training
   step (forward, backward, AdamW step). All models train in lockstep, batch by batch, and the
   canonical-size steps run round-robin, so load changes on a shared machine hit all alike.
   Activation memory of one step = unique storage bytes saved for backward
   (``saved_tensors_hooks``), parameters and the data batch excluded, at the training size and
   at the canonical size (batch 8, 64x64, 51 outputs, width 32, modes 16, 4 layers, random data).

Prints a table and writes it (with command line, machine and load) to ``--out``; asserts nothing.
neuraloperator is not a project dependency; install it into the venv for this script only:

    .venv/bin/pip install neuraloperator==2.0.0   # keeps torch 2.13.0
    .venv/bin/python bench/bench_vs_neuraloperator.py
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import neuralop
import numpy as np
import torch
from activation_memory import saved_bytes  # bench/ is on sys.path when run as a script
from neuralop.models import FNO as NeuralopFNO
from torch import nn

from ccs_fno.data import (
    INPUT_CHANNELS,
    ZarrSaturationDataset,
    fit_normalisers,
    read_store,
    split_samples,
)
from ccs_fno.nn import FNO
from ccs_fno.train import relative_l2
from data_gen.pipeline import generate
from data_gen.scenarios import default_space

CANONICAL = {"batch": 8, "size": 64, "times": 51, "width": 32, "modes": 16}
N_LAYERS, PROJECTION_RATIO = 4, 4  # ours: projection_width = 4 * width (128 at width 32)
INITIAL_LOSS_SCALE = 2.0**10  # as ccs_fno.train; the scaler is only enabled for float16 on CUDA


@dataclass(frozen=True)
class Spec:
    """One model of the comparison: who built it, in which precision."""

    library: str  # "ours" | "neuralop"
    precision: str

    @property
    def name(self) -> str:
        return f"{self.library}-{self.precision}"


def build(spec: Spec, out_channels: int, width: int, modes: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    if spec.library == "ours":
        return FNO(
            len(INPUT_CHANNELS),
            out_channels,
            (modes, modes),
            width=width,
            n_layers=N_LAYERS,
            projection_width=PROJECTION_RATIO * width,
            precision=spec.precision,
        )
    return NeuralopFNO(
        n_modes=(2 * modes - 1, 2 * modes - 1),
        in_channels=len(INPUT_CHANNELS),
        out_channels=out_channels,
        hidden_channels=width,
        n_layers=N_LAYERS,
        lifting_channel_ratio=0,
        projection_channel_ratio=PROJECTION_RATIO,
        use_channel_mlp=False,
        fno_block_precision=spec.precision,
        stabilizer=None if spec.precision == "full" else "tanh",
    )


def parameter_count(model: nn.Module) -> int:
    """Real numbers held by the parameters (a complex entry counts twice)."""
    return sum(p.numel() * (2 if p.is_complex() else 1) for p in model.parameters())


class Stepper:
    """A model with its own AdamW (and GradScaler, active only for float16 on CUDA)."""

    def __init__(self, spec: Spec, model: nn.Module, lr: float, weight_decay: float) -> None:
        self.spec, self.model = spec, model
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        device = next(model.parameters()).device
        self.scaler = torch.amp.GradScaler(
            device.type,
            init_scale=INITIAL_LOSS_SCALE,
            enabled=device.type == "cuda" and spec.precision != "full",
        )

    def step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        self.optimizer.zero_grad(set_to_none=True)
        loss = relative_l2(self.model(x).float(), y).mean()
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.item()


def first_error(fn: Callable[[], object]) -> str | None:
    """None if ``fn()`` runs, else 'Type: message (at file:line in function)'."""
    try:
        fn()
    except Exception as error:  # the point is to record whatever the library raises
        frame = traceback.extract_tb(error.__traceback__)[-1]
        message = " ".join(str(error).split())[:160]
        return (
            f"{type(error).__name__}: {message} "
            f"(at {Path(frame.filename).name}:{frame.lineno} in {frame.name})"
        )
    return None


def _rel_l2_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return relative_l2(pred.float(), target).mean()


def timed_step(stepper: Stepper, x: torch.Tensor, y: torch.Tensor) -> float:
    """Seconds of one training step (synchronised on CUDA)."""
    sync = torch.cuda.synchronize if x.device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    stepper.step(x, y)
    sync()
    return time.perf_counter() - start


def median_step_s(
    steppers: list[Stepper], x: torch.Tensor, y: torch.Tensor, repeats: int
) -> dict[str, float]:
    """Median seconds per training step of each stepper, timed round-robin after 2 warm-ups."""
    times: dict[str, list[float]] = {s.spec.name: [] for s in steppers}
    for i in range(repeats + 2):
        for stepper in steppers:
            seconds = timed_step(stepper, x, y)
            if i >= 2:
                times[stepper.spec.name].append(seconds)
    return {name: statistics.median(t) for name, t in times.items()}


def make_store(args: argparse.Namespace, root: Path) -> tuple[Path, float]:
    times = np.arange(0.0, 1000.0 + 1e-9, args.report_every_days)
    space = default_space("channel", args.resolution, report_times_days=times)
    report = generate(
        root / "vs_neuralop.zarr",
        space,
        args.samples,
        args.seed,
        workers=args.workers,
        progress=False,
    )
    if not report.ok:
        raise RuntimeError(f"data generation failed: {report.failures}")
    return Path(report.path), report.wall_s


def load_split(path: Path, seed: int, test_fraction: float) -> dict[str, torch.Tensor]:
    """Inputs and targets of the train and test samples, read once through ZarrSaturationDataset."""
    store = read_store(path)
    split = split_samples(store.done_indices, 0.0, test_fraction, seed)
    normalisers = fit_normalisers(store, split["train"])
    tensors = {}
    for name in ("train", "test"):
        dataset = ZarrSaturationDataset(store, split[name], normalisers)
        items = [dataset[i] for i in range(len(dataset))]
        tensors[f"x_{name}"] = torch.stack([x for x, _ in items])
        tensors[f"y_{name}"] = torch.stack([y for _, y in items])
    return tensors


def train_lockstep(
    steppers: list[Stepper], data: dict[str, torch.Tensor], epochs: int, batch_size: int, seed: int
) -> dict[str, list[float]]:
    """Train all models together, batch by batch, on the same shuffled batches (from ``seed``),
    each with a cosine schedule over ``epochs``; return each model's step seconds. Interleaving
    makes the timings comparable when other jobs share the cores."""
    x, y = data["x_train"], data["y_train"]
    schedulers = [torch.optim.lr_scheduler.CosineAnnealingLR(s.optimizer, epochs) for s in steppers]
    shuffle = torch.Generator().manual_seed(seed)
    times: dict[str, list[float]] = {s.spec.name: [] for s in steppers}
    for _ in range(epochs):
        order = torch.randperm(x.shape[0], generator=shuffle)
        for batch in order.split(batch_size):
            for stepper in steppers:
                times[stepper.spec.name].append(timed_step(stepper, x[batch], y[batch]))
        for scheduler in schedulers:
            scheduler.step()
    return times


@torch.no_grad()
def test_error(model: nn.Module, data: dict[str, torch.Tensor], batch_size: int) -> float:
    """Mean per-sample relative L2 over the test split."""
    model.eval()
    errors = [
        relative_l2(model(x).float(), y)
        for x, y in zip(data["x_test"].split(batch_size), data["y_test"].split(batch_size), strict=True)
    ]
    return torch.cat(errors).mean().item()


def random_batch(
    batch: int, size: int, times: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(batch, len(INPUT_CHANNELS), size, size, generator=g)
    y = torch.rand(batch, times, size, size, generator=g)
    return x.to(device), y.to(device)


def usable(specs: list[Spec], probe: Callable[[Spec], None], notes: list[str]) -> list[Spec]:
    """The specs whose ``probe`` runs; a note for each one that raises."""
    kept = []
    for spec in specs:
        with warnings.catch_warnings():  # e.g. neuraloperator's "ComplexHalf is experimental"
            warnings.simplefilter("ignore")
            error = first_error(lambda spec=spec: probe(spec))
        if error is None:
            kept.append(spec)
        else:
            notes.append(f"{spec.name} raises on this device -> left out: {error}")
    return kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=96)
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--report-every-days", type=float, default=40.0)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--modes", type=int, default=8, help="ours: |k| < modes per dim")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--test-fraction", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=0, help="split seed and first model seed")
    parser.add_argument("--seeds", type=int, default=3, help="training repeats (seeds) per model")
    parser.add_argument("--workers", type=int, default=2, help="dask workers for generation")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per model and size")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="docs/results/vs_neuraloperator.txt")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    lines: list[str] = []

    def emit(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    load_before = os.getloadavg()
    emit("$ " + shlex.join([Path(sys.executable).name, *sys.argv]))
    emit(
        f"machine: {platform.node()} {platform.machine()}, nproc={os.cpu_count()}, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), neuraloperator "
        f"{neuralop.__version__}, device={device}"
        + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
    )
    emit("load average before (1/5/15 min): " + " ".join(f"{v:.2f}" for v in load_before))

    with tempfile.TemporaryDirectory(prefix="bench_vs_neuralop_") as tmp:
        path, generate_s = make_store(args, Path(tmp))
        data = {k: v.to(device) for k, v in load_split(path, args.seed, args.test_fraction).items()}
    n_times = data["y_train"].shape[1]
    emit(
        f"data: {args.samples} channel samples at {args.resolution}x{args.resolution}, "
        f"{n_times} report times (every {args.report_every_days:g} d), generated in "
        f"{generate_s:.0f} s; train {len(data['x_train'])} / test {len(data['x_test'])} samples, "
        f"inputs {tuple(data['x_train'].shape[1:])}"
    )
    emit(
        f"training: {args.epochs} epochs, batch {args.batch_size}, AdamW lr {args.lr:g} "
        f"wd {args.weight_decay:g}, cosine, relative L2 loss, split seed {args.seed}; width "
        f"{args.width}, ours modes={args.modes} == neuralop n_modes={2 * args.modes - 1}, "
        f"{N_LAYERS} layers"
    )

    notes: list[str] = []
    x_probe, y_probe = data["x_train"][: args.batch_size], data["y_train"][: args.batch_size]

    def probe(spec: Spec) -> None:
        model = build(spec, n_times, args.width, args.modes, args.seed).to(device)
        Stepper(spec, model, args.lr, args.weight_decay).step(x_probe, y_probe)

    specs = usable(
        [Spec("ours", "full"), Spec("ours", "half")]
        + [Spec("neuralop", p) for p in ("full", "half", "mixed")],
        probe,
        notes,
    )

    rows: dict[str, dict] = {spec.name: {"test": [], "train_s": [], "steps": []} for spec in specs}
    seeds = [args.seed + i for i in range(args.seeds)]
    for seed in seeds:  # seed: initialisation and shuffling; the split stays fixed
        steppers = [
            Stepper(
                spec,
                build(spec, n_times, args.width, args.modes, seed).to(device),
                args.lr,
                args.weight_decay,
            )
            for spec in specs
        ]
        times = train_lockstep(steppers, data, args.epochs, args.batch_size, seed)
        for stepper in steppers:
            row = rows[stepper.spec.name]
            row["test"].append(test_error(stepper.model, data, args.batch_size))
            steps = times[stepper.spec.name]
            row["train_s"].append(sum(steps))
            row["steps"].extend(steps[min(2, len(steps) - 1) :])  # the first two warm up
            row["params"] = parameter_count(stepper.model)
            row["saved"] = saved_bytes(stepper.model.train(), x_probe, y_probe, _rel_l2_loss)
        emit(
            f"  seed {seed}: test rel. L2 "
            + ", ".join(f"{name} {row['test'][-1]:.4f}" for name, row in rows.items())
        )
        del steppers

    c = CANONICAL
    x_c, y_c = random_batch(c["batch"], c["size"], c["times"], device)
    canonical = []
    for spec in specs:
        model = build(spec, c["times"], c["width"], c["modes"], args.seed).to(device)
        rows[spec.name]["saved_c"] = saved_bytes(model, x_c, y_c, _rel_l2_loss)
        canonical.append(Stepper(spec, model, args.lr, args.weight_decay))
    for name, seconds in median_step_s(canonical, x_c, y_c, args.repeats).items():
        rows[name]["step_c"] = seconds

    train_size = f"{args.batch_size}x{args.resolution}^2,T={n_times}"
    canon_size = f"{c['batch']}x{c['size']}^2,T={c['times']}"
    emit()
    emit(f"{'':42}| train size {train_size:<19}| canonical {canon_size}")
    emit(
        f"{'model':15}{'params':>10}{'test L2':>9}{'(sd)':>8}| {'train s':>8}{'step ms':>9}"
        f"{'saved MB':>10}  | {'step ms':>8}{'saved MB':>10}"
    )
    for name, r in rows.items():
        sd = statistics.stdev(r["test"]) if len(r["test"]) > 1 else float("nan")
        emit(
            f"{name:15}{r['params']:>10,d}{statistics.mean(r['test']):9.4f}{sd:8.4f}| "
            f"{statistics.mean(r['train_s']):8.1f}{1e3 * statistics.median(r['steps']):9.1f}"
            f"{r['saved'] / 1e6:10.2f}  | {1e3 * r['step_c']:8.1f}{r['saved_c'] / 1e6:10.1f}"
        )
    emit(
        f"test L2: mean (sd) over seeds {seeds}; train s: mean per seed (models trained in "
        "lockstep); step ms: median over the training steps (train size) or over "
        f"{args.repeats} round-robin steps (canonical); saved MB: bytes saved for backward"
    )
    emit()
    for note in notes:
        emit(note)
    emit("load average after (1/5/15 min): " + " ".join(f"{v:.2f}" for v in os.getloadavg()))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
