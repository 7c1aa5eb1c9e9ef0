"""What a run trains on: the store, its split and normalisers, and how ranks share the samples.

``TrainingData.prepare(store, config)`` splits the done samples (``split_seed``) and fits the
normalisers on the training split; ``TrainingData.restore`` rebuilds the same object from a
checkpoint; ``fingerprint()`` identifies the data (the trainer refuses a store whose fingerprint
differs from the one the run recorded).

Sharded reading (data parallelism over P processes, global batch B, per-rank batch B / P):

* training: ``GlobalBatchSampler``, a ``DistributedSampler`` seeded with the run's seed and
  re-shuffled by ``set_epoch`` every epoch. Each epoch permutes the training samples (the
  permutation depends on the seed and the epoch only, never on P), keeps the largest multiple of
  B (the remainder, ``n_train mod B`` samples, a different random set every epoch, is not used
  that epoch) and deals the kept ones round-robin, so global batch k is the same set of samples
  for every P: rank r's k-th batch is ``perm[k*B + r :(k+1)*B : P]``. Each rank reads only its
  own samples from the Zarr store (a chunk is read by a rank only if it holds one of them;
  ``--samples-per-chunk 1`` stores make per-rank I/O exactly 1/P). There is no padding, so no
  sample counts twice in a step, and every rank takes the same number of steps.
* evaluation: ``shard(indices)`` gives rank r the contiguous block r of P near-equal blocks;
  metrics are sums and counts all-reduced over the ranks, so every sample counts exactly once
  (``DistributedSampler`` would pad with repeated samples).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DistributedSampler

from ccs_fno.data import (
    CALIBRATION,
    Normalisers,
    StoreSummary,
    ZarrSaturationDataset,
    fit_normalisers,
    read_store,
    split_samples,
)
from ccs_fno.distributed import shard_range
from data_gen.integrity import samples_digest, store_fingerprint

SPLIT_NAMES = ("train", "val", "test")


@dataclass(frozen=True)
class TrainingData:
    """A store with the run's split (sorted sample indices) and input normalisers."""

    store: StoreSummary
    split: dict[str, np.ndarray]
    normalisers: Normalisers

    @classmethod
    def prepare(
        cls,
        store: Any,
        val_fraction: float,
        test_fraction: float,
        split_seed: int,
        calibration_fraction: float = 0.0,
    ) -> TrainingData:
        """Split the done samples of ``store`` (a path or summary), fit normalisers on train.

        ``calibration_fraction > 0`` also holds out a ``calibration`` split (``split_samples``).
        """
        summary = store if isinstance(store, StoreSummary) else read_store(store)
        split = split_samples(
            summary.done_indices, val_fraction, test_fraction, split_seed, calibration_fraction
        )
        return cls(summary, split, fit_normalisers(summary, split["train"]))

    @classmethod
    def restore(cls, store: Any, split: Mapping[str, Any], normalisers: Normalisers) -> TrainingData:
        """The data of a saved run (its split and normalisers) on ``store``.

        Whether ``store`` holds the data the run recorded is the caller's check: compare
        ``fingerprint()`` with the saved one (``ccs_fno.run_dir.fingerprint_differences``).
        """
        summary = store if isinstance(store, StoreSummary) else read_store(store)
        names = (*SPLIT_NAMES, CALIBRATION) if CALIBRATION in split else SPLIT_NAMES
        return cls(summary, {name: summary.check_done(split[name]) for name in names}, normalisers)

    def fingerprint(self) -> dict[str, Any]:
        """The data's identity for the run files: the store's configuration digest, master seed
        and sample count (``data_gen.store.store_fingerprint``) and, per split, a digest of its
        samples' stored checksums (inputs and saturation; cheap: no field is read)."""
        path = self.store.path
        digests = {name: samples_digest(path, idx) for name, idx in self.split.items()}
        return {**store_fingerprint(path), "split_sha256": digests}

    def split_lists(self) -> dict[str, list[int]]:
        return {name: idx.tolist() for name, idx in self.split.items()}

    def dataset(
        self, name: str, indices: np.ndarray | None = None, z_range: tuple[int, int] | None = None
    ) -> ZarrSaturationDataset:
        """The samples of split ``name`` (or the given subset of it) as a torch Dataset; with
        ``z_range`` only those rows of every sample (a spatially sharded model's slab)."""
        chosen = self.split[name] if indices is None else indices
        return ZarrSaturationDataset(self.store, chosen, self.normalisers, z_range=z_range)


def shard(indices: np.ndarray, parts: int, index: int) -> np.ndarray:
    """Contiguous block ``index`` of ``parts`` near-equal blocks of ``indices`` (no padding)."""
    start, stop = shard_range(len(indices), parts, index)
    return np.asarray(indices)[start:stop]


class GlobalBatchSampler(DistributedSampler):
    """This rank's training samples, epoch by epoch; see the module docstring.

    ``global_batch`` must be a multiple of ``num_replicas``; ``set_epoch(e)`` before each epoch.
    """

    def __init__(self, dataset: Any, global_batch: int, num_replicas: int, rank: int, seed: int) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        if global_batch % num_replicas:
            raise ValueError(
                f"the global batch size {global_batch} is not divisible by the {num_replicas} "
                "data-parallel processes; choose a batch size that is a multiple of it"
            )
        self.global_batch = global_batch
        self.steps = len(dataset) // global_batch
        self.num_samples = self.steps * (global_batch // num_replicas)
        self.total_size = self.steps * global_batch

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator()
        g.manual_seed(self.seed + self.epoch)
        order = torch.randperm(len(self.dataset), generator=g)[: self.total_size]
        return iter(order[self.rank :: self.num_replicas].tolist())

    def __len__(self) -> int:
        return self.num_samples


def check_data_parallel(n_train: int, global_batch: int, data_parallel: int) -> None:
    """Raise a clear ValueError unless P processes can share batches of ``global_batch``."""
    if isinstance(data_parallel, bool) or not isinstance(data_parallel, int) or data_parallel < 1:
        raise ValueError(f"the number of processes must be an int >= 1, got {data_parallel!r}")
    if data_parallel > n_train:
        raise ValueError(
            f"{data_parallel} data-parallel processes for {n_train} training samples: every "
            f"process needs at least one sample; use at most {n_train} processes"
        )
    if global_batch % data_parallel:
        lower = global_batch - global_batch % data_parallel
        raise ValueError(
            f"the global batch size {global_batch} is not divisible by the {data_parallel} "
            f"data-parallel processes (each takes batch_size / P); use --batch-size "
            f"{max(lower, data_parallel)} or {lower + data_parallel}"
        )
    if global_batch > n_train:
        raise ValueError(
            f"the global batch size {global_batch} exceeds the {n_train} training samples: an "
            f"epoch would have no step; use --batch-size <= {n_train}"
        )
