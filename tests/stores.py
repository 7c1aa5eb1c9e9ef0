"""Real ccs-fno stores for tests, simulated in this process (no dask cluster)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from data_gen.pipeline import run_chunk
from data_gen.scenarios import default_space
from data_gen.store import create_store, read_config


def build_store(
    path: Path,
    n_samples: int,
    master_seed: int,
    report_times_days: Sequence[float],
    resolution: int = 16,
    retries: int = 1,
    samples_per_chunk: int = 4,
    spatial_chunks: int = 1,
) -> Path:
    """Create a channel store at ``path`` and simulate every chunk into it."""
    space = default_space("channel", resolution=resolution, report_times_days=tuple(report_times_days))
    create_store(
        path,
        space,
        master_seed=master_seed,
        n_samples=n_samples,
        samples_per_chunk=samples_per_chunk,
        spatial_chunks=spatial_chunks,
    )
    config = read_config(path)
    for chunk in range(config.n_chunks):
        run_chunk(str(path), config, chunk, retries=retries)
    return path
