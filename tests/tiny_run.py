"""A tiny but real training run for the explorer's tests: real store, real (short) training."""

from __future__ import annotations

from pathlib import Path

from ccs_fno.train import ModelConfig, TrainConfig, Trainer
from data_gen.pipeline import run_chunk
from data_gen.scenarios import default_space
from data_gen.store import StoreConfig, create_store

TINY_RESOLUTION = 16
TINY_TIMES_DAYS = tuple(float(t) for t in range(0, 1001, 100))


def build_tiny_run(base: Path, resolution: int = TINY_RESOLUTION, n_samples: int = 8) -> Path:
    """Simulate ``n_samples`` channel scenarios (report times ``TINY_TIMES_DAYS``) into
    ``base/store.zarr`` in this process (no cluster) and train a small FNO on them for one epoch
    into ``base/run``; return the run dir."""
    space = default_space("channel", resolution, report_times_days=TINY_TIMES_DAYS)
    config = StoreConfig(space, master_seed=0, n_samples=n_samples, samples_per_chunk=4)
    store = base / "store.zarr"
    create_store(store, space, config.master_seed, n_samples, config.samples_per_chunk)
    for chunk in range(config.n_chunks):
        run_chunk(str(store), config, chunk)
    run_dir = base / "run"
    model = ModelConfig(width=8, modes=(4, 4), n_layers=2, projection_width=16)
    Trainer(store, run_dir, TrainConfig(epochs=1, batch_size=4, device="cpu"), model).fit(progress=False)
    return run_dir
