"""Monitoring observations as data: the schema, its checks, files, and synthesis from a simulation.

An observations ``xarray.Dataset`` (``attrs["schema"] == "ccs-fno-observations"``, version 1)
holds what was measured and what the operator knows about the site:

Monitoring wells (optional; long format, one row per measurement, as well logs come):

* ``well_saturation`` (``well_datum``): measured CO2 saturation (fraction, 0-1);
* coordinates on ``well_datum``: ``well_name`` (str), ``well_x_m`` (horizontal position, m),
  ``well_depth_m`` (depth below the section top, m), ``well_time_days`` (days since injection
  started);
* ``well_noise_std``: scalar, the standard deviation of the Gaussian measurement noise
  (saturation units: 0.02 = 2 % saturation).

Full-field snapshots (optional; a time-lapse seismic stand-in):

* ``snapshot_saturation`` (``snapshot_time``, ``snapshot_z``, ``snapshot_x``): saturation
  smoothed by a Gaussian of ``attrs["smoothing_sigma_m"]`` (m; 0: none) and averaged over blocks
  of ``attrs["block_cells"]`` x ``block_cells`` grid cells (1: full resolution); coordinates:
  times (days) and block-centre depths/positions (m);
* ``snapshot_noise_std``: scalar, as ``well_noise_std``.

What is known (required): ``rate_m3_per_day`` (the injection rate, or a first guess when the
rate is inverted), ``porosity`` (constant), cells ``injector_z``/``injector_x``/``producer_z``/
``producer_x``, and the grid in ``attrs`` (``grid_nz``, ``grid_nx``, ``grid_dx_m``,
``grid_dz_m``, ``grid_dy_m``). ``attrs["source"]`` (JSON) says where the data came from.

A measurement at position (x, depth) observes the grid cell containing it; a time between two
report times of the model is **linearly interpolated** in time (times must lie within the
model's report times). Files: NetCDF (``.nc``) or Zarr (``.zarr``) via ``save_observations`` /
``load_observations``; well logs from a CSV with columns ``well,x_m,depth_m,time_days,saturation``
via ``observations_from_csv``. ``validate_observations`` refuses anything else with a message
naming the value seen and what is allowed.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from data_gen.grid import Grid

SCHEMA = "ccs-fno-observations"
SCHEMA_VERSION = 1
CSV_COLUMNS = ("well", "x_m", "depth_m", "time_days", "saturation")
_KNOWN = ("rate_m3_per_day", "porosity", "injector_z", "injector_x", "producer_z", "producer_x")
_GRID_ATTRS = ("grid_nz", "grid_nx", "grid_dx_m", "grid_dz_m", "grid_dy_m")


class ObservationsError(ValueError):
    """Observations that do not follow the schema, or do not fit the grid or the model."""


@dataclass(frozen=True)
class MonitoringWells:
    """Monitoring wells logging CO2 saturation: columns at ``x_m`` (m), at ``times_days``, at
    every depth (``depths_m=None``) or the given depths (m below the section top)."""

    x_m: Sequence[float] = (240.0, 480.0, 720.0)
    times_days: Sequence[float] = (200.0, 400.0, 600.0)
    depths_m: Sequence[float] | None = None

    def __post_init__(self) -> None:
        for name in ("x_m", "times_days") + (("depths_m",) if self.depths_m is not None else ()):
            object.__setattr__(self, name, _floats(f"MonitoringWells.{name}", getattr(self, name)))


@dataclass(frozen=True)
class Snapshots:
    """Full-field saturation snapshots at ``times_days``, smoothed by a Gaussian of
    ``smoothing_sigma_m`` (m; 0: none) and block-averaged over ``block_cells`` cells a side."""

    times_days: Sequence[float] = (200.0, 400.0)
    smoothing_sigma_m: float = 0.0
    block_cells: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "times_days", _floats("Snapshots.times_days", self.times_days))
        sigma = self.smoothing_sigma_m
        if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma >= 0):
            raise ObservationsError(
                f"Snapshots.smoothing_sigma_m must be a finite length >= 0 m, got {sigma!r}"
            )
        block = self.block_cells
        if isinstance(block, bool) or not isinstance(block, (int, np.integer)) or block < 1:
            raise ObservationsError(f"Snapshots.block_cells must be an integer >= 1, got {block!r}")


@dataclass(frozen=True)
class ObservationDesign:
    """What is measured: monitoring wells and/or snapshots, with Gaussian noise of standard
    deviation ``noise_std`` (saturation units; 0.02 = 2 % saturation)."""

    wells: MonitoringWells | None = None
    snapshots: Snapshots | None = None
    noise_std: float = 0.02

    def __post_init__(self) -> None:
        if self.wells is None and self.snapshots is None:
            raise ObservationsError("an ObservationDesign needs wells, snapshots or both; got neither")
        check_noise("noise_std", self.noise_std)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self), default=list))


def _floats(name: str, values: Any) -> tuple[float, ...]:
    try:
        array = np.asarray(values, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise ObservationsError(f"{name} must be a list of numbers, got {values!r}") from None
    if array.size == 0 or not np.all(np.isfinite(array)):
        raise ObservationsError(f"{name} must be a non-empty list of finite numbers, got {values!r}")
    return tuple(float(v) for v in array)


def check_noise(name: str, value: Any) -> float:
    """``value`` as a float if it is a finite standard deviation > 0, else raise."""
    try:
        noise = float(value)
    except (TypeError, ValueError):
        noise = math.nan
    if not (math.isfinite(noise) and noise > 0):
        raise ObservationsError(
            f"{name} must be a finite standard deviation > 0 (saturation units, e.g. 0.02 for "
            f"2 % saturation), got {value!r}"
        )
    return noise


def grid_attrs(grid: Grid) -> dict[str, Any]:
    return {
        "grid_nz": grid.nz,
        "grid_nx": grid.nx,
        "grid_dx_m": grid.dx_m,
        "grid_dz_m": grid.dz_m,
        "grid_dy_m": grid.dy_m,
    }


def observation_grid(obs: xr.Dataset) -> Grid:
    """The grid the observations were recorded on (from their attrs)."""
    try:
        nz, nx, dx, dz, dy = (obs.attrs[name] for name in _GRID_ATTRS)
        return Grid(int(nz), int(nx), float(dx), float(dz), float(dy))
    except (KeyError, TypeError, ValueError) as err:
        raise ObservationsError(
            f"observations must carry their grid in attrs {list(_GRID_ATTRS)}; {err}"
        ) from None


def well_cells(obs: xr.Dataset, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """(z, x) cell indices of every well datum: the cells containing (depth, x)."""
    z = np.floor(obs["well_depth_m"].values / grid.dz_m).astype(np.int64)
    x = np.floor(obs["well_x_m"].values / grid.dx_m).astype(np.int64)
    return np.minimum(z, grid.nz - 1), np.minimum(x, grid.nx - 1)


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise ObservationsError(message)


def _finite(name: str, values: np.ndarray) -> None:
    bad = np.argwhere(~np.isfinite(values))
    if bad.size:
        index = tuple(int(i) for i in bad[0])
        raise ObservationsError(
            f"{name} holds {values[index]} at index {index} ({bad.shape[0]} non-finite values); "
            "observations must be finite: drop missing measurements instead of writing NaN"
        )


def validate_observations(obs: Any, times_days: Sequence[float] | None = None) -> xr.Dataset:
    """Return ``obs`` if it follows the schema (module docstring), else raise ObservationsError.

    With ``times_days`` (a model's report times), every observation time must lie within
    [first, last] of them (times in between are interpolated linearly).
    """
    _require(isinstance(obs, xr.Dataset), f"observations must be an xarray.Dataset, got {type(obs).__name__}")
    schema = obs.attrs.get("schema")
    _require(
        schema == SCHEMA,
        f"attrs['schema'] is {schema!r}; observations need {SCHEMA!r} (build them with "
        "synthesize_observations or observations_from_csv)",
    )
    version = obs.attrs.get("schema_version")
    _require(
        version == SCHEMA_VERSION, f"schema_version {version!r} is not supported; allowed: {SCHEMA_VERSION}"
    )
    grid = observation_grid(obs)
    missing = [name for name in _KNOWN if name not in obs]
    _require(not missing, f"observations lack the known site data {missing}; required: {list(_KNOWN)}")
    for name in _KNOWN:
        _require(obs[name].ndim == 0, f"{name} must be a scalar, got dims {obs[name].dims}")
        _finite(name, np.atleast_1d(obs[name].values.astype(np.float64)))
    rate, phi = float(obs["rate_m3_per_day"]), float(obs["porosity"])
    _require(rate > 0, f"rate_m3_per_day must be > 0 m^3/day, got {rate!r}")
    _require(0 < phi <= 1, f"porosity must lie in (0, 1], got {phi!r}")
    for well in ("injector", "producer"):
        cell = (obs[f"{well}_z"].item(), obs[f"{well}_x"].item())
        try:
            grid.check_cell(cell, f"{well} cell")
        except ValueError as err:
            raise ObservationsError(str(err)) from None
    has_wells, has_snapshots = "well_saturation" in obs, "snapshot_saturation" in obs
    _require(
        has_wells or has_snapshots,
        "observations hold neither well_saturation nor snapshot_saturation "
        f"(variables: {sorted(obs.data_vars)})",
    )
    times = []
    if has_wells:
        data = obs["well_saturation"]
        _require(
            data.dims == ("well_datum",), f"well_saturation must have dims ('well_datum',), got {data.dims}"
        )
        _require(data.size > 0, "well_saturation is empty: give at least one measurement")
        for name in ("well_name", "well_x_m", "well_depth_m", "well_time_days"):
            _require(name in obs.coords, f"well_saturation needs the coordinate {name!r} on well_datum")
        _finite("well_saturation", data.values)
        for name, extent in (("well_x_m", grid.nx * grid.dx_m), ("well_depth_m", grid.nz * grid.dz_m)):
            values = obs[name].values.astype(np.float64)
            _finite(name, values)
            outside = np.flatnonzero((values < 0) | (values >= extent))
            if outside.size:
                i = int(outside[0])
                raise ObservationsError(
                    f"{name} = {values[i]:g} m (well {obs['well_name'].values[i]!r}) lies outside the "
                    f"grid: allowed [0, {extent:g}) m ({grid.nz}x{grid.nx} cells of "
                    f"{grid.dz_m:g} m x {grid.dx_m:g} m)"
                )
        _require("well_noise_std" in obs, "well observations need 'well_noise_std' (saturation units)")
        check_noise("well_noise_std", obs["well_noise_std"].values)
        times.append(obs["well_time_days"].values.astype(np.float64))
    if has_snapshots:
        data = obs["snapshot_saturation"]
        dims = ("snapshot_time", "snapshot_z", "snapshot_x")
        _require(data.dims == dims, f"snapshot_saturation must have dims {dims}, got {data.dims}")
        _finite("snapshot_saturation", data.values)
        block = data.attrs.get("block_cells")
        sigma = data.attrs.get("smoothing_sigma_m")
        try:
            Snapshots((0.0,), sigma, block)
        except ObservationsError as err:
            raise ObservationsError(f"snapshot_saturation attrs: {err}") from None
        shape = (-(-grid.nz // block), -(-grid.nx // block))
        _require(
            data.shape[1:] == shape,
            f"snapshot_saturation has {data.shape[1]}x{data.shape[2]} blocks; a {grid.nz}x{grid.nx} grid "
            f"in blocks of {block} cells has {shape[0]}x{shape[1]}",
        )
        _require("snapshot_noise_std" in obs, "snapshots need 'snapshot_noise_std' (saturation units)")
        check_noise("snapshot_noise_std", obs["snapshot_noise_std"].values)
        times.append(obs["snapshot_time"].values.astype(np.float64))
    all_times = np.concatenate(times)
    _finite("observation times", all_times)
    if times_days is not None:
        first, last = float(np.min(times_days)), float(np.max(times_days))
        outside = all_times[(all_times < first) | (all_times > last)]
        if outside.size:
            raise ObservationsError(
                f"observation time {outside[0]:g} days lies outside the model's report times: "
                f"allowed [{first:g}, {last:g}] days (times in between are interpolated linearly)"
            )
    return obs


def _base(grid: Grid, rate: float, porosity: float, injector_zx, producer_zx, source: dict) -> xr.Dataset:
    known = {
        "rate_m3_per_day": ((), float(rate), {"units": "m3/day", "long_name": "injection rate"}),
        "porosity": ((), float(porosity), {"units": "1"}),
        "injector_z": ((), int(injector_zx[0])),
        "injector_x": ((), int(injector_zx[1])),
        "producer_z": ((), int(producer_zx[0])),
        "producer_x": ((), int(producer_zx[1])),
    }
    attrs = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        **grid_attrs(grid),
        "source": json.dumps(source),
    }
    return xr.Dataset(known, attrs=attrs)


def _well_vars(names, x_m, depth_m, time_days, values, noise_std) -> dict[str, Any]:
    coords = {
        "well_name": ("well_datum", np.asarray(names, dtype=str)),
        "well_x_m": ("well_datum", np.asarray(x_m, np.float64), {"units": "m"}),
        "well_depth_m": ("well_datum", np.asarray(depth_m, np.float64), {"units": "m"}),
        "well_time_days": ("well_datum", np.asarray(time_days, np.float64), {"units": "d"}),
    }
    data = {
        "well_saturation": (
            "well_datum",
            np.asarray(values, np.float64),
            {"units": "1", "long_name": "CO2 saturation logged in monitoring wells"},
        ),
        "well_noise_std": ((), float(noise_std), {"units": "1"}),
    }
    return {"coords": coords, "data": data}


def truth_dataset(
    permeability_md: np.ndarray,
    porosity: np.ndarray,
    saturation: np.ndarray,
    times_days: Sequence[float],
    grid: Grid,
    rate_m3_per_day: float,
    injector_zx: Sequence[int],
    producer_zx: Sequence[int],
    source: dict[str, Any],
) -> xr.Dataset:
    """A simulated truth as a Dataset: permeability (z, x) mD, porosity, saturation (time, z, x)
    from the simulator, rate and well cells, the grid in attrs and ``source`` (JSON) saying where
    it came from."""
    coords = {
        "time": ("time", np.asarray(times_days, np.float64), {"units": "d"}),
        "z": ("z", grid.z_m, {"units": "m"}),
        "x": ("x", grid.x_m, {"units": "m"}),
    }
    data = {
        "permeability": (("z", "x"), np.asarray(permeability_md, np.float64), {"units": "mD"}),
        "porosity": (("z", "x"), np.broadcast_to(np.asarray(porosity, np.float64), grid.shape)),
        "saturation": (
            ("time", "z", "x"),
            np.asarray(saturation, np.float64),
            {"units": "1", "long_name": "CO2 saturation (simulator)"},
        ),
        "rate_m3_per_day": ((), float(rate_m3_per_day), {"units": "m3/day"}),
        "injector_z": ((), int(injector_zx[0])),
        "injector_x": ((), int(injector_zx[1])),
        "producer_z": ((), int(producer_zx[0])),
        "producer_x": ((), int(producer_zx[1])),
    }
    return xr.Dataset(data, coords, attrs={**grid_attrs(grid), "source": json.dumps(source)})


def truth_from_store(store: str | os.PathLike, index: int) -> xr.Dataset:
    """Sample ``index`` of a ccs-fno store (simulated by ``ccs-fno generate``) as a truth."""
    from ccs_fno.data import read_fields, read_saturation, read_store

    summary = read_store(store)
    k, phi = read_fields(summary, [index])
    saturation = read_saturation(summary, [index])[0]
    return truth_dataset(
        k[0],
        phi[0],
        saturation,
        summary.times_days,
        summary.grid,
        float(summary.rate_m3_per_day[index]),
        summary.injector_zx[index],
        summary.producer_zx[index],
        {"store": summary.path, "sample": int(index)},
    )


def simulate_truth(scenario: Any) -> xr.Dataset:
    """Simulate a ``data_gen.scenarios.Scenario`` with the real simulator and return its truth."""
    from data_gen.scenarios import run_scenario

    k, phi, result = run_scenario(scenario)
    return truth_dataset(
        k,
        phi,
        result.saturation,
        result.times_days,
        scenario.space.grid,
        scenario.rate_m3_per_day,
        scenario.injector_zx,
        scenario.producer_zx,
        {"scenario_index": scenario.index, "geology_seed": scenario.seed, "geology": scenario.space.geology},
    )


def synthesize_observations(truth: xr.Dataset, design: ObservationDesign, seed: int) -> xr.Dataset:
    """Observations of a simulated ``truth`` (``truth_from_store`` / ``simulate_truth``) as
    ``design`` measures them, with Gaussian noise of ``design.noise_std`` drawn from ``seed``.

    Each datum is the observation operator (the one ``invert`` fits with) applied to the
    simulator's saturation, plus noise; the noise-free values are kept as ``*_clean``.
    """
    from ccs_fno.inversion.operator import ObservationOperator

    if not isinstance(design, ObservationDesign):
        raise TypeError(f"design must be an ObservationDesign, got {type(design).__name__}")
    grid = observation_grid(truth)
    injector = (truth["injector_z"].item(), truth["injector_x"].item())
    producer = (truth["producer_z"].item(), truth["producer_x"].item())
    source = {
        "truth": json.loads(truth.attrs.get("source", "{}")),
        "design": design.to_dict(),
        "seed": int(seed),
    }
    base = _base(
        grid, float(truth["rate_m3_per_day"]), float(truth["porosity"].mean()), injector, producer, source
    )
    rng = np.random.default_rng(seed)
    parts = [base]
    if design.wells is not None:
        wells = design.wells
        depths = grid.z_m if wells.depths_m is None else np.asarray(wells.depths_m)
        t, x, z = np.meshgrid(wells.times_days, wells.x_m, depths, indexing="ij")
        names = np.asarray([f"MW{1 + list(wells.x_m).index(v)}" for v in x.ravel()])
        zeros = np.zeros(t.size)
        w = _well_vars(names, x.ravel(), z.ravel(), t.ravel(), zeros, design.noise_std)
        parts.append(xr.Dataset(w["data"], w["coords"]))
    if design.snapshots is not None:
        snap = design.snapshots
        parts.append(_snapshot_placeholder(grid, snap, design.noise_std))
    obs = xr.merge(parts, combine_attrs="override")
    validate_observations(obs, truth["time"].values)
    operator = ObservationOperator.build(obs, truth["time"].values)
    clean = operator.apply_numpy(truth["saturation"].values)
    for name, values in clean.items():
        noisy = values + rng.normal(0.0, design.noise_std, values.shape)
        obs[f"{name}_clean"] = obs[name].copy(data=values)
        obs[name] = obs[name].copy(data=noisy)
    return obs


def _snapshot_placeholder(grid: Grid, snap: Snapshots, noise_std: float) -> xr.Dataset:
    block = int(snap.block_cells)
    nzb, nxb = -(-grid.nz // block), -(-grid.nx // block)
    z = (np.arange(nzb) * block + 0.5 * np.minimum(block, grid.nz - np.arange(nzb) * block)) * grid.dz_m
    x = (np.arange(nxb) * block + 0.5 * np.minimum(block, grid.nx - np.arange(nxb) * block)) * grid.dx_m
    data = xr.DataArray(
        np.zeros((len(snap.times_days), nzb, nxb)),
        {
            "snapshot_time": ("snapshot_time", np.asarray(snap.times_days), {"units": "d"}),
            "snapshot_z": ("snapshot_z", z, {"units": "m"}),
            "snapshot_x": ("snapshot_x", x, {"units": "m"}),
        },
        ("snapshot_time", "snapshot_z", "snapshot_x"),
        attrs={
            "units": "1",
            "long_name": "CO2 saturation snapshot (smoothed, block-averaged)",
            "smoothing_sigma_m": float(snap.smoothing_sigma_m),
            "block_cells": block,
        },
    )
    noise = xr.DataArray(float(noise_std), attrs={"units": "1"})
    return xr.Dataset({"snapshot_saturation": data, "snapshot_noise_std": noise})


def observations_from_csv(
    path: str | os.PathLike,
    *,
    grid: Grid,
    rate_m3_per_day: float,
    injector_zx: Sequence[int],
    producer_zx: Sequence[int],
    noise_std: float,
    porosity: float = 0.25,
) -> xr.Dataset:
    """Well logs from a CSV with header ``well,x_m,depth_m,time_days,saturation`` (one row per
    measurement) plus the known site data, as a validated observations Dataset."""
    path = Path(path)
    import csv

    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = [h.strip() for h in next(reader, [])]
        if tuple(header) != CSV_COLUMNS:
            raise ObservationsError(
                f"{path}: the header is {header}; well logs need the columns {list(CSV_COLUMNS)}"
            )
        rows = [row for row in reader if row]
    if not rows:
        raise ObservationsError(f"{path} holds no measurements below its header")
    columns = list(zip(*rows, strict=False))
    numbers = []
    for name, column in zip(CSV_COLUMNS[1:], columns[1:], strict=True):
        try:
            numbers.append(np.array([float(v) for v in column]))
        except ValueError as err:
            raise ObservationsError(f"{path}: column {name!r} must hold numbers: {err}") from None
    check_noise("noise_std", noise_std)
    w = _well_vars(columns[0], *numbers, noise_std)
    base = _base(grid, rate_m3_per_day, porosity, injector_zx, producer_zx, {"csv": str(path.resolve())})
    obs = xr.merge([base, xr.Dataset(w["data"], w["coords"])], combine_attrs="override")
    return validate_observations(obs)


def write_dataset(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write ``ds`` to NetCDF (``*.nc``, via scipy: NetCDF3) or Zarr (``*.zarr``, format 3);
    missing parent directories are created."""
    path = Path(path)
    if path.suffix in (".nc", ".zarr"):
        path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".nc":
        ds.to_netcdf(path)
    elif path.suffix == ".zarr":
        # text coordinates as variable-length strings (Zarr 3 has a spec for those only)
        text = {name: ds[name].astype(object) for name in ds.coords if ds[name].dtype.kind == "U"}
        ds.assign_coords(text).to_zarr(path, mode="w", zarr_format=3, consolidated=False)
    else:
        raise ObservationsError(f"{path}: allowed file types are .nc (NetCDF) and .zarr (Zarr)")
    return path


def save_observations(obs: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write validated observations to NetCDF (``*.nc``) or Zarr (``*.zarr``); return the path."""
    return write_dataset(validate_observations(obs), path)


def load_observations(path: str | os.PathLike, **csv_site: Any) -> xr.Dataset:
    """Observations from NetCDF (``*.nc``), Zarr (``*.zarr``) or a well-log CSV (``*.csv``, with
    the site data of ``observations_from_csv`` as keywords), validated against the schema."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no observations file at {path}")
    if path.suffix == ".csv":
        return observations_from_csv(path, **csv_site)
    if path.suffix == ".nc":
        obs = xr.load_dataset(path)
    elif path.suffix == ".zarr":
        obs = xr.open_zarr(path, consolidated=False, zarr_format=3).load()
    else:
        raise ObservationsError(f"{path}: allowed file types are .nc, .zarr and .csv (well logs)")
    try:
        return validate_observations(obs)
    except ObservationsError as err:
        raise ObservationsError(f"{path} is not an observations file: {err}") from None
