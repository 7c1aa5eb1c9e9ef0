"""Calibrating a surrogate on held-out simulations of a store, and measuring its coverage.

``ccs_fno.uq.conformal`` is the split-conformal method on arrays (ranks, quantiles, field scores,
plume curves, the ``Calibration`` bands and their NetCDF file); this module is the workflow around
it on stores and test samples:

* ``predict_store``: surrogate predictions and simulator truths, float32 saturation (n, T, Z, X),
  of store samples, read and predicted in batches (``ccs_fno.surrogate.store_predictions``);
* ``calibrate``: a ``Calibration`` fitted on store samples that never trained or selected the
  surrogate (it refuses the run's own train/val/test samples);
* ``evaluate_calibration``: the table of nominal vs empirical coverage on test samples, with
  Clopper-Pearson intervals (``binomial_interval``) of the per-field proportions; ``coverage``:
  the fraction of each field's cells inside a band.

Units: saturation is a fraction (1), plume areas m^2, extents m, times days; levels, coverages and
confidences are fractions in (0, 1). ``check_same_grid`` refuses a store (or a scenario space, for
``ccs_fno.uq.ensemble``) that is not on the surrogate's own grid and report times: bands are
calibrated per cell and time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from ccs_fno.plume import PLUME_THRESHOLD
from ccs_fno.uq.conformal import Calibration, check_probability, check_sample_counts, plume_curves
from data_gen.grid import Grid


def coverage(
    prediction: np.ndarray, truth: np.ndarray, band: np.ndarray, scale: np.ndarray | float = 1.0
) -> np.ndarray:
    """Per sample, the fraction of cells with ``|pred - truth| <= band * scale``: shape (n,)."""
    err = np.abs(np.asarray(prediction, np.float64) - np.asarray(truth, np.float64))
    inside = err <= np.asarray(band, np.float64) * np.asarray(scale, np.float64)
    return inside.reshape(inside.shape[0], -1).mean(axis=1)


def binomial_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Clopper-Pearson interval of a binomial proportion (exact; conservative)."""
    from scipy.stats import beta

    a = 1.0 - check_probability("confidence", confidence)
    low = 0.0 if successes == 0 else float(beta.ppf(a / 2, successes, trials - successes + 1))
    high = 1.0 if successes == trials else float(beta.ppf(1 - a / 2, successes + 1, trials - successes))
    return low, high


def check_same_grid(grid: Grid, times_days: np.ndarray, surrogate: Any, where: str) -> None:
    """Raise unless ``grid``/``times_days`` (of a store or a space) are the surrogate's own."""
    mine = surrogate.grid
    if grid.shape != mine.shape or not np.allclose((grid.dz_m, grid.dx_m), (mine.dz_m, mine.dx_m)):
        raise ValueError(
            f"{where} is on a {grid.nz}x{grid.nx} grid of {grid.dz_m:g} m x {grid.dx_m:g} m cells; the "
            f"surrogate predicts on {mine.nz}x{mine.nx} cells of {mine.dz_m:g} m x {mine.dx_m:g} m. "
            "Calibrate and run ensembles on the surrogate's own grid"
        )
    times = np.asarray(times_days, dtype=np.float64)
    if times.shape != surrogate.times_days.shape or not np.allclose(times, surrogate.times_days):
        raise ValueError(
            f"{where} reports at {times.size} times {times[:3].tolist()}...; the surrogate predicts "
            f"{surrogate.times_days.size} times {surrogate.times_days[:3].tolist()}...; they must agree"
        )


def predict_store(
    surrogate: Any, store: Any, indices: Sequence[int], batch_size: int = 32
) -> tuple[np.ndarray, np.ndarray]:
    """Surrogate predictions and simulator truths, float32 (n, T, Z, X), of ``indices`` of
    ``store`` (a path or ``StoreSummary``), read and predicted in batches."""
    from ccs_fno.data import StoreSummary, read_store
    from ccs_fno.surrogate import store_predictions  # lazily: importing ccs_fno.uq loads no torch

    summary = store if isinstance(store, StoreSummary) else read_store(store)
    check_same_grid(summary.grid, summary.times_days, surrogate, summary.path)
    indices = summary.check_done(indices)
    shape = (indices.size, summary.times_days.size, *summary.grid.shape)
    pred, truth = np.empty(shape, np.float32), np.empty(shape, np.float32)
    start = 0
    for part, part_pred, part_truth in store_predictions(surrogate, summary, indices, batch_size):
        truth[start : start + part.size] = part_truth
        pred[start : start + part.size] = part_pred
        start += part.size
    return pred, truth


def calibrate(
    surrogate: Any,
    store: Any,
    indices: Sequence[int],
    levels: Sequence[float] = (0.8, 0.9),
    delta: float = 0.1,
    confidence: float | None = None,
    batch_size: int = 32,
    field_shape: str = "pointwise",
) -> Calibration:
    """Fit a ``Calibration`` of ``surrogate`` on samples ``indices`` of ``store``.

    The samples must never have trained the surrogate or selected it (a run's ``calibration``
    split, or a held-out store split with ``ccs_fno.data.heldout_split``). The store must be
    on the surrogate's grid and report times.
    """
    from ccs_fno.data import read_store

    summary = read_store(store)
    indices = summary.check_done(indices)
    _refuse_training_samples(surrogate, summary.path, indices)
    check_sample_counts(int(indices.size), levels, delta, confidence, field_shape)  # before predicting
    pred, truth = predict_store(surrogate, summary, indices, batch_size)
    source = {"store": summary.path, "samples": indices.tolist()}
    return Calibration.fit(
        pred,
        truth,
        summary.grid,
        summary.injector_zx[indices],
        summary.times_days,
        levels,
        delta,
        confidence,
        plume_threshold=PLUME_THRESHOLD,
        source=source,
        field_shape=field_shape,
    )


def _refuse_training_samples(surrogate: Any, path: str, indices: np.ndarray) -> None:
    """Raise when ``indices`` of the surrogate's own training store trained or selected it."""
    from data_gen.integrity import store_fingerprint

    saved, split = getattr(surrogate, "fingerprint", None), getattr(surrogate, "split", None)
    if not saved or not split:
        return
    current = store_fingerprint(path)
    if any(saved.get(key) != value for key, value in current.items()):
        return  # another store: its sample numbers are not the run's
    used = np.concatenate([np.asarray(split[k]) for k in ("train", "val", "test") if k in split])
    overlap = np.intersect1d(indices, used)
    if overlap.size:
        raise ValueError(
            f"samples {overlap[:10].tolist()} of {path} trained or selected this surrogate (its "
            "train/val/test split): conformal bands need samples it never saw. Use its 'calibration' "
            "split (train with calibration_fraction > 0) or a held-out store (heldout_split)"
        )


def evaluate_calibration(
    calibration: Calibration,
    prediction: np.ndarray,
    truth: np.ndarray,
    grid: Grid,
    injector_zx: Any,
    confidence: float = 0.95,
) -> xr.Dataset:
    """The calibration table: nominal vs empirical coverage on test samples (never calibrated
    on), per level. Variables (level): ``coverage`` (pointwise, all cells of all test fields)
    with a Clopper-Pearson interval ``coverage_low``/``coverage_high`` that counts each test
    field as one trial (conservative: a field's cells are dependent), ``plume_cell_coverage``
    (cells where truth or prediction exceeds the plume threshold; conditional, not guaranteed),
    ``area_coverage`` (plume area within its band, at the last time, each field a trial, with
    ``area_low``/``area_high``), ``field_coverage`` (fields with >= level of their cells within
    the sample-level band; nominal >= 1 - delta), ``band_mean`` (mean half-width at the last
    time over cells reached by any test plume)."""
    pred = np.asarray(prediction, dtype=np.float32)
    true = np.asarray(truth, dtype=np.float32)
    if pred.shape != true.shape or pred.shape[1:] != calibration.data["cell_band"].shape[1:]:
        raise ValueError(
            f"prediction {pred.shape} and truth {true.shape} must both be (sample, time, z, x) with "
            f"(time, z, x) = {calibration.data['cell_band'].shape[1:]} as calibrated"
        )
    if calibration.data.attrs.get("scaled"):
        raise ValueError("evaluate a scaled calibration with its scales: not supported by this table")
    n = pred.shape[0]
    threshold = float(calibration.data.attrs["plume_threshold"])
    err = np.abs(pred - true)
    plume = (true > threshold) | (pred > threshold)
    reached = plume[:, -1].any(axis=0)
    area_p, _ = plume_curves(pred, grid, injector_zx, threshold)
    area_t, _ = plume_curves(true, grid, injector_zx, threshold)
    rows: dict[str, list[float]] = {k: [] for k in _TABLE}
    for level in calibration.levels:
        band = calibration.band(level).values
        inside = err <= band
        cov = float(inside.mean())
        area_in = np.abs(area_p[:, -1] - area_t[:, -1]) <= float(calibration.area_band(level)[-1])
        field_band = calibration.field_band(level).values
        values = {
            "coverage": cov,
            "plume_cell_coverage": float(inside[plume].mean()) if plume.any() else float("nan"),
            "area_coverage": float(area_in.mean()),
            "field_coverage": float((coverage(pred, true, field_band) >= level).mean()),
            "band_mean": float(band[-1][reached].mean()) if reached.any() else float("nan"),
        }
        values["coverage_low"], values["coverage_high"] = binomial_interval(round(cov * n), n, confidence)
        values["area_low"], values["area_high"] = binomial_interval(int(area_in.sum()), n, confidence)
        for key in _TABLE:
            rows[key].append(values[key])
    return xr.Dataset(
        {key: ("level", np.array(vals)) for key, vals in rows.items()},
        coords={"level": calibration.levels},
        attrs={"n_test": n, "delta": float(calibration.data.attrs["delta"]), "confidence": confidence},
    )


_TABLE = (
    "coverage",
    "coverage_low",
    "coverage_high",
    "plume_cell_coverage",
    "area_coverage",
    "area_low",
    "area_high",
    "field_coverage",
    "band_mean",
)
