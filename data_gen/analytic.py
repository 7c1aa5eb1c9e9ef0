"""Analytic 1-D solutions for reference tests: Buckley-Leverett with and without gravity.

CO2 is injected at ``x = 0`` into a brine-filled 1-D medium at total Darcy flux ``u`` (m/s). With
``N = k * drho * g / u`` (gravity number, counted along the flow: > 0 when the flow is upward) the
dimensionless CO2 flux is ``F(S) = f(S) * (1 + N * lam_w(S))``. The entropy solution of the Riemann
problem (pure CO2 injected, S = 0 ahead) follows the upper concave envelope of F on [0, S_in]
(Oleinik): straight pieces are shocks (the Welge tangent), curved pieces rarefactions.
"""

from __future__ import annotations

import numpy as np

from data_gen.fluids import FluidProperties


def co2_flux_function(s: np.ndarray, fluids: FluidProperties, gravity_number: float = 0.0) -> np.ndarray:
    """Dimensionless CO2 flux ``f(S) (1 + N lam_w(S))`` (``lam_w`` in 1/(Pa s), ``N`` in Pa s)."""
    lam_w, lam_g = fluids.mobilities(s)
    return lam_g / (lam_g + lam_w) * (1.0 + gravity_number * lam_w)


def _upper_hull(s: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vertices of the upper concave envelope of the points ``(s, f)`` (s increasing)."""
    hull: list[int] = []
    for k in range(s.size):
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            # Drop b if it lies on or below the chord a -> k.
            if (f[b] - f[a]) * (s[k] - s[a]) <= (f[k] - f[a]) * (s[b] - s[a]):
                hull.pop()
            else:
                break
        hull.append(k)
    idx = np.asarray(hull)
    return s[idx], f[idx]


def _envelope(fluids: FluidProperties, gravity_number: float, n: int = 20001):
    """Upper concave envelope of F on [0, S_in], S_in the injected state where F first reaches 1.

    Without gravity ``S_in = 1 - S_wr``; strong upward buoyancy can lift F above 1 below that, and the
    inlet (which takes exactly the injected flux) then sits at the first root of ``F(S) = 1``.
    """
    s = np.linspace(0.0, fluids.max_co2_saturation, n)
    f = co2_flux_function(s, fluids, gravity_number)
    end = int(np.argmax(f >= 1.0 - 1e-12)) + 1
    return _upper_hull(s[:end], f[:end])


def riemann_saturation(xi: np.ndarray, fluids: FluidProperties, gravity_number: float = 0.0) -> np.ndarray:
    """CO2 saturation at similarity coordinates ``xi = x * phi / (u * t)``."""
    hs, hf = _envelope(fluids, gravity_number)
    slopes = np.diff(hf) / np.diff(hs)  # decreasing: speeds of the envelope pieces
    if np.any(np.diff(slopes) > 1e-9 * np.abs(slopes).max()):
        raise ValueError("envelope slopes are not decreasing; the flux function is ill-posed")
    # The state at speed xi is the hull vertex with all faster pieces to its left.
    count = np.searchsorted(-slopes, -np.asarray(xi, dtype=float), side="left")
    return hs[count]


def front_saturation(fluids: FluidProperties, gravity_number: float = 0.0) -> float:
    """Saturation just behind the leading shock (the Welge tangent point)."""
    hs, _ = _envelope(fluids, gravity_number)
    return float(hs[1])


def buckley_leverett_profile(
    x_m: np.ndarray,
    t_s: float,
    darcy_flux_m_s: float,
    porosity: float,
    fluids: FluidProperties,
    gravity_number: float = 0.0,
) -> np.ndarray:
    """CO2 saturation at positions ``x_m`` (from the inlet) at time ``t_s``."""
    xi = np.asarray(x_m) * porosity / (darcy_flux_m_s * t_s)
    return riemann_saturation(xi, fluids, gravity_number)
