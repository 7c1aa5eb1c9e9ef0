"""Ensemble statistics of CO2 saturation, streamed: prior ensembles from the scenario sampler
through a surrogate, and the same statistics of simulator runs in a store (Monte Carlo).

``EnsembleStatistics`` takes batches of members (b, T, Z, X) and keeps only running sums: the
mean and variance per cell (Chan et al.'s pairwise update, float64), exceedance counts per
threshold and cell, and per-member plume area / extent curves (member, time) from the project's
one plume definition (``ccs_fno.plume``: cells above the plume threshold connected to the
member's injector). Memory is O(T Z X * thresholds + members * T) whatever the ensemble size;
member fields are kept only when asked for, written batch by batch to a Zarr store and returned
dask-backed.

With a ``Calibration`` the statistics gain a conservative variant: every member's saturation
raised to the upper end of its calibrated pointwise band (``min(S + band, S_max)``), so
``P(S_upper > s*)`` and the upper plume areas account for the surrogate's own error at that
level.

Quantiles of plume area/extent over members are numpy's (linear interpolation); ``P10`` is the
10 % quantile (the small-plume case), ``P90`` the 90 % one.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ccs_fno.plume import PLUME_THRESHOLD
from ccs_fno.uq.conformal import Calibration, plume_curves
from ccs_fno.uq.heldout import check_same_grid
from data_gen.grid import Grid

QUANTILES = (0.1, 0.5, 0.9)


def check_thresholds(thresholds: Any) -> np.ndarray:
    """Saturation thresholds s* as a sorted float array, each in [0, 1], else a ValueError."""
    values = np.atleast_1d(np.asarray(thresholds, dtype=np.float64))
    if values.size == 0 or values.ndim != 1:
        raise ValueError(f"thresholds must be one or more saturations in [0, 1], got {thresholds!r}")
    bad = values[~((values >= 0.0) & (values <= 1.0))]
    if bad.size:
        raise ValueError(
            f"a saturation threshold must lie in [0, 1], got {float(bad[0])!r} (in {thresholds!r})"
        )
    return np.unique(values)


def check_members(name: str, value: Any) -> int:
    """A count of members (or a batch size) as an int >= 1, else a ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return int(value)


class EnsembleStatistics:
    """Running statistics of an ensemble of saturation fields on ``grid`` at ``times_days``.

    ``add(saturation, injector_zx)`` a batch at a time, then ``result()``. ``band`` (time, z,
    x), optional: the calibrated half-width for the conservative variant, with
    ``max_saturation`` its clip.
    """

    def __init__(
        self,
        grid: Grid,
        times_days: Sequence[float],
        thresholds: Sequence[float] = (PLUME_THRESHOLD,),
        plume_threshold: float = PLUME_THRESHOLD,
        band: np.ndarray | None = None,
        max_saturation: float = 1.0,
        fields_path: str | os.PathLike | None = None,
    ) -> None:
        self.grid = grid
        self.times = np.asarray(times_days, dtype=np.float64)
        self.thresholds = check_thresholds(thresholds)
        self.plume_threshold = float(check_thresholds(plume_threshold)[0])
        shape = (self.times.size, *grid.shape)
        self.band = None if band is None else np.asarray(band, dtype=np.float32)
        if self.band is not None and self.band.shape != shape:
            raise ValueError(f"band must be (time, z, x) = {shape}, got {self.band.shape}")
        self.max_saturation = float(max_saturation)
        self.n = 0
        self._mean = np.zeros(shape)
        self._m2 = np.zeros(shape)
        self._exceed = np.zeros((self.thresholds.size, *shape), dtype=np.int64)
        self._exceed_up = np.zeros_like(self._exceed) if band is not None else None
        self._area: list[np.ndarray] = []
        self._extent: list[np.ndarray] = []
        self._area_up: list[np.ndarray] = []
        self._injectors: list[np.ndarray] = []
        self.fields_path = None if fields_path is None else Path(fields_path)
        if self.fields_path is not None and self.fields_path.exists():
            raise FileExistsError(f"{self.fields_path} exists; member fields go to a new Zarr path")

    def add(self, saturation: np.ndarray, injector_zx: np.ndarray) -> None:
        """Fold in members ``saturation`` (b, T, Z, X) with injector cells (b, 2) or one cell."""
        s = np.asarray(saturation, dtype=np.float32)
        if s.ndim != 4 or s.shape[1:] != self._mean.shape:
            raise ValueError(
                f"a batch must be (member, time, z, x) with (time, z, x) = {self._mean.shape}, got {s.shape}"
            )
        b = s.shape[0]
        cells = np.asarray(injector_zx, dtype=np.int64).reshape(-1, 2)
        cells = np.repeat(cells, b, axis=0) if cells.shape[0] == 1 else cells
        # Chan et al.: merge (n, mean, M2) with the batch's (b, mean_b, M2_b).
        mean_b = s.mean(axis=0, dtype=np.float64)
        m2_b = np.square(s - mean_b.astype(np.float32), dtype=np.float64).sum(axis=0)
        total = self.n + b
        d = mean_b - self._mean
        self._mean += d * (b / total)
        self._m2 += m2_b + d * d * (self.n * b / total)
        self.n = total
        for j, thr in enumerate(self.thresholds):
            self._exceed[j] += (s > thr).sum(axis=0)
        area, extent = plume_curves(s, self.grid, cells, self.plume_threshold)
        self._area.append(area)
        self._extent.append(extent)
        self._injectors.append(cells)
        if self.band is not None:
            up = np.minimum(s + self.band, self.max_saturation)
            for j, thr in enumerate(self.thresholds):
                self._exceed_up[j] += (up > thr).sum(axis=0)
            self._area_up.append(plume_curves(up, self.grid, cells, self.plume_threshold)[0])
        if self.fields_path is not None:
            self._write_fields(s, total - b)

    def _write_fields(self, s: np.ndarray, start: int) -> None:
        member = np.arange(start, start + s.shape[0])
        ds = xr.Dataset(
            {"saturation": (("member", "time", "z", "x"), s, {"units": "1"})},
            coords={"member": member, "time": self.times, "z": self.grid.z_m, "x": self.grid.x_m},
        )
        encoding = {"saturation": {"chunks": (s.shape[0], *s.shape[1:])}} if start == 0 else None
        if start == 0:
            ds.to_zarr(self.fields_path, mode="w-", consolidated=False, encoding=encoding)
        else:
            ds.to_zarr(self.fields_path, append_dim="member", consolidated=False)

    def result(self, quantiles: Sequence[float] = QUANTILES) -> xr.Dataset:
        """The statistics as an ``xarray.Dataset`` (see the module docstring)."""
        if self.n == 0:
            raise ValueError("the ensemble is empty: add at least one member before asking for statistics")
        q = np.asarray(quantiles, dtype=np.float64)
        area = np.concatenate(self._area)
        extent = np.concatenate(self._extent)
        cells = np.concatenate(self._injectors)
        space = ("time", "z", "x")
        data = {
            "mean_saturation": (space, self._mean.astype(np.float32), {"units": "1"}),
            "std_saturation": (
                space,
                np.sqrt(self._m2 / self.n).astype(np.float32),
                {"units": "1", "long_name": "ensemble standard deviation (ddof=0)"},
            ),
            "exceedance_probability": (
                ("threshold", *space),
                (self._exceed / self.n).astype(np.float32),
                {"long_name": "P(S > threshold)"},
            ),
            "plume_area_m2": (("member", "time"), area, {"units": "m2"}),
            "plume_extent_m": (("member", "time"), extent, {"units": "m"}),
            "plume_area_quantiles_m2": (("quantile", "time"), np.quantile(area, q, axis=0), {"units": "m2"}),
            "plume_extent_quantiles_m": (
                ("quantile", "time"),
                np.quantile(extent, q, axis=0),
                {"units": "m"},
            ),
            "injector_z": (("member",), cells[:, 0]),
            "injector_x": (("member",), cells[:, 1]),
        }
        if self.band is not None:
            area_up = np.concatenate(self._area_up)
            data["exceedance_probability_conservative"] = (
                ("threshold", *space),
                (self._exceed_up / self.n).astype(np.float32),
                {"long_name": "P(S + calibrated band > threshold)"},
            )
            data["plume_area_conservative_m2"] = (("member", "time"), area_up, {"units": "m2"})
            data["plume_area_conservative_quantiles_m2"] = (
                ("quantile", "time"),
                np.quantile(area_up, q, axis=0),
                {"units": "m2"},
            )
        ds = xr.Dataset(
            data,
            coords={
                "member": np.arange(self.n),
                "time": ("time", self.times, {"units": "d"}),
                "z": ("z", self.grid.z_m, {"units": "m"}),
                "x": ("x", self.grid.x_m, {"units": "m"}),
                "threshold": self.thresholds,
                "quantile": q,
            },
            attrs={"n_members": self.n, "plume_threshold": self.plume_threshold},
        )
        if self.fields_path is not None:
            fields = xr.open_zarr(self.fields_path, consolidated=False)["saturation"]
            ds["saturation"] = fields.assign_coords(time=ds["time"], z=ds["z"], x=ds["x"])
        return ds


def calibrated_band(calibration: Calibration | None, level: float) -> np.ndarray | None:
    """The pointwise band (time, z, x) of ``calibration`` at ``level`` for a conservative
    ensemble (None without a calibration); a scaled calibration is refused."""
    if calibration is None:
        return None
    if calibration.data.attrs.get("scaled"):
        raise ValueError("a conservative ensemble needs an unscaled (absolute-error) calibration")
    return calibration.band(level).values


def prior_ensemble(
    surrogate: Any,
    n_members: int,
    space: Any = None,
    master_seed: int = 0,
    thresholds: Sequence[float] = (PLUME_THRESHOLD,),
    batch_size: int = 64,
    calibration: Calibration | None = None,
    level: float = 0.9,
    fields_path: str | os.PathLike | None = None,
    quantiles: Sequence[float] = QUANTILES,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> xr.Dataset:
    """Prior (geological) uncertainty: members 0..n-1 of ``space`` (a ``ScenarioSpace``; default
    the surrogate's training space) drawn with ``data_gen.scenarios.sample_scenario(space,
    master_seed, i)``, predicted by ``surrogate`` in batches of ``batch_size`` and folded into
    ``EnsembleStatistics`` (nothing of size n x T x Z x X is held unless ``fields_path`` asks
    for the member fields on disk).

    ``calibration`` adds the conservative variant at ``level``. ``progress(done, total)`` is
    called after each batch; ``should_stop()`` True stops after the current batch (the result
    holds the members so far and ``attrs['cancelled'] = 1``). attrs also hold the wall times.
    """
    from data_gen.scenarios import ScenarioSpace, sample_scenario

    n_members = check_members("n_members", n_members)
    batch_size = check_members("batch_size", batch_size)
    if space is None:
        domain = getattr(surrogate, "domain", None)
        if domain is None:
            raise ValueError("the surrogate records no training space; pass space=ScenarioSpace(...)")
        space = domain.space
    if not isinstance(space, ScenarioSpace):
        raise TypeError(f"space must be a data_gen.scenarios.ScenarioSpace, got {type(space).__name__}")
    check_same_grid(
        space.grid, np.asarray(space.simulation.report_times_days), surrogate, "the scenario space"
    )
    stats = EnsembleStatistics(
        surrogate.grid,
        surrogate.times_days,
        thresholds,
        band=calibrated_band(calibration, level),
        max_saturation=surrogate.max_saturation,
        fields_path=fields_path,
    )
    rates, params_s, predict_s, cancelled = [], 0.0, 0.0, False
    for start in range(0, n_members, batch_size):
        t0 = time.perf_counter()
        scenarios = [
            sample_scenario(space, master_seed, i) for i in range(start, min(start + batch_size, n_members))
        ]
        k = np.stack([sc.permeability_md() for sc in scenarios])
        phi = np.stack([sc.porosity() for sc in scenarios])
        rate = np.array([sc.rate_m3_per_day for sc in scenarios])
        inj = np.array([sc.injector_zx for sc in scenarios])
        prod = np.array([sc.producer_zx for sc in scenarios])
        t1 = time.perf_counter()
        pred = surrogate.predict(
            k, rate_m3_per_day=rate, injector_zx=inj, producer_zx=prod, porosity=phi, batch_size=batch_size
        ).values
        t2 = time.perf_counter()
        stats.add(pred, inj)
        params_s += t1 - t0
        predict_s += t2 - t1
        rates.append(rate)
        if progress is not None:
            progress(stats.n, n_members)
        if should_stop is not None and stats.n < n_members and should_stop():
            cancelled = True
            break
    ds = stats.result(quantiles)
    ds["rate_m3_per_day"] = ("member", np.concatenate(rates), {"units": "m3/day"})
    ds.attrs.update(
        kind="prior",
        master_seed=int(master_seed),
        geology=space.geology,
        cancelled=int(cancelled),
        requested_members=n_members,
        sampling_s=params_s,
        predict_s=predict_s,
        conservative_level=float(level) if calibration is not None else float("nan"),
    )
    return ds


def store_ensemble(
    store: Any,
    indices: Sequence[int] | None = None,
    thresholds: Sequence[float] = (PLUME_THRESHOLD,),
    batch_size: int = 64,
    quantiles: Sequence[float] = QUANTILES,
) -> xr.Dataset:
    """The same statistics of the simulated saturation of ``indices`` (default: every done
    sample) of a store: the Monte Carlo reference of a prior ensemble with the store's seed."""
    from ccs_fno.data import open_fields, read_saturation, read_store

    summary = read_store(store)
    indices = summary.done_indices if indices is None else summary.check_done(indices)
    batch_size = check_members("batch_size", batch_size)
    stats = EnsembleStatistics(summary.grid, summary.times_days, thresholds)
    handle = open_fields(summary.path)
    for start in range(0, indices.size, batch_size):
        part = indices[start : start + batch_size]
        stats.add(read_saturation(summary, part, handle), summary.injector_zx[part])
    ds = stats.result(quantiles)
    ds = ds.assign_coords(sample=("member", indices))
    ds.attrs.update(kind="monte_carlo", store=summary.path)
    return ds
