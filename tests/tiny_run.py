"""A tiny but real training run for the explorer's tests: real store, real (short) training."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from stores import build_store

from ccs_fno.train import ModelConfig, TrainConfig, Trainer
from ccs_fno.uq import Calibration

TINY_RESOLUTION = 16
TINY_TIMES_DAYS = tuple(float(t) for t in range(0, 1001, 100))


def build_tiny_run(
    base: Path,
    resolution: int = TINY_RESOLUTION,
    n_samples: int = 8,
    epochs: int = 1,
    lr: float = 1e-3,
    master_seed: int = 0,
) -> Path:
    """Simulate ``n_samples`` channel scenarios (report times ``TINY_TIMES_DAYS``) into
    ``base/store.zarr`` in this process (no cluster) and train a small FNO on them for ``epochs``
    (one: a model that runs; ~20 at lr 1e-2: one whose output follows the permeability) into
    ``base/run``; return the run dir."""
    store = build_store(base / "store.zarr", n_samples, master_seed, TINY_TIMES_DAYS, resolution=resolution)
    run_dir = base / "run"
    model = ModelConfig(width=8, modes=(4, 4), n_layers=2, projection_width=16)
    Trainer.start(store, run_dir, TrainConfig(epochs=epochs, batch_size=4, lr=lr, device="cpu"), model).fit(
        progress=False
    )
    return run_dir


def fit_calibration(
    grid, times_days: Sequence[float] = TINY_TIMES_DAYS, n: int = 10, seed: int = 0
) -> Calibration:
    """A real conformal calibration (levels 0.8, 0.9) of ``n`` synthetic prediction/truth pairs
    on ``grid`` at ``times_days``: what the apps show once a run has one (``Calibration.save``)."""
    rng = np.random.default_rng(seed)
    prediction = rng.uniform(0.0, 0.6, size=(n, len(times_days), *grid.shape))
    truth = np.clip(prediction + rng.normal(0.0, 0.05, size=prediction.shape), 0.0, 0.8)
    middle = (grid.nz // 2, 2)
    return Calibration.fit(prediction, truth, grid, middle, times_days, field_shape="absolute")
