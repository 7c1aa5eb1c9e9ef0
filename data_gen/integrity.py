"""Store integrity: the ``done`` ledger, per-sample checksums read back, damage and its repair.

What is checked: every sample the ledger (``done``) records as written. The cheap check lists files
only: each chunk file holding a done sample must exist (each of its z chunks in a spatially chunked
store; an unwritten chunk reads as fill values, so only the listing tells) and the ledger chunk must
decode. The full check (``verify_store``, one read of the store) also decodes every chunk, naming a
truncated or altered chunk file, recomputes each done sample's checksum and compares it with the
stored one, and looks for non-finite values.

A damaged store is one in which a done sample is missing, undecodable, altered since written or
non-finite. Damaged samples are reported by index and seed (``DamagedSample`` in a
``VerifyReport``; ``StoreDamagedError`` with ``samples`` index -> reason, whose message names the
remedy, ``repair_hint``). A ledger chunk that cannot be decoded counts its samples as not done.

Repair: ``generate(..., repair=True)`` (``ccs-fno generate PATH --repair``) verifies the store,
marks the chunks holding damaged samples not done (``reset_ledger``) and regenerates them; since
sample ``i`` depends only on the master seed and ``i``, the repaired store equals an undamaged one.
``samples_digest`` and ``store_fingerprint`` identify a store's content (configuration, and the
chosen samples via their stored checksums) so a training run can be bound to its data.

Relation to ``data_gen.store``: that module owns the schema and the writing and opening of a store,
including ``sample_checksums`` (computed by ``write_chunk`` with the data, before the ledger). This
module reads what it wrote and imports from it; ``store`` never imports this module at module level
(``open_dataset`` imports ``verify_store`` inside its cheap check), so there is no import cycle.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
import zarr

from data_gen.scenarios import sample_seed
from data_gen.store import (
    CHECKSUM,
    LEDGER,
    SCHEMA_VERSION,
    StoreConfig,
    _positive_int,
    _variables,
    read_config,
    sample_checksums,
)


class StoreDamagedError(ValueError):
    """Samples the ledger records as done whose data is missing, unreadable, altered or non-finite.

    ``samples`` maps each damaged sample index to the reason.
    """

    def __init__(self, message: str, path: str | os.PathLike, samples: Mapping[int, str]) -> None:
        super().__init__(message)
        self.path = str(path)
        self.samples = dict(samples)


def repair_hint(path: str | os.PathLike, verified: bool = False) -> str:
    """The remedy for a damaged store, as commands (``verified``: the check has been run already)."""
    repair = f"`ccs-fno generate {path} --repair`"
    return (
        f"regenerate with {repair}"
        if verified
        else f"check with `ccs-fno verify {path}`, regenerate with {repair}"
    )


def _open_array(path: Path, name: str) -> zarr.Array:
    try:
        return zarr.open_array(path / name, mode="r")
    except Exception as err:  # a missing or unreadable zarr.json of one variable
        raise ValueError(
            f"{path} is not a valid ccs-fno store: variable {name!r} cannot be opened "
            f"({type(err).__name__}: {err})"
        ) from None


def _read_chunk(name: str, array: zarr.Array, samples: slice) -> np.ndarray:
    """The ``samples`` of one sample chunk (all its chunks along the other dims); raise OSError
    naming the (first) chunk file that cannot be decoded."""
    try:
        return array[samples]
    except Exception as err:  # a truncated or altered file: the codec's error names no file
        failed, error = _chunk_keys(name, array, samples)[0], err
        for key, block in zip(_chunk_keys(name, array, samples), _blocks(array, samples), strict=True):
            try:
                array[block]
            except Exception as block_err:
                failed, error = key, block_err
                break
        raise OSError(f"chunk file {failed} cannot be decoded ({error})") from None


def _chunk_indices(array: zarr.Array, samples: slice) -> list[tuple[int, ...]]:
    """Chunk grid indices of the sample chunk holding ``samples`` (the first along ``sample``),
    over every chunk along the other dims (several along ``z`` in a spatially chunked store)."""
    chunk = samples.start // array.chunks[0]
    rest = [range(-(-n // c)) for n, c in zip(array.shape[1:], array.chunks[1:], strict=True)]
    return [(chunk, *other) for other in itertools.product(*rest)]


def _chunk_keys(name: str, array: zarr.Array, samples: slice) -> list[str]:
    """The store-relative keys of the chunk files holding ``samples`` (see ``_chunk_indices``)."""
    return [f"{name}/{array.metadata.encode_chunk_key(i)}" for i in _chunk_indices(array, samples)]


def _blocks(array: zarr.Array, samples: slice) -> list[tuple[slice, ...]]:
    """The selections of ``samples`` within each chunk of ``_chunk_indices``."""
    return [
        (samples, *(slice(i * c, (i + 1) * c) for i, c in zip(index[1:], array.chunks[1:], strict=True)))
        for index in _chunk_indices(array, samples)
    ]


def _ledger(path: Path, config: StoreConfig) -> tuple[np.ndarray, dict[int, str]]:
    """Done flags read chunk by chunk, and the samples whose ledger chunk cannot be decoded.

    Samples of an undecodable ledger chunk count as not done: regenerating them is the repair.
    """
    array = _open_array(path, LEDGER)
    done = np.zeros(config.n_samples, dtype=bool)
    unreadable = {}
    for c in range(config.n_chunks):
        samples = config.chunk_slice(c)
        try:
            done[samples] = _read_chunk(LEDGER, array, samples)
        except OSError as err:
            unreadable.update({i: f"ledger {err}" for i in range(samples.start, samples.stop)})
    return done, unreadable


def ledger(path: str | os.PathLike) -> np.ndarray:
    """The ``done`` flags of every sample (bool, shape (n_samples,)).

    A ledger chunk that cannot be decoded counts as not done (its samples will be regenerated).
    """
    path = Path(path)
    return _ledger(path, read_config(path))[0]


def pending_chunks(path: str | os.PathLike) -> list[int]:
    """Indices of the chunks with at least one sample not done."""
    config = read_config(path)
    done = ledger(path)
    return [c for c in range(config.n_chunks) if not done[config.chunk_slice(c)].all()]


@dataclass(frozen=True)
class DamagedSample:
    """A sample recorded as done whose data is missing, undecodable, altered or non-finite."""

    index: int
    seed: int
    reason: str

    def __str__(self) -> str:
        return f"sample {self.index} (seed {self.seed}): {self.reason}"


@dataclass(frozen=True)
class VerifyReport:
    """Result of ``verify_store``: which done samples are damaged, and why."""

    path: str
    n_samples: int
    n_done: int
    damaged: tuple[DamagedSample, ...]
    full: bool  # checksums and values were read back (else: chunk files listed only)

    @property
    def ok(self) -> bool:
        return not self.damaged

    def to_dict(self) -> dict[str, Any]:
        return {
            "store": self.path,
            "ok": self.ok,
            "checked": "checksums" if self.full else "chunk files",
            "n_samples": self.n_samples,
            "n_done": self.n_done,
            "n_damaged": len(self.damaged),
            "damaged": [{"sample": d.index, "seed": d.seed, "reason": d.reason} for d in self.damaged],
        }

    def summary(self) -> str:
        checked = "checksums verified" if self.full else "chunk files listed"
        head = (
            f"{self.path}: {self.n_done} of {self.n_samples} samples done, "
            f"{len(self.damaged)} damaged ({checked})"
        )
        if self.ok:
            return head
        lines = [head + ":", *(f"  {d}" for d in self.damaged), repair_hint(self.path, verified=True)]
        return "\n".join(lines)


def _sample_variables(config: StoreConfig) -> list[str]:
    return [name for name in _variables(config) if name != LEDGER]


def _find_damage(path: Path, config: StoreConfig, full: bool) -> tuple[np.ndarray, dict[int, str]]:
    """Done flags and the damaged samples (index -> reason) of the store at ``path``.

    Always: samples of undecodable ledger chunks and done samples whose chunk file of any variable
    is missing (unwritten chunks read as fill values, so only the file listing tells). With
    ``full``: also chunks that cannot be decoded, checksum mismatches and non-finite values.
    """
    done, damaged = _ledger(path, config)
    arrays = {name: _open_array(path, name) for name in _sample_variables(config)}
    for c in range(config.n_chunks):
        samples = config.chunk_slice(c)
        rows = np.flatnonzero(done[samples])
        if rows.size == 0:
            continue
        indices = [samples.start + int(r) for r in rows]
        reasons, values = [], {}
        for name, array in arrays.items():
            missing = [key for key in _chunk_keys(name, array, samples) if not (path / key).is_file()]
            if missing:
                reasons.extend(f"chunk file {key} is missing" for key in missing)
            elif full:
                try:
                    values[name] = _read_chunk(name, array, samples)
                except OSError as err:
                    reasons.append(str(err))
        if reasons:
            damaged.update({i: "; ".join(reasons) for i in indices})
            continue
        if not full:
            continue
        stored = values.pop(CHECKSUM)
        actual = sample_checksums(values, samples.stop - samples.start)
        for r, i in zip(rows, indices, strict=True):
            bad = [n for n, v in values.items() if v.dtype.kind == "f" and not np.isfinite(v[r]).all()]
            if stored[r] != actual[r]:
                damaged[i] = "checksum mismatch (values altered since written)"
            elif bad:
                damaged[i] = f"non-finite values in {bad}"
    return done, damaged


def verify_store(path: str | os.PathLike, full: bool = True) -> VerifyReport:
    """Check every done sample of the store at ``path``; return the damaged ones by index and seed.

    ``full`` reads every chunk back and compares each done sample with its checksum (cost: one
    read of the store); ``full=False`` only checks that the chunk files of done samples exist.
    """
    path = Path(path)
    config = read_config(path)
    done, damaged = _find_damage(path, config, full)
    return VerifyReport(
        path=str(path),
        n_samples=config.n_samples,
        n_done=int(done.sum()),
        damaged=tuple(
            DamagedSample(i, sample_seed(config.master_seed, i), damaged[i]) for i in sorted(damaged)
        ),
        full=full,
    )


def damaged_error(report: VerifyReport) -> StoreDamagedError:
    """A ``StoreDamagedError`` describing ``report`` (which must list damaged samples)."""
    shown = "; ".join(map(str, report.damaged[:5]))
    more = f" (and {len(report.damaged) - 5} more)" if len(report.damaged) > 5 else ""
    return StoreDamagedError(
        f"{report.path} is damaged: {len(report.damaged)} done sample(s) cannot be trusted: "
        f"{shown}{more}; {repair_hint(report.path)}",
        report.path,
        {d.index: d.reason for d in report.damaged},
    )


def reset_ledger(path: str | os.PathLike, samples: Iterable[int]) -> list[int]:
    """Mark the chunks holding ``samples`` not done (before regenerating them); return the chunks."""
    config = read_config(path)
    chunks = sorted(
        {_positive_int("sample", i, config.n_samples, 0) // config.samples_per_chunk for i in samples}
    )
    for c in chunks:
        region = {"sample": config.chunk_slice(c)}
        n = region["sample"].stop - region["sample"].start
        xr.Dataset({LEDGER: ("sample", np.zeros(n, dtype=bool))}).to_zarr(
            path, region=region, mode="r+", zarr_format=3, consolidated=False
        )
    return chunks


def samples_digest(path: str | os.PathLike, indices: Sequence[int]) -> str:
    """A SHA-256 hex digest of the stored checksums of samples ``indices`` (order-independent).

    Cheap (reads the small ``checksum`` array only); equal digests mean the same samples with the
    same values. Every index must be a done sample.
    """
    path = Path(path)
    config = read_config(path)
    wanted = np.unique(
        np.asarray([_positive_int("index", i, config.n_samples, 0) for i in indices], np.int64)
    )
    done = ledger(path)
    if not done[wanted].all():
        raise ValueError(f"samples {wanted[~done[wanted]][:10].tolist()} of {path} are not done samples")
    try:
        checksums = _open_array(path, CHECKSUM)[:]
    except Exception as err:
        raise StoreDamagedError(
            f"{path}: the checksum array cannot be read ({err}); {repair_hint(path)}", path, {}
        ) from None
    digest = hashlib.sha256()
    digest.update(wanted.astype("<i8").tobytes())
    digest.update(checksums[wanted].astype("<i8").tobytes())
    return digest.hexdigest()


def store_fingerprint(path: str | os.PathLike, indices: Sequence[int] | None = None) -> dict[str, Any]:
    """What identifies a store's content, JSON-ready, to bind a training run to its data.

    ``config_sha256`` hashes the master seed and generator configuration; with ``indices``,
    ``samples_digest`` (see ``samples_digest``) covers those samples' values via their checksums.
    """
    path = Path(path)
    config = read_config(path)
    described = json.dumps({"master_seed": config.master_seed, **config.generator_config()}, sort_keys=True)
    out: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "config_sha256": hashlib.sha256(described.encode()).hexdigest(),
        "master_seed": config.master_seed,
        "n_samples": config.n_samples,
    }
    if indices is not None:
        out["samples_digest"] = samples_digest(path, indices)
    return out
