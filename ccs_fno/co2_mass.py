"""CO2 mass accounting in engineering units: mass rates, injected and stored mass.

Rates in the simulator and the surrogate are reservoir volumes (m^3/day of CO2 at reservoir
conditions); a CCS engineer reads mass: ``mass_rate_t_per_day`` (t/day) and
``mt_per_year`` (Mt/year, 365.25 days) at the stated CO2 density (``FluidProperties.
co2_density_kg_m3``, 700 kg/m^3 by default). ``injected_mass_t`` is the rate integrated over
time; ``stored_mass_t`` is the CO2 in place, saturation x porosity x cell volume x density
summed over the section. For an incompressible simulation that conserves volume the two agree
up to what the producer has taken out; a surrogate's stored mass against the injected one is a
physical check of its prediction.
"""

from __future__ import annotations

import math

import numpy as np

from data_gen.grid import Grid

DAYS_PER_YEAR = 365.25


def _positive(name: str, value: float) -> float:
    v = float(value)
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return v


def mass_rate_t_per_day(rate_m3_per_day: float, co2_density_kg_m3: float) -> float:
    """Mass rate (t/day) of a reservoir-volume rate (m^3/day) at ``co2_density_kg_m3``."""
    if not math.isfinite(float(rate_m3_per_day)) or rate_m3_per_day < 0:
        raise ValueError(f"rate_m3_per_day must be a finite number >= 0, got {rate_m3_per_day!r}")
    return float(rate_m3_per_day) * _positive("co2_density_kg_m3", co2_density_kg_m3) / 1000.0


def mt_per_year(t_per_day: float) -> float:
    """A mass rate in t/day as Mt/year (365.25 days a year)."""
    return float(t_per_day) * DAYS_PER_YEAR / 1e6


def injected_mass_t(times_days: np.ndarray, rate_m3_per_day: float, co2_density_kg_m3: float) -> np.ndarray:
    """Cumulative CO2 mass injected (t) at ``times_days`` at a constant rate from day 0."""
    t = np.asarray(times_days, dtype=np.float64)
    if t.ndim != 1 or (t < 0).any() or not np.isfinite(t).all():
        raise ValueError(f"times_days must be 1-D, finite and >= 0, got {t!r}")
    return mass_rate_t_per_day(rate_m3_per_day, co2_density_kg_m3) * t


def stored_mass_t(
    saturation: np.ndarray, porosity: float | np.ndarray, grid: Grid, co2_density_kg_m3: float
) -> np.ndarray:
    """CO2 mass in place (t): sum over the section of saturation x porosity x cell volume
    (``grid.cell_volume_m3``, m^3) x density; shape ``saturation.shape[:-2]``.

    ``saturation`` is ``(..., z, x)`` (CO2 saturation, fraction of pore volume); ``porosity`` a
    number or a ``(z, x)`` field.
    """
    s = np.asarray(saturation, dtype=np.float64)
    if s.ndim < 2 or s.shape[-2:] != grid.shape:
        raise ValueError(f"saturation must end in the grid's (z, x) = {grid.shape} dims, got shape {s.shape}")
    phi = np.asarray(porosity, dtype=np.float64)
    if phi.shape not in ((), grid.shape):
        raise ValueError(f"porosity must be a number or a (z, x) = {grid.shape} field, got shape {phi.shape}")
    if not ((phi > 0) & (phi <= 1)).all():
        raise ValueError(f"porosity must lie in (0, 1], got values from {phi.min():g} to {phi.max():g}")
    density = _positive("co2_density_kg_m3", co2_density_kg_m3)
    pore_m3 = phi * grid.cell_volume_m3 * np.ones(grid.shape)
    return np.einsum("...zx,zx->...", s, pore_m3) * density / 1000.0


def format_mass_t(tonnes: float) -> str:
    """A CO2 mass (t) as t, kt or Mt with three significant figures."""
    t = float(tonnes)
    if not math.isfinite(t):
        return "n/a"
    for unit, scale in (("Mt", 1e6), ("kt", 1e3)):
        if abs(t) >= scale:
            return f"{t / scale:.3g} {unit}"
    return f"{t:.3g} t"
