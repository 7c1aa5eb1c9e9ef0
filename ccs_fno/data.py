"""Training data: the store's samples as model inputs and targets, the split and the normalisers.

Inputs of one sample, float32 [C, Z, X] with C = len(INPUT_CHANNELS):

* ``log_permeability``: (ln k_mD - mean) / std;
* ``porosity``: (phi - mean) / std;
* ``rate``: (rate_m3_per_day - mean) / std, a constant map;
* ``injector`` / ``producer``: a Gaussian bump exp(-r^2 / (2 sigma^2)) around the well cell's
  centre, r and sigma = ``well_sigma_m`` in metres (fixed when the normalisers are fitted), so a map
  describes the same physical well on any grid of the section (zero-shot super-resolution).

Means and standard deviations are fitted on the training samples only; a feature that is constant
there (e.g. porosity in a constant-porosity ensemble) is centred, not scaled. Target: the CO2
saturation [T, Z, X], already in [0, 1].

``ZarrSaturationDataset`` reads the store lazily: per-sample scalars are read once, fields per item
through an xarray handle opened in the process that reads (so DataLoader workers open their own).
With ``z_range=(z0, z1)`` (a rank of a spatially parallel model) it reads rows z0..z1-1 only: just
the Zarr chunks overlapping them (a store generated with ``--spatial-chunks`` has several along z),
and encodes them with their global z coordinates, so a slab equals the same rows of the full sample.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr
from torch.utils.data import Dataset

from data_gen.grid import Grid
from data_gen.integrity import StoreDamagedError, repair_hint
from data_gen.store import open_dataset, read_config

INPUT_CHANNELS = ("log_permeability", "porosity", "rate", "injector", "producer")
SPLITS = ("train", "val", "test")
CALIBRATION = "calibration"  # the optional split for conformal calibration (ccs_fno.uq)
WELL_SIGMA_CELLS = 1.5  # bump width in training cells; stored in metres


@dataclass(frozen=True)
class Standardiser:
    """``(value - mean) / std``; ``std`` is 1 for a feature constant over the fitted data."""

    mean: float
    std: float

    def __post_init__(self) -> None:
        mean, std = float(self.mean), float(self.std)
        if not (math.isfinite(mean) and math.isfinite(std) and std > 0):
            raise ValueError(
                f"a standardiser needs a finite mean and a finite std > 0, got mean={self.mean!r}, "
                f"std={self.std!r}"
            )
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    @classmethod
    def fit(cls, values: np.ndarray) -> Standardiser:
        values = np.asarray(values, dtype=np.float64)
        mean, std = float(values.mean()), float(values.std())
        constant = not std > 1e-6 * abs(mean) + 1e-12  # float noise on a constant feature
        return cls(mean, 1.0 if constant else std)

    def __call__(self, values: np.ndarray) -> np.ndarray:
        return (values - self.mean) / self.std


@dataclass(frozen=True)
class Normalisers:
    """Input scalings fitted on the training samples; saved with the model as a plain dict."""

    log_permeability: Standardiser
    porosity: Standardiser
    rate: Standardiser
    well_sigma_m: float

    def __post_init__(self) -> None:
        sigma = float(self.well_sigma_m)
        if not (math.isfinite(sigma) and sigma > 0):
            raise ValueError(f"well_sigma_m must be a finite length > 0 m, got {self.well_sigma_m!r}")
        object.__setattr__(self, "well_sigma_m", sigma)

    @classmethod
    def fit(
        cls,
        permeability_md: np.ndarray,
        porosity: np.ndarray,
        rate_m3_per_day: np.ndarray,
        grid: Grid,
    ) -> Normalisers:
        """Fit on training samples: fields (n, z, x), rates (n,), on the training ``grid``."""
        return cls(
            log_permeability=Standardiser.fit(np.log(permeability_md)),
            porosity=Standardiser.fit(porosity),
            rate=Standardiser.fit(rate_m3_per_day),
            well_sigma_m=WELL_SIGMA_CELLS * max(grid.dx_m, grid.dz_m),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Normalisers:
        """Rebuild from ``to_dict`` output; a missing or malformed entry is named in the error."""
        if not isinstance(data, Mapping):
            raise ValueError(f"normalisers must be a mapping, got {type(data).__name__}")
        missing = [f for f in ("log_permeability", "porosity", "rate", "well_sigma_m") if f not in data]
        if missing:
            raise ValueError(f"normalisers {missing} are missing (have {sorted(data)})")
        scalers = {}
        for name in ("log_permeability", "porosity", "rate"):
            entry = data[name]
            if not isinstance(entry, Mapping) or set(entry) != {"mean", "std"}:
                raise ValueError(f"normaliser {name!r} must be {{'mean': ..., 'std': ...}}, got {entry!r}")
            scalers[name] = Standardiser(**entry)
        return cls(**scalers, well_sigma_m=data["well_sigma_m"])

    def encode(
        self,
        permeability_md: np.ndarray,
        porosity: np.ndarray,
        rate_m3_per_day: np.ndarray,
        injector_zx: np.ndarray,
        producer_zx: np.ndarray,
        z_m: np.ndarray,
        x_m: np.ndarray,
        z_range: tuple[int, int] | None = None,
    ) -> np.ndarray:
        """Model inputs float32 [n, C, Z, X] from fields (n, Z, X), rates (n,), well cells (n, 2).

        ``z_m`` / ``x_m`` are the cell-centre coordinates (m) of the grid the fields live on (the
        whole grid: well cells index them). With ``z_range=(z0, z1)`` the fields hold rows
        z0..z1-1 of that grid only, and so do the inputs: the same values as those rows of the
        whole grid's encoding.
        """
        rows = z_slice(z_range, len(z_m))
        k = np.asarray(permeability_md, dtype=np.float64)
        rate = self.rate(np.asarray(rate_m3_per_day, dtype=np.float64))
        channels = [
            self.log_permeability(np.log(k)),
            self.porosity(np.broadcast_to(np.asarray(porosity, dtype=np.float64), k.shape)),
            np.broadcast_to(rate[:, None, None], k.shape),
            self._bumps(injector_zx, z_m, x_m)[:, rows],
            self._bumps(producer_zx, z_m, x_m)[:, rows],
        ]
        return np.stack(channels, axis=1).astype(np.float32)

    def encode_torch(
        self,
        log_permeability_md: torch.Tensor,
        rate_m3_per_day: torch.Tensor,
        porosity: np.ndarray,
        injector_zx: np.ndarray,
        producer_zx: np.ndarray,
        z_m: np.ndarray,
        x_m: np.ndarray,
    ) -> torch.Tensor:
        """``encode`` with ln k (ln mD, [n, Z, X]) and the rate (m^3/day, [n]) as torch tensors,
        differentiable in both (inversion through the surrogate); the other channels as ``encode``.
        Returns [n, C, Z, X] in the dtype and on the device of ``log_permeability_md``."""
        n, nz, nx = log_permeability_md.shape
        ones = np.ones((n, nz, nx))
        fixed = self.encode(ones, porosity, np.ones(n), injector_zx, producer_zx, z_m, x_m)
        channels = list(torch.from_numpy(fixed).to(log_permeability_md).unbind(1))
        channels[INPUT_CHANNELS.index("log_permeability")] = self.log_permeability(log_permeability_md)
        rate = self.rate(rate_m3_per_day.to(log_permeability_md))
        channels[INPUT_CHANNELS.index("rate")] = rate[:, None, None].expand(n, nz, nx)
        return torch.stack(channels, dim=1)

    def _bumps(self, cells_zx: np.ndarray, z_m: np.ndarray, x_m: np.ndarray) -> np.ndarray:
        """Gaussian bumps (n, Z, X) around the centres of the cells ``cells_zx`` (n, 2)."""
        cells = np.asarray(cells_zx, dtype=np.int64)
        z_m, x_m = np.asarray(z_m, dtype=np.float64), np.asarray(x_m, dtype=np.float64)
        scale = 2.0 * self.well_sigma_m**2
        gz = np.exp(-np.square(z_m[None, :] - z_m[cells[:, 0], None]) / scale)
        gx = np.exp(-np.square(x_m[None, :] - x_m[cells[:, 1], None]) / scale)
        return gz[:, :, None] * gx[:, None, :]


def z_slice(z_range: tuple[int, int] | None, nz: int) -> slice:
    """Rows ``z_range = (z0, z1)`` (z0..z1-1, 0 <= z0 < z1 <= nz) as a slice; None: all ``nz`` rows."""
    if z_range is None:
        return slice(0, nz)
    try:
        z0, z1 = z_range
    except (TypeError, ValueError):
        z0 = z1 = None
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in (z0, z1)):
        raise ValueError(f"z_range must be a pair of integers (z0, z1), got {z_range!r}")
    if not 0 <= z0 < z1 <= nz:
        raise ValueError(f"z_range must satisfy 0 <= z0 < z1 <= nz = {nz} (rows z0..z1-1), got {z_range!r}")
    return slice(int(z0), int(z1))


def _split_counts(n: int, fractions: Mapping[str, float]) -> dict[str, int]:
    """``round(fraction * n)`` samples per named fraction (at least one when it is > 0)."""
    counts = {}
    for name, fraction in fractions.items():
        if isinstance(fraction, bool) or not (isinstance(fraction, (int, float)) and 0.0 <= fraction < 1.0):
            raise ValueError(f"{name}_fraction must be a number in [0, 1), got {fraction!r}")
        counts[name] = max(round(fraction * n), 1) if fraction > 0 else 0
    return counts


def split_samples(
    done_indices: Sequence[int],
    val_fraction: float,
    test_fraction: float,
    seed: int,
    calibration_fraction: float = 0.0,
) -> dict[str, np.ndarray]:
    """Split sample indices into sorted ``train``/``val``/``test`` arrays, from ``seed`` alone.

    ``val`` gets ``round(val_fraction * n)`` samples (at least one when the fraction is > 0),
    likewise ``test``; ``train`` the rest, which must not be empty.

    With ``calibration_fraction > 0`` a fourth split, ``calibration``, is taken after ``test``
    from the same permutation: samples kept away from training *and* model selection, for
    conformal calibration of the surrogate's error (``ccs_fno.uq``). Without it there is no
    ``calibration`` key and the split is bit-identical to that of runs made before it existed.
    """
    indices = np.unique(np.asarray(done_indices, dtype=np.int64))
    n = indices.size
    fractions = {"val": val_fraction, "test": test_fraction}
    if calibration_fraction:
        fractions[CALIBRATION] = calibration_fraction
    counts = _split_counts(n, fractions)
    if n - sum(counts.values()) < 1:
        held = ", ".join(f"{name} ({count})" for name, count in counts.items())
        raise ValueError(
            f"{n} done sample(s) cannot be split into {held} and a non-empty train set; "
            "generate more samples or lower the fractions"
        )
    order = np.random.default_rng(seed).permutation(indices)
    split, start = {}, 0
    for name, count in counts.items():
        split[name] = np.sort(order[start : start + count])
        start += count
    split["train"] = np.sort(order[start:])
    return split


def heldout_split(
    done_indices: Sequence[int], calibration_fraction: float, seed: int
) -> dict[str, np.ndarray]:
    """Split a held-out store (no sample of it ever trained or selected a model) into sorted
    ``calibration`` and ``test`` arrays, from ``seed`` alone: ``calibration`` gets
    ``round(calibration_fraction * n)`` samples (at least one), ``test`` the rest (not empty)."""
    indices = np.unique(np.asarray(done_indices, dtype=np.int64))
    n = indices.size
    if not calibration_fraction:
        raise ValueError(f"calibration_fraction must lie in (0, 1), got {calibration_fraction!r}")
    n_cal = _split_counts(n, {CALIBRATION: calibration_fraction})[CALIBRATION]
    if n - n_cal < 1:
        raise ValueError(
            f"{n} done sample(s) cannot be split into calibration ({n_cal}) and a non-empty test "
            "set; generate more samples or lower calibration_fraction"
        )
    order = np.random.default_rng(seed).permutation(indices)
    return {CALIBRATION: np.sort(order[:n_cal]), "test": np.sort(order[n_cal:])}


@dataclass(frozen=True)
class StoreSummary:
    """What training needs to know about a store, read once: grid, times, per-sample scalars."""

    path: str
    grid: Grid
    times_days: np.ndarray
    max_saturation: float
    done: np.ndarray
    rate_m3_per_day: np.ndarray
    injector_zx: np.ndarray
    producer_zx: np.ndarray

    @property
    def done_indices(self) -> np.ndarray:
        return np.flatnonzero(self.done)

    def check_done(self, indices: Sequence[int]) -> np.ndarray:
        """``indices`` as an int array, or raise naming those that are not done samples."""
        indices = np.asarray(indices, dtype=np.int64)
        bad = indices[(indices < 0) | (indices >= self.done.size)]
        if bad.size == 0:
            bad = indices[~self.done[indices]]
        if bad.size:
            raise ValueError(
                f"samples {bad[:10].tolist()} of {self.path} are not done samples "
                f"(the store has {int(self.done.sum())} done of {self.done.size})"
            )
        return indices


def read_store(path: str | os.PathLike) -> StoreSummary:
    """Validate the store at ``path`` (schema, variables) and read its small per-sample data."""
    path = str(Path(path).resolve())
    config = read_config(path)
    with open_dataset(path) as ds:
        done = ds["done"].values.astype(bool)
        if not done.any():
            raise ValueError(f"{path} has no done samples: generate (or resume) the store first")

        def cells(well: str) -> np.ndarray:
            return np.stack([ds[f"{well}_z"].values, ds[f"{well}_x"].values], axis=1)

        return StoreSummary(
            path=path,
            grid=config.space.grid,
            times_days=ds["time"].values.astype(np.float64),
            max_saturation=config.space.simulation.fluids.max_co2_saturation,
            done=done,
            rate_m3_per_day=ds["rate_m3_per_day"].values.astype(np.float64),
            injector_zx=cells("injector"),
            producer_zx=cells("producer"),
        )


def open_fields(path: str) -> xr.Dataset:
    """A lazily indexed handle on a store (no dask): a read touches only the chunks it needs."""
    return xr.open_zarr(path, consolidated=False, zarr_format=3, chunks=None)


def _read_checked(
    store: StoreSummary, ds: xr.Dataset, name: str, indices: np.ndarray, rows: slice
) -> np.ndarray:
    """Variable ``name`` of done samples ``indices``, z ``rows`` only (lazy indexing: only the
    chunks overlapping them are read); ``StoreDamagedError`` naming the store, the variable and
    the samples if a chunk cannot be decoded or a value is not finite (never NaN out)."""
    try:
        values = ds[name].isel(sample=indices, z=rows).values
    except Exception as err:  # a truncated or altered chunk file: the codec names no sample
        raise StoreDamagedError(
            f"{store.path}: variable {name!r} of samples {indices[:10].tolist()} cannot be read "
            f"({type(err).__name__}: {err}); the store is damaged: {repair_hint(store.path)}",
            store.path,
            {int(i): f"{name} cannot be read" for i in indices},
        ) from None
    finite = np.isfinite(values.reshape(indices.size, -1)).all(axis=1)
    if not finite.all():
        bad = indices[~finite]
        raise StoreDamagedError(
            f"{store.path}: samples {bad[:10].tolist()} are marked done but their {name!r} holds "
            f"non-finite values (a missing or damaged chunk reads as NaN); {repair_hint(store.path)}",
            store.path,
            {int(i): f"non-finite {name}" for i in bad},
        )
    return values


def read_fields(
    store: StoreSummary,
    indices: Sequence[int],
    handle: xr.Dataset | None = None,
    z_range: tuple[int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Permeability (mD) and porosity, float64 (n, Z, X), of done samples ``indices``; with
    ``z_range=(z0, z1)`` rows z0..z1-1 only, (n, z1 - z0, X), reading only the chunks they touch.

    Raises ``StoreDamagedError`` (a ValueError) naming the samples if their data is unreadable or
    not finite.
    """
    indices = store.check_done(indices)
    rows = z_slice(z_range, store.grid.nz)
    ds = open_fields(store.path) if handle is None else handle
    k, phi = (_read_checked(store, ds, name, indices, rows) for name in ("permeability", "porosity"))
    return k.astype(np.float64), phi.astype(np.float64)


def read_saturation(
    store: StoreSummary,
    indices: Sequence[int],
    handle: xr.Dataset | None = None,
    z_range: tuple[int, int] | None = None,
) -> np.ndarray:
    """CO2 saturation, float32 (n, T, Z, X), of done samples ``indices``; with ``z_range`` rows
    z0..z1-1 only (n, T, z1 - z0, X) (errors as ``read_fields``)."""
    indices = store.check_done(indices)
    rows = z_slice(z_range, store.grid.nz)
    ds = open_fields(store.path) if handle is None else handle
    return _read_checked(store, ds, "saturation", indices, rows).astype(np.float32)


def fit_normalisers(store: StoreSummary, train_indices: Sequence[int]) -> Normalisers:
    """Normalisers fitted on the training samples ``train_indices`` of ``store`` only."""
    indices = store.check_done(train_indices)
    k, phi = read_fields(store, indices)
    return Normalisers.fit(k, phi, store.rate_m3_per_day[indices], store.grid)


class ZarrSaturationDataset(Dataset):
    """(inputs [C, Z, X], saturation [T, Z, X]) float32 tensors of done samples ``indices``.

    With ``z_range=(z0, z1)``: rows z0..z1-1 only, [C, z1 - z0, X] and [T, z1 - z0, X], read from
    the Zarr chunks overlapping them alone and encoded with their global z coordinates (equal to
    those rows of the whole sample's tensors).
    """

    def __init__(
        self,
        store: StoreSummary,
        indices: Sequence[int],
        normalisers: Normalisers,
        z_range: tuple[int, int] | None = None,
    ) -> None:
        self.store = store
        self.indices = store.check_done(indices)
        self.normalisers = normalisers
        z_slice(z_range, store.grid.nz)  # refused here, not on the first item
        self.z_range = None if z_range is None else (int(z_range[0]), int(z_range[1]))
        self._handle: xr.Dataset | None = None
        self._pid: int | None = None

    def __len__(self) -> int:
        return int(self.indices.size)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_handle": None, "_pid": None}  # workers open their own

    def _fields(self) -> xr.Dataset:
        if self._handle is None or self._pid != os.getpid():
            self._handle = open_fields(self.store.path)
            self._pid = os.getpid()
        return self._handle

    def __getitem__(self, item: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and target of the ``item``-th sample; ``StoreDamagedError`` names a damaged one."""
        sample = int(self.indices[item])
        ds = self._fields()
        k, phi = read_fields(self.store, [sample], ds, self.z_range)
        saturation = read_saturation(self.store, [sample], ds, self.z_range)[0]
        grid = self.store.grid
        x = self.normalisers.encode(
            k,
            phi,
            self.store.rate_m3_per_day[[sample]],
            self.store.injector_zx[[sample]],
            self.store.producer_zx[[sample]],
            grid.z_m,
            grid.x_m,
            self.z_range,
        )
        return torch.from_numpy(x[0]), torch.from_numpy(saturation)
