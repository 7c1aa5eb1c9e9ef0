"""The run directory: its files, what each holds, and how they are written and checked.

This module alone knows the layout of a training run (the trainer, the surrogate loader, the
CLI and the apps go through it):

* ``config.json``: the run's description (configs, store, its fingerprint, grid, times, split,
  normalisers, a random ``run_id``); written once, by rank 0, when the run starts.
* ``checkpoint.pt``: everything needed to resume (model, optimiser, scheduler, scaler, RNGs,
  epoch, history), replaced atomically after every epoch. It holds the unwrapped model's
  weights (no DDP prefix) and the optimiser state of the full model, so it does not depend on
  the number of processes: a run trained on P = 2 resumes on P = 1 and back.
* ``model.pt``: what ``load_surrogate`` needs, nothing for training; after every epoch.
* ``metrics.jsonl``: one JSON line per finished epoch, appended after the checkpoint (so a resume
  rewrites it from the checkpoint's history and drops lines of epochs that were never saved).
* ``provenance.json`` (packaged surrogates only, e.g. ``ccs_fno/models/default``): the commands,
  seeds, data configuration and measured errors of the model beside it.

Every file carries the ``run_id`` of ``config.json``: a ``model.pt`` or ``checkpoint.pt`` copied
in from another run is refused. The store fingerprint (its configuration digest, master seed,
sample count and a digest of the split's input data) binds the run to its data: resuming or
evaluating a split on another store is refused with both fingerprints in the message.

Writes are atomic (``ccs_fno.checkpoint``); a kill leaves the old file or the new one, and the
temporary files a kill mid-write leaves (``.NAME.tmp-*``) are removed when the run is opened
again. A full disk ends in ``RunDirFull`` (an OSError naming the file, the free space and the
remedy); the previous checkpoint stays intact, so the run remains resumable.
"""

from __future__ import annotations

import errno
import json
import shutil
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ccs_fno.checkpoint import atomic_torch_save, atomic_write_bytes, load_torch_file

CONFIG_FILE = "config.json"
CHECKPOINT_FILE = "checkpoint.pt"
MODEL_FILE = "model.pt"
METRICS_FILE = "metrics.jsonl"
PROVENANCE_FILE = "provenance.json"  # beside a packaged model.pt: how it was made (commands, seeds, errors)
RUN_FILES = (CONFIG_FILE, CHECKPOINT_FILE, MODEL_FILE, METRICS_FILE)
CHECKPOINT_FORMAT, MODEL_FORMAT, FORMAT_VERSION = "ccs-fno-checkpoint", "ccs-fno-model", 1
MODEL_KEYS = ("model_config", "state_dict", "normalisers", "grid", "times_days", "max_saturation")
CHECKPOINT_KEYS = (
    "store",
    "train_config",
    "model_config",
    "model",
    "optimizer",
    "scheduler",
    "scaler",
    "rng",
    "epoch",
    "history",
    "skipped_steps",
    "split",
    "normalisers",
)


class RunDirFull(OSError):
    """The disk filled up while a run file was written; the previous file is intact."""


def new_run_id() -> str:
    return uuid.uuid4().hex


def fingerprint_differences(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Human-readable differences between two data fingerprints (empty: the same data).

    A fingerprint (``TrainingData.fingerprint``) holds the store's ``config_sha256``,
    ``master_seed``, ``n_samples`` and a ``split_sha256`` digest per split.
    """
    out = []
    for key in ("schema_version", "config_sha256", "master_seed", "n_samples"):
        if saved.get(key) != current.get(key):
            out.append(f"{key}: run {saved.get(key)!r}, store {current.get(key)!r}")
    for name, digest in dict(saved.get("split_sha256", {})).items():
        if current.get("split_sha256", {}).get(name) != digest:
            out.append(f"the data of the {name!r} split differ")
    return out


class RunDir:
    """One training run's directory (see the module docstring). Writing is rank 0's job."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def file(self, name: str) -> Path:
        return self.path / name

    def has_checkpoint(self) -> bool:
        return self.file(CHECKPOINT_FILE).is_file()

    def refuse_existing(self) -> None:
        """Raise FileExistsError when the directory already holds a run (a new run would clobber it)."""
        if self.has_checkpoint():
            raise FileExistsError(
                f"{self.path} already holds a training run ({CHECKPOINT_FILE}); resume it "
                "(--resume / Trainer.resume) or choose another run directory"
            )

    def clean_litter(self) -> list[Path]:
        """Remove temporary files left by a kill during an atomic write; return them."""
        if not self.path.is_dir():
            return []
        litter = [p for p in self.path.glob(".*.tmp-*") if p.is_file()]
        for p in litter:
            p.unlink(missing_ok=True)
        return litter

    # -- writing (rank 0) ----------------------------------------------------------------------

    def _write(self, name: str, write: Any) -> None:
        try:
            write(self.file(name))
        except OSError as err:
            if err.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            self.clean_litter()
            free = shutil.disk_usage(self.path).free if self.path.exists() else 0
            raise RunDirFull(
                err.errno,
                f"the disk is full: {self.file(name)} could not be written ({free / 1e6:.1f} MB "
                "free); the previous checkpoint is intact, so free some space and continue with "
                "`ccs-fno train STORE --run-dir DIR --resume`",
            ) from None

    def start(self, config: Mapping[str, Any]) -> None:
        """Create the directory with ``config.json`` and an empty ``metrics.jsonl``."""
        self.path.mkdir(parents=True, exist_ok=True)
        self._write(CONFIG_FILE, lambda p: atomic_write_bytes(p, json.dumps(config, indent=2).encode()))
        self._write(METRICS_FILE, lambda p: atomic_write_bytes(p, b""))

    def write_metrics(self, history: Iterable[Mapping[str, Any]]) -> None:
        """Replace ``metrics.jsonl`` by ``history`` (used on resume)."""
        lines = "".join(json.dumps(dict(r)) + "\n" for r in history).encode()
        self._write(METRICS_FILE, lambda p: atomic_write_bytes(p, lines))

    def append_metrics(self, record: Mapping[str, Any]) -> None:
        def append(path: Path) -> None:
            with open(path, "a") as f:
                f.write(json.dumps(dict(record)) + "\n")

        self._write(METRICS_FILE, append)

    def save(self, checkpoint: Mapping[str, Any], model: Mapping[str, Any]) -> None:
        """Write ``checkpoint.pt`` then ``model.pt``, each atomically, with their formats."""
        self._write(
            CHECKPOINT_FILE,
            lambda p: atomic_torch_save(
                {"format": CHECKPOINT_FORMAT, "format_version": FORMAT_VERSION, **checkpoint}, p
            ),
        )
        self._write(
            MODEL_FILE,
            lambda p: atomic_torch_save(
                {"format": MODEL_FORMAT, "format_version": FORMAT_VERSION, **model}, p
            ),
        )

    # -- reading ------------------------------------------------------------------------------

    def read_config(self) -> dict[str, Any]:
        path = self.file(CONFIG_FILE)
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: {self.path} is not a ccs-fno training run")
        try:
            return json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{path} is not valid JSON ({err}); the run directory is damaged") from None

    def run_id(self) -> str | None:
        """The run's id from ``config.json`` (None when there is none, e.g. a bare model.pt)."""
        return self.read_config().get("run_id") if self.file(CONFIG_FILE).is_file() else None

    def _check_run_id(self, state: Mapping[str, Any], path: Path) -> None:
        expected = self.run_id()
        if expected is not None and state.get("run_id") != expected:
            raise ValueError(
                f"{path} belongs to another training run (run_id {state.get('run_id')!r}; "
                f"{self.file(CONFIG_FILE)} says {expected!r}): it was copied in from elsewhere. "
                "Restore this run's own file or train again"
            )

    def load_checkpoint(self) -> dict[str, Any]:
        path = self.file(CHECKPOINT_FILE)
        state = load_torch_file(path, CHECKPOINT_FORMAT, FORMAT_VERSION, CHECKPOINT_KEYS)
        self._check_run_id(state, path)
        return state


def load_model_file(path: str | Path) -> dict[str, Any]:
    """The contents of a ``model.pt`` (a run directory or the file itself), checked.

    A ``model.pt`` inside a run directory must carry that run's ``run_id``.
    """
    path = Path(path)
    run = RunDir(path) if path.is_dir() else RunDir(path.parent)
    path = path / MODEL_FILE if path.is_dir() else path
    state = load_torch_file(path, MODEL_FORMAT, FORMAT_VERSION, MODEL_KEYS)
    if path.name == MODEL_FILE:
        run._check_run_id(state, path)
    return state
