"""Training the FNO surrogate: AMP steps, precision phases, checkpoints, metrics (configs: train_config).

Mixed precision: a phase of the precision schedule other than "full" runs the forward pass under
``torch.autocast`` in the device's half dtype (float16 on CUDA, bfloat16 on CPU) and sets the
model's spectral precision. ``torch.amp.GradScaler`` is enabled on CUDA when the schedule uses
float16: small float16 gradients underflow without loss scaling. Its initial scale is 2^10, not
torch's 2^16: the relative-L2 loss is O(1), so 2^16 overflows float16 gradients and the first
several steps would be skipped while the scaler backs off. On CPU the half dtype is bfloat16,
whose exponent range equals float32's, so scaling would change nothing; the scaler is constructed
disabled there (a pass-through) so the step code is the same on every device.

A step whose loss or gradients (after unscaling) hold inf or NaN is skipped: the optimiser does
not step (no update, no weight decay, no moment update) and ``skipped_steps`` counts it.

Run directory (``RUN_FILES``): ``config.json`` (configs, store, grid, times, split, normalisers;
written when the run starts), ``checkpoint.pt`` (everything needed to resume, replaced atomically
after every epoch), ``model.pt`` (what ``load_surrogate`` needs, also after every epoch) and
``metrics.jsonl`` (one JSON line per epoch). ``Trainer.resume`` restores the model, optimiser,
scheduler, scaler and every RNG (python, numpy, torch, CUDA and the DataLoader's shuffling
generator), so a resumed run continues with the same batches and reproduces the loss curve of an
uninterrupted one (bit for bit on CPU with ``deterministic=True``).
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ccs_fno.checkpoint import (
    atomic_torch_save,
    atomic_write_bytes,
    build_model,
    load_torch_file,
    load_weights,
)
from ccs_fno.data import (
    INPUT_CHANNELS,
    Normalisers,
    StoreSummary,
    ZarrSaturationDataset,
    fit_normalisers,
    read_store,
    split_samples,
)
from ccs_fno.nn import FNO, reduced_dtype
from ccs_fno.nn.spectral import validate_grid
from ccs_fno.train_config import (
    ModelConfig,
    TrainConfig,
    precision_at,
    resolve_device,
)

CHECKPOINT_FILE = "checkpoint.pt"
MODEL_FILE = "model.pt"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
RUN_FILES = (CONFIG_FILE, CHECKPOINT_FILE, MODEL_FILE, METRICS_FILE)
CHECKPOINT_FORMAT, MODEL_FORMAT, FORMAT_VERSION = "ccs-fno-checkpoint", "ccs-fno-model", 1
INITIAL_LOSS_SCALE = 2.0**10  # see the module docstring
MODEL_KEYS = ("model_config", "state_dict", "normalisers", "grid", "times_days", "max_saturation")


def relative_l2(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample ``||pred - target|| / ||target||`` over all non-batch dims, shape [B]."""
    diff = (pred - target).flatten(1).norm(dim=1)
    return diff / target.flatten(1).norm(dim=1).clamp_min(1e-12)


def relative_h1_seminorm(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample relative error of the finite-difference gradients along the last two dims."""

    def gradients(u: torch.Tensor) -> torch.Tensor:
        return torch.cat([u.diff(dim=-2).flatten(1), u.diff(dim=-1).flatten(1)], dim=1)

    return relative_l2(gradients(pred), gradients(target))


def _json_number(value: float) -> float | None:
    return value if math.isfinite(value) else None


class Trainer:
    """Trains an FNO on a store into ``run_dir``; see the module docstring for the files.

    ``Trainer(store, run_dir, config, model_config)`` starts a new run (refusing a directory that
    holds a checkpoint); ``Trainer.resume(run_dir)`` continues one. ``fit()`` trains up to
    ``config.epochs`` and returns the metrics history.
    """

    def __init__(
        self,
        store: str | Path,
        run_dir: str | Path,
        config: TrainConfig | None = None,
        model_config: ModelConfig | None = None,
    ) -> None:
        config = TrainConfig() if config is None else config
        model_config = ModelConfig() if model_config is None else model_config
        run_dir = Path(run_dir)
        if (run_dir / CHECKPOINT_FILE).exists():
            raise FileExistsError(
                f"{run_dir} already holds a training run ({CHECKPOINT_FILE}); resume it "
                "(--resume / Trainer.resume) or choose another run directory"
            )
        summary = read_store(store)
        split = split_samples(
            summary.done_indices, config.val_fraction, config.test_fraction, config.split_seed
        )
        normalisers = fit_normalisers(summary, split["train"])
        _seed_everything(config.seed)
        model = model_config.build(len(INPUT_CHANNELS), summary.times_days.size, config.phases[0][0])
        self._setup(summary, run_dir, config, model, split, normalisers)
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(run_dir / CONFIG_FILE, json.dumps(self.run_config(), indent=2).encode())
        atomic_write_bytes(run_dir / METRICS_FILE, b"")

    @classmethod
    def resume(cls, run_dir: str | Path) -> Trainer:
        """Continue the run in ``run_dir`` from its last checkpoint (its saved configuration)."""
        path = Path(run_dir) / CHECKPOINT_FILE
        state = load_torch_file(
            path,
            CHECKPOINT_FORMAT,
            FORMAT_VERSION,
            ("store", "train_config", "model_config", "model", "optimizer", "scheduler", "scaler")
            + ("rng", "epoch", "history", "skipped_steps", "split", "normalisers"),
        )
        try:
            config = TrainConfig.from_dict(state["train_config"])
            normalisers = Normalisers.from_dict(state["normalisers"])
        except (TypeError, ValueError) as err:
            raise ValueError(f"{path}: {err}") from None
        model = build_model(state["model_config"], path)
        load_weights(model, state["model"], path, "model weights")
        summary = read_store(state["store"])
        split = {name: summary.check_done(state["split"][name]) for name in ("train", "val", "test")}
        trainer = cls.__new__(cls)
        trainer._setup(summary, Path(run_dir), config, model, split, normalisers)
        load_weights(trainer.optimizer, state["optimizer"], path, "optimizer state")
        load_weights(trainer.scheduler, state["scheduler"], path, "scheduler state")
        load_weights(trainer.scaler, state["scaler"], path, "GradScaler state")
        trainer.epoch, trainer.history = int(state["epoch"]), list(state["history"])
        trainer.skipped_steps = int(state["skipped_steps"])
        lines = "".join(json.dumps(record) + "\n" for record in trainer.history)
        atomic_write_bytes(trainer.run_dir / METRICS_FILE, lines.encode())  # drop unsaved epochs
        trainer._restore_rng(state["rng"])  # last: nothing may draw after this
        return trainer

    def _setup(
        self,
        store: StoreSummary,
        run_dir: Path,
        config: TrainConfig,
        model: FNO,
        split: dict[str, np.ndarray],
        normalisers: Normalisers,
    ) -> None:
        self.store, self.run_dir, self.config = store, run_dir, config
        self.split, self.normalisers = split, normalisers
        self.device = resolve_device(config.device)
        if config.deterministic:
            if self.device.type == "cuda":  # cuBLAS is deterministic only with this workspace
                os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
        if model.in_channels != len(INPUT_CHANNELS) or model.config["out_channels"] != store.times_days.size:
            raise ValueError(
                f"model maps {model.in_channels} -> {model.config['out_channels']} channels; the "
                f"store needs {len(INPUT_CHANNELS)} -> {store.times_days.size} (report times)"
            )
        validate_grid(model.config["modes"], store.grid.shape)
        self.model = model.to(self.device)
        self.generator = torch.Generator().manual_seed(config.seed)  # shuffling, checkpointed
        loader_options = {
            "batch_size": config.batch_size,
            "num_workers": config.num_workers,
            "pin_memory": self.device.type == "cuda",
        }
        self.train_loader = DataLoader(
            ZarrSaturationDataset(store, split["train"], normalisers),
            shuffle=True,
            generator=self.generator,
            **loader_options,
        )
        self.val_loader = DataLoader(
            ZarrSaturationDataset(store, split["val"], normalisers), **loader_options
        )
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
        if config.scheduler == "cosine":
            self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, config.epochs)
        else:
            self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, config.step_size, config.gamma)
        uses_float16 = self.device.type == "cuda" and any(p != "full" for p, _ in config.phases)
        self.scaler = torch.amp.GradScaler(
            self.device.type, init_scale=INITIAL_LOSS_SCALE, enabled=uses_float16
        )
        self.precision = model.precision
        self.epoch, self.history, self.skipped_steps = 0, [], 0

    def run_config(self) -> dict[str, Any]:
        """The JSON description of the run (``config.json``)."""
        return {
            "train_config": self.config.to_dict(),
            "model_config": self.model.config,
            "store": self.store.path,
            "grid": asdict(self.store.grid),
            "times_days": self.store.times_days.tolist(),
            "max_saturation": self.store.max_saturation,
            "input_channels": list(INPUT_CHANNELS),
            "normalisers": self.normalisers.to_dict(),
            "split": {name: idx.tolist() for name, idx in self.split.items()},
        }

    def set_precision(self, precision: str) -> None:
        self.model.set_precision(precision)
        self.precision = precision

    def _autocast(self) -> torch.autocast:
        return torch.autocast(
            self.device.type, dtype=reduced_dtype(self.device), enabled=self.precision != "full"
        )

    def loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean relative L2 (+ ``h1_weight`` x relative H1 seminorm) over the batch, in float32."""
        pred, target = pred.float(), target.float()
        loss = relative_l2(pred, target).mean()
        if self.config.h1_weight > 0:
            loss = loss + self.config.h1_weight * relative_h1_seminorm(pred, target).mean()
        return loss

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> float | None:
        """One optimiser step on batch (x, y); None (and counted) when it was skipped."""
        x = x.to(self.device, non_blocking=True)
        y = y.to(self.device, non_blocking=True)
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            pred = self.model(x)
        loss = self.loss(pred, y)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)  # true gradients, checked below
        # An overflowed loss can backpropagate finite (zero) gradients: check both, in one sync.
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        finite = bool(torch.stack([torch.isfinite(loss), *(torch.isfinite(g).all() for g in grads)]).all())
        if finite:
            self.scaler.step(self.optimizer)
        else:
            self.skipped_steps += 1
        self.scaler.update()  # lowers the scale after an overflow (no-op when disabled)
        return loss.item() if finite else None

    @torch.no_grad()
    def validate(self) -> float:
        """Mean per-sample relative L2 of the raw model output on the validation split."""
        self.model.eval()
        errors = []
        for x, y in self.val_loader:
            with self._autocast():
                pred = self.model(x.to(self.device))
            errors.append(relative_l2(pred.float(), y.to(self.device)))
        self.model.train()
        return float(torch.cat(errors).mean())

    def fit(self, progress: bool = True) -> list[dict[str, Any]]:
        """Train from the current epoch to ``config.epochs``; checkpoint after every epoch."""
        epochs = self.config.epochs
        self.model.train()
        for epoch in range(self.epoch, epochs):
            start = time.perf_counter()
            self.set_precision(precision_at(self.config.phases, epoch, epochs))
            lr = self.optimizer.param_groups[0]["lr"]
            skipped_before, losses = self.skipped_steps, []
            bar = tqdm(
                self.train_loader,
                desc=f"epoch {epoch + 1}/{epochs}",
                unit="batch",
                disable=not progress,
                leave=False,
            )
            for x, y in bar:
                loss = self.train_step(x, y)
                if loss is not None:
                    losses.append(loss)
                    bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
            val = self.validate()
            self.scheduler.step()
            record = {
                "epoch": epoch + 1,
                "train_loss": _json_number(float(np.mean(losses))) if losses else None,
                "val_rel_l2": _json_number(val),
                "lr": lr,
                "precision": self.precision,
                "skipped_steps": self.skipped_steps - skipped_before,
                "epoch_time_s": time.perf_counter() - start,
            }
            self.history.append(record)
            self.epoch = epoch + 1
            self.save()
            with open(self.run_dir / METRICS_FILE, "a") as f:  # after the checkpoint: see resume
                f.write(json.dumps(record) + "\n")
            if progress:
                tqdm.write(
                    f"epoch {record['epoch']}/{epochs}: train {record['train_loss']}, "
                    f"val rel-L2 {record['val_rel_l2']}, {record['epoch_time_s']:.2f} s"
                )
        return self.history

    def model_state(self) -> dict[str, Any]:
        """The contents of ``model.pt``: what a Surrogate needs, nothing for training."""
        return {
            "format": MODEL_FORMAT,
            "format_version": FORMAT_VERSION,
            "model_config": dict(self.model.config),
            "state_dict": self.model.state_dict(),
            "normalisers": self.normalisers.to_dict(),
            "grid": asdict(self.store.grid),
            "times_days": self.store.times_days.tolist(),
            "max_saturation": self.store.max_saturation,
            "input_channels": list(INPUT_CHANNELS),
            "split": {name: idx.tolist() for name, idx in self.split.items()},
            "store": self.store.path,
            "epoch": self.epoch,
        }

    def save(self) -> None:
        """Write ``checkpoint.pt`` then ``model.pt``, each atomically."""
        state = {
            "format": CHECKPOINT_FORMAT,
            "format_version": FORMAT_VERSION,
            "epoch": self.epoch,
            "history": self.history,
            "skipped_steps": self.skipped_steps,
            "store": self.store.path,
            "train_config": self.config.to_dict(),
            "model_config": dict(self.model.config),
            "normalisers": self.normalisers.to_dict(),
            "split": {name: idx.tolist() for name, idx in self.split.items()},
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": self._rng_state(),
        }
        atomic_torch_save(state, self.run_dir / CHECKPOINT_FILE)
        atomic_torch_save(self.model_state(), self.run_dir / MODEL_FILE)

    def _rng_state(self) -> dict[str, Any]:
        # numpy's legacy global state: unused here, but code we do not own may draw from it
        name, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002
        return {
            "python": random.getstate(),
            "numpy": (name, keys.tolist(), int(pos), int(has_gauss), float(cached)),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "loader": self.generator.get_state(),
        }

    def _restore_rng(self, state: Mapping[str, Any]) -> None:
        random.setstate(state["python"])
        name, keys, pos, has_gauss, cached = state["numpy"]
        keys = np.asarray(keys, dtype=np.uint32)
        np.random.set_state((name, keys, pos, has_gauss, cached))  # noqa: NPY002
        torch.set_rng_state(state["torch"])
        if state["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
        self.generator.set_state(state["loader"])


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - see Trainer._rng_state
    torch.manual_seed(seed)
