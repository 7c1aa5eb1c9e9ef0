"""Split-conformal calibration of a surrogate's error on held-out simulations.

Pointwise bands. For every cell (time, z, x) the score of calibration sample i is
``|pred_i - truth_i|`` (or ``|pred_i - truth_i| / scale_i`` with a per-sample scale such as a
deep-ensemble spread). The band half-width at coverage ``1 - alpha`` is the k-th smallest of the
n scores with ``k = ceil((n + 1)(1 - alpha))`` (``conformal_rank``). Why (n + 1): a new sample's
score is exchangeable with the n calibration scores, so its rank among all n + 1 is uniform on
1..n+1; it lies at or below the k-th smallest calibration score with probability ``k / (n + 1)``
(ties only help), which is ``>= 1 - alpha`` exactly when ``k >= (n + 1)(1 - alpha)``. The plain
empirical quantile (k = ceil(n (1 - alpha))) under-covers by up to 1 / (n + 1). Without ties the
coverage is also at most ``1 - alpha + 1 / (n + 1)``. k must not exceed n, so a level needs
``n >= ceil(1 / alpha) - 1`` calibration samples (``min_calibration_samples``).

Sample-level (alpha, delta) statement, in the sense of UQNO (Ma et al. 2024, risk-controlling
neural operators): "with probability >= 1 - delta, at least 1 - alpha of a field's cells lie in
the band ``lambda * w``". Construction (ours): field i's score ``s_i`` is the
``ceil((1 - alpha) N)``-th smallest of its N normalised cell scores ``|err| / w``, so ``s_i <= lambda``
holds exactly when at least ``(1 - alpha) N`` cells are covered by ``lambda * w``. The field scores
are exchangeable, so ``lambda`` = the ``ceil((n + 1)(1 - delta))``-th smallest ``s_i`` gives
``P(s_new <= lambda) >= 1 - delta`` (marginal over calibration and test draws). With
``confidence = 1 - gamma`` the rank is instead the smallest k with
``P(Binomial(n, 1 - delta) <= k - 1) >= 1 - gamma`` (the k-th order statistic of n uniforms exceeds
``1 - delta`` with that probability), a training-conditional (PAC) statement: with probability
``>= 1 - gamma`` over the calibration set, ``>= 1 - delta`` of future fields have ``>= 1 - alpha`` of
their cells covered. UQNO needs a Hoeffding slack because it samples points of a continuous
domain; on a fixed grid the cell fraction is exact and no slack is needed. ``w`` must not depend
on the calibration samples: it is 1 (absolute error) or a per-sample scale (ensemble spread).

The same pointwise construction gives bands of scalar plume metrics (area, extent) per time.

This module is the method on arrays; ``ccs_fno.uq.heldout`` runs it on a surrogate and a store
(``predict_store``, ``calibrate``) and measures coverage on test samples (``evaluate_calibration``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from scipy.stats import binom

from ccs_fno.plume import PLUME_THRESHOLD, plume_area_m2, plume_extent_m
from data_gen.grid import Grid

CALIBRATION_FILE = "calibration.nc"
FIELD_SHAPES = ("pointwise", "absolute")
SHAPE_FLOOR = 1e-3  # a pointwise shape is floored at this fraction of its maximum (no zero widths)
_EPS = 1e-9  # round-off slack in ceil((n + 1)(1 - alpha))


def check_probability(name: str, value: Any) -> float:
    """``value`` as a float strictly inside (0, 1), else a ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ValueError(f"{name} must be a number in (0, 1), got {value!r}")
    value = float(value)
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must lie strictly between 0 and 1, got {value!r}")
    return value


def min_calibration_samples(alpha: float) -> int:
    """The fewest calibration samples for a finite (1 - alpha) band: ceil(1 / alpha) - 1."""
    alpha = check_probability("alpha", alpha)
    return max(math.ceil((1.0 - alpha) / alpha - _EPS), 1)


def conformal_rank(n: int, alpha: float) -> int:
    """k = ceil((n + 1)(1 - alpha)): the band is the k-th smallest of n calibration scores.

    Raises a ValueError saying how many samples are needed when k > n (the band would be
    infinite).
    """
    alpha = check_probability("alpha", alpha)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"the number of calibration samples must be an int >= 1, got {n!r}")
    k = math.ceil((n + 1) * (1.0 - alpha) - _EPS)
    if k > n:
        need = min_calibration_samples(alpha)
        raise ValueError(
            f"{n} calibration sample(s) cannot give a {1 - alpha:.4g} coverage band (alpha={alpha:g}): "
            f"split conformal needs n >= ceil(1/alpha) - 1 = {need}; calibrate on more held-out "
            "samples or lower the level"
        )
    return max(k, 1)


def field_rank(n: int, delta: float, confidence: float | None = None) -> int:
    """The rank of lambda among n field scores: ``conformal_rank(n, delta)`` (marginal), or with
    ``confidence`` the smallest k with ``P(Binomial(n, 1 - delta) <= k - 1) >= confidence``."""
    if confidence is None:
        return conformal_rank(n, delta)
    delta = check_probability("delta", delta)
    confidence = check_probability("confidence", confidence)
    ks = np.arange(1, n + 1)
    ok = binom.cdf(ks - 1, n, 1.0 - delta) >= confidence
    if not ok.any():
        need = next(m for m in range(n + 1, 100 * n + 1000) if binom.cdf(m - 1, m, 1.0 - delta) >= confidence)
        raise ValueError(
            f"{n} calibration sample(s) cannot give the (delta={delta:g}, confidence={confidence:g}) "
            f"statement: it needs at least {need}; calibrate on more held-out samples or lower "
            "the confidence"
        )
    return int(ks[ok][0])


def conformal_quantile(scores: np.ndarray, alpha: float, axis: int = 0) -> np.ndarray:
    """The ``conformal_rank``-th smallest of ``scores`` along ``axis`` (the calibration samples)."""
    scores = np.asarray(scores)
    k = conformal_rank(scores.shape[axis], alpha)
    return np.take(np.partition(scores, k - 1, axis=axis), k - 1, axis=axis)


def field_scores(errors: np.ndarray, alpha: float, scale: np.ndarray | float = 1.0) -> np.ndarray:
    """Per-field score: the ``ceil((1 - alpha) N)``-th smallest of ``|errors| / scale`` over the
    N cells of each field (axis 0 = fields); a field is covered on >= 1 - alpha of its cells by
    ``lambda * scale`` exactly when its score is <= lambda."""
    alpha = check_probability("alpha", alpha)
    ratio = np.abs(np.asarray(errors)) / _positive_scale(scale)
    flat = ratio.reshape(ratio.shape[0], -1)
    m = min(max(math.ceil((1.0 - alpha) * flat.shape[1] - _EPS), 1), flat.shape[1])
    return np.partition(flat, m - 1, axis=1)[:, m - 1]


def _positive_scale(scale: np.ndarray | float) -> np.ndarray:
    scale = np.asarray(scale, dtype=np.float64)
    if not np.all(np.isfinite(scale) & (scale > 0)):
        raise ValueError(
            f"scale must be finite and > 0 everywhere (floor an ensemble spread at a small "
            f"positive value), got values in [{np.nanmin(scale):g}, {np.nanmax(scale):g}]"
        )
    return scale


def _levels(levels: Sequence[float]) -> np.ndarray:
    values = np.atleast_1d(np.asarray(levels, dtype=object))
    if values.size == 0:
        raise ValueError("levels must name at least one coverage level in (0, 1), got none")
    return np.array(sorted({check_probability("level", v) for v in values}), dtype=np.float64)


def _per_sample_cells(injector_zx: Any, n: int) -> np.ndarray:
    cells = np.asarray(injector_zx, dtype=np.int64).reshape(-1, 2)
    if cells.shape[0] == 1:
        cells = np.repeat(cells, n, axis=0)
    if cells.shape[0] != n:
        raise ValueError(f"injector_zx must be one (z, x) cell or one per sample ({n}), got {cells.shape[0]}")
    return cells


def plume_curves(
    saturation: np.ndarray,
    grid: Grid,
    injector_zx: Any,
    threshold: float = PLUME_THRESHOLD,
) -> tuple[np.ndarray, np.ndarray]:
    """Plume area (m^2) and extent (m), each (n, T), of fields (n, T, Z, X) with each sample's
    own injector cell (``ccs_fno.plume``: cells above ``threshold`` connected to the injector)."""
    s = np.asarray(saturation)
    cells = _per_sample_cells(injector_zx, s.shape[0])
    area = np.empty(s.shape[:2])
    extent = np.empty(s.shape[:2])
    for i, cell in enumerate(cells):
        area[i] = plume_area_m2(s[i], grid, tuple(cell), threshold)
        extent[i] = plume_extent_m(s[i], grid, tuple(cell), threshold)
    return area, extent


def check_sample_counts(
    n: int,
    levels: Sequence[float],
    delta: float,
    confidence: float | None = None,
    field_shape: str = "pointwise",
    scale: Any = None,
) -> tuple[np.ndarray, float, bool, int]:
    """Refuse bad levels, delta or shape, and too few calibration samples (naming how many are
    needed), before any work. Returns (sorted levels, delta, whether the sample-level band is
    pointwise-shaped, the rank of lambda among the field scores)."""
    levels = _levels(levels)
    delta = check_probability("delta", delta)
    if field_shape not in FIELD_SHAPES:
        raise ValueError(f"field_shape must be one of {FIELD_SHAPES}, got {field_shape!r}")
    shaped = field_shape == "pointwise" and scale is None
    n_shape, n_lambda = ((n + 1) // 2, n // 2) if shaped else (n, n)
    for level in levels:
        conformal_rank(n, 1.0 - level)
    try:
        if shaped:
            for level in levels:
                conformal_rank(n_shape, 1.0 - level)
        k_field = field_rank(n_lambda, delta, confidence)
    except ValueError as err:
        if not shaped:
            raise
        raise ValueError(
            f"the pointwise-shaped sample-level band fits its shape on {n_shape} and lambda on "
            f"{n_lambda} of the {n} calibration samples: {err}. Use about twice the samples it "
            "names, or field_shape='absolute'"
        ) from None
    return levels, delta, shaped, k_field


class Calibration:
    """Conformal error bands of one surrogate, fitted on held-out calibration samples.

    ``data`` is an ``xarray.Dataset`` with coordinate ``level`` (nominal coverage 1 - alpha) and

    * ``cell_band`` (level, time, z, x): pointwise band half-width (saturation, or scale units
      when ``attrs['scaled']``: multiply by the new sample's scale);
    * ``area_band_m2`` / ``extent_band_m`` (level, time): bands of plume area (m^2) and extent (m);
    * ``field_lambda`` (level) and ``field_shape`` (level, time, z, x): the sample-level band
      ``lambda * w`` for (alpha = 1 - level, ``delta``) (``field_band``);

    attrs: ``n_calibration``, ``delta``, ``confidence`` (NaN: marginal), ``scaled``,
    ``plume_threshold``, ``source`` (JSON: store, samples, surrogate). Build with ``fit`` (arrays)
    or ``calibrate`` (a surrogate and a store); ``save``/``load`` NetCDF next to the surrogate.
    """

    def __init__(self, data: xr.Dataset) -> None:
        needed = {"cell_band", "area_band_m2", "extent_band_m", "field_lambda", "field_shape"}
        missing = needed - set(data.data_vars)
        if missing:
            raise ValueError(
                f"a calibration dataset needs variables {sorted(missing)} (have {list(data.data_vars)})"
            )
        self.data = data

    @property
    def levels(self) -> np.ndarray:
        return self.data["level"].values.copy()

    @property
    def n_calibration(self) -> int:
        return int(self.data.attrs["n_calibration"])

    @property
    def source(self) -> dict[str, Any]:
        return json.loads(self.data.attrs.get("source", "{}"))

    @property
    def grid(self) -> Grid:
        """The grid the bands were calibrated on."""
        return Grid(**json.loads(self.data.attrs["grid"]))

    def fits(self, grid: Grid, times_days: Sequence[float]) -> bool:
        """True when the bands apply to predictions on ``grid`` at ``times_days`` (an app shows
        them only then: a band is calibrated per cell and report time)."""
        times = np.asarray(times_days, dtype=np.float64)
        mine = self.data["time"].values
        return grid == self.grid and times.shape == mine.shape and bool(np.allclose(times, mine))

    @classmethod
    def fit(
        cls,
        prediction: np.ndarray,
        truth: np.ndarray,
        grid: Grid,
        injector_zx: Any,
        times_days: Sequence[float],
        levels: Sequence[float] = (0.8, 0.9),
        delta: float = 0.1,
        confidence: float | None = None,
        scale: np.ndarray | None = None,
        plume_threshold: float = PLUME_THRESHOLD,
        source: dict[str, Any] | None = None,
        field_shape: str = "pointwise",
    ) -> Calibration:
        """Fit on calibration predictions and simulator truths, both (n, T, Z, X) saturation.

        ``field_shape`` is the shape ``w`` of the sample-level band ``lambda * w``: "pointwise"
        (default) fits the pointwise band on the calibration samples at even positions and
        ``lambda`` on those at odd positions (w must not depend on the samples that fit lambda),
        so the band follows where the surrogate errs; "absolute" is w = 1 (all n fit lambda; on
        fields mostly free of CO2 it is small and says little about the plume). With ``scale``
        the shape is the per-sample scale.

        ``injector_zx``: one (z, x) cell or one per sample (plume metrics); ``scale``: an optional
        per-sample, per-cell positive scale (n, T, Z, X), e.g. a deep-ensemble spread, for
        adaptive bands (scores ``|err| / scale``). Raises a ValueError when n is too small for a
        level or for ``delta`` (naming the samples needed).
        """
        pred = np.asarray(prediction, dtype=np.float32)
        true = np.asarray(truth, dtype=np.float32)
        if pred.shape != true.shape or pred.ndim != 4:
            raise ValueError(
                f"prediction and truth must both be (sample, time, z, x), got {pred.shape} and {true.shape}"
            )
        n, nt = pred.shape[:2]
        if pred.shape[2:] != grid.shape:
            raise ValueError(f"fields are {pred.shape[2:]} (z, x) but the grid is {grid.shape}")
        times = np.asarray(times_days, dtype=np.float64)
        if times.shape != (nt,):
            raise ValueError(f"times_days must have {nt} entries (one per report time), got {times.shape}")
        levels, delta, shaped, k_field = check_sample_counts(n, levels, delta, confidence, field_shape, scale)
        errors = np.abs(pred - true)
        cell_scores = errors if scale is None else errors / _positive_scale(scale)
        cells = _per_sample_cells(injector_zx, n)
        area_p, extent_p = plume_curves(pred, grid, cells, plume_threshold)
        area_t, extent_t = plume_curves(true, grid, cells, plume_threshold)
        cell_band, area_band, extent_band, lam, shapes = [], [], [], [], []
        for level in levels:
            alpha = 1.0 - level
            cell_band.append(conformal_quantile(cell_scores, alpha))
            area_band.append(conformal_quantile(np.abs(area_p - area_t), alpha))
            extent_band.append(conformal_quantile(np.abs(extent_p - extent_t), alpha))
            if shaped:
                w = conformal_quantile(errors[0::2], alpha)
                w = np.maximum(w, max(float(w.max()) * SHAPE_FLOOR, 1e-12))
                scores = field_scores(errors[1::2], alpha, w)
            else:
                w = np.ones(errors.shape[1:], np.float32)
                scores = field_scores(errors, alpha, 1.0 if scale is None else scale)
            shapes.append(w)
            lam.append(np.partition(scores, k_field - 1)[k_field - 1])
        coords = {
            "level": ("level", levels, {"long_name": "nominal coverage 1 - alpha"}),
            "time": ("time", times, {"units": "d"}),
            "z": ("z", grid.z_m, {"units": "m"}),
            "x": ("x", grid.x_m, {"units": "m"}),
        }
        unit = "1 (times the sample's scale)" if scale is not None else "1 (saturation)"
        data = xr.Dataset(
            {
                "cell_band": (
                    ("level", "time", "z", "x"),
                    np.stack(cell_band).astype(np.float32),
                    {"units": unit, "long_name": "pointwise conformal band half-width"},
                ),
                "area_band_m2": (("level", "time"), np.stack(area_band), {"units": "m2"}),
                "extent_band_m": (("level", "time"), np.stack(extent_band), {"units": "m"}),
                "field_lambda": (
                    ("level",),
                    np.array(lam),
                    {"long_name": "sample-level band multiplier for alpha = 1 - level", "units": "1"},
                ),
                "field_shape": (
                    ("level", "time", "z", "x"),
                    np.stack(shapes).astype(np.float32),
                    {"long_name": "shape w of the sample-level band lambda * w", "units": unit},
                ),
            },
            coords=coords,
            attrs={
                "n_calibration": int(n),
                "delta": float(delta),
                "confidence": float("nan") if confidence is None else float(confidence),
                "scaled": int(scale is not None),
                "plume_threshold": float(plume_threshold),
                "field_shape": field_shape if scale is None else "scale",
                "grid": json.dumps(asdict(grid)),
                "source": json.dumps(source or {}),
            },
        )
        return cls(data)

    def check_level(self, level: float) -> float:
        """``level`` as one of the calibrated levels (float), else a ValueError listing them."""
        level = check_probability("level", level)
        have = self.levels
        match = np.flatnonzero(np.isclose(have, level))
        if match.size == 0:
            raise ValueError(f"level {level:g} was not calibrated; calibrated levels: {have.tolist()}")
        return float(have[match[0]])

    def band(self, level: float = 0.9, time_days: float | None = None) -> xr.DataArray:
        """The pointwise band half-width at ``level``: (time, z, x), or (z, x) at ``time_days``
        (the nearest report time)."""
        band = self.data["cell_band"].sel(level=self.check_level(level))
        return band if time_days is None else band.sel(time=time_days, method="nearest")

    def field_band(self, level: float = 0.9, time_days: float | None = None) -> xr.DataArray:
        """The sample-level band half-width ``lambda * w`` at ``level`` (time, z, x) or at
        ``time_days``: with probability >= 1 - delta, >= ``level`` of a field's cells lie in it
        (times the sample's scale for a scaled calibration)."""
        level = self.check_level(level)
        band = self.data["field_lambda"].sel(level=level) * self.data["field_shape"].sel(level=level)
        return band if time_days is None else band.sel(time=time_days, method="nearest")

    def area_band(self, level: float = 0.9) -> xr.DataArray:
        """The plume-area band half-width (m^2) per report time at ``level``."""
        return self.data["area_band_m2"].sel(level=self.check_level(level))

    def extent_band(self, level: float = 0.9) -> xr.DataArray:
        """The plume-extent band half-width (m) per report time at ``level``."""
        return self.data["extent_band_m"].sel(level=self.check_level(level))

    def interval(
        self,
        prediction: xr.DataArray,
        level: float = 0.9,
        max_saturation: float = 1.0,
        scale: xr.DataArray | np.ndarray | None = None,
    ) -> xr.Dataset:
        """``lower``/``upper`` saturation of the pointwise band around ``prediction`` (…, time, z,
        x), clipped to [0, ``max_saturation``]; a scaled calibration needs the sample's ``scale``."""
        width = self.band(level)
        if self.data.attrs.get("scaled"):
            if scale is None:
                raise ValueError(
                    "this calibration scales its scores: pass the prediction's scale (ensemble spread)"
                )
            width = width * _positive_scale(scale)
        elif scale is not None:
            raise ValueError("this calibration is unscaled (absolute errors); do not pass a scale")
        if prediction.sizes.get("time") != width.sizes["time"] or prediction.shape[-2:] != width.shape[-2:]:
            raise ValueError(
                f"prediction dims {dict(prediction.sizes)} do not match the calibration's "
                f"(time, z, x) = {tuple(width.shape)}"
            )
        width = width.drop_vars("level").assign_coords(
            time=prediction["time"], z=prediction["z"], x=prediction["x"]
        )
        return xr.Dataset(
            {
                "lower": (prediction - width).clip(0.0, max_saturation),
                "upper": (prediction + width).clip(0.0, max_saturation),
            },
            attrs={"level": float(level)},
        )

    def save(self, path: str | os.PathLike) -> Path:
        """Write the calibration as NetCDF: ``path`` itself, or ``path/calibration.nc`` for a
        directory (a surrogate's run directory)."""
        path = Path(path)
        if path.is_dir():
            path = path / CALIBRATION_FILE
        tmp = path.with_name(path.name + ".tmp")
        self.data.to_netcdf(tmp, engine="scipy")
        os.replace(tmp, path)  # never half-written
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Calibration:
        """Read a calibration saved by ``save`` (a file, or a directory holding calibration.nc)."""
        path = Path(path)
        if path.is_dir():
            path = path / CALIBRATION_FILE
        if not path.is_file():
            raise FileNotFoundError(
                f"no calibration at {path}; fit one with ccs_fno.uq.calibrate and save it"
            )
        with xr.open_dataset(path, engine="scipy") as ds:
            return cls(ds.load())
