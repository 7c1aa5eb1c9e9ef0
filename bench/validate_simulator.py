"""Simulator against analytic 1-D solutions: Buckley-Leverett (horizontal) and buoyant rise (vertical).

Prints L1 saturation errors under refinement and writes docs/figures/simulator_validation.png.
Usage: python bench/validate_simulator.py [--out docs/figures/simulator_validation.png]
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from data_gen.analytic import buckley_leverett_profile, front_saturation  # noqa: E402
from data_gen.fluids import FluidProperties  # noqa: E402
from data_gen.grid import Grid  # noqa: E402
from data_gen.physics import MD_TO_M2, SECONDS_PER_DAY, SimulationConfig, simulate  # noqa: E402

LENGTH_M, AREA_M2, POROSITY, K_MD = 200.0, 100.0, 0.25, 100.0


def column(n: int, vertical: bool, rate_m3_per_day: float, t_days: float, fluids: FluidProperties):
    """Numerical and analytic profiles along a 1-D column; injector at x = 0 (bottom if vertical)."""
    d = LENGTH_M / n
    if vertical:
        grid = Grid(nz=n, nx=1, dx_m=10.0, dz_m=d, dy_m=10.0)
        wells = {"injector_zx": (n - 1, 0), "producer_zx": (0, 0)}
    else:
        grid = Grid(nz=1, nx=n, dx_m=d, dz_m=10.0, dy_m=10.0)
        wells = {"injector_zx": (0, 0), "producer_zx": (0, n - 1)}
    config = SimulationConfig(
        grid=grid, fluids=fluids, rate_m3_per_day=rate_m3_per_day, report_times_days=(0.0, t_days), **wells
    )
    s = simulate(np.full(grid.shape, K_MD), POROSITY, config, record_pressure=False).saturation[-1].ravel()
    x = (np.arange(n) + 0.5) * d
    if vertical:
        s = s[::-1]  # height above the bottom
    u = rate_m3_per_day / SECONDS_PER_DAY / AREA_M2
    n_g = K_MD * MD_TO_M2 * fluids.density_difference_kg_m3 * fluids.gravity_m_s2 / u if vertical else 0.0
    return x, s, buckley_leverett_profile(x, t_days * SECONDS_PER_DAY, u, POROSITY, fluids, n_g), n_g


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/figures/simulator_validation.png")
    args = parser.parse_args()
    fluids = FluidProperties()
    cases = {
        "horizontal Buckley-Leverett (0.1 m/day, 140 d)": (False, 10.0, 140.0),
        "vertical, buoyant CO2 injected at the bottom (0.05 m/day, 220 d)": (True, 5.0, 220.0),
    }
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, (title, (vertical, rate, t_days)) in zip(axes, cases.items(), strict=True):
        print(title)
        for n in (50, 100, 200, 400):
            x, s, exact, n_g = column(n, vertical, rate, t_days, fluids)
            print(f"  {n:4d} cells: L1 error {np.abs(s - exact).mean():.4f}")
            if n in (50, 200):
                ax.plot(x, s, label=f"simulated, {n} cells", lw=1.2)
        ax.plot(x, exact, "k--", label="analytic (concave envelope)", lw=1.2)
        if vertical:
            print(
                f"  front saturation with gravity {front_saturation(fluids, n_g):.4f}, "
                f"without {front_saturation(fluids):.4f}"
            )
            ax.plot(
                x,
                buckley_leverett_profile(
                    x, t_days * SECONDS_PER_DAY, rate / SECONDS_PER_DAY / AREA_M2, POROSITY, fluids
                ),
                ":",
                c="grey",
                label="analytic without gravity",
            )
        ax.set(
            title=title,
            xlabel="distance from injector [m]" + (" (upward)" if vertical else ""),
            ylabel="CO2 saturation",
        )
        ax.title.set_fontsize(9)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
