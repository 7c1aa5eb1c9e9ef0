"""Static figures of an ensemble store (matplotlib): permeability and CO2 plumes per sample, and the
colour maps every figure and app of the project uses.

``python -m data_gen.plots STORE.zarr OUT.png [--samples 4]`` writes the gallery used by ``make demo``.
Figures are built with matplotlib's object API (no pyplot, no backend switch): importing this module
changes nothing in a notebook's matplotlib set-up.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np
import xarray as xr
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator

from data_gen.store import open_dataset

# One owner for the colours of the project's figures (matplotlib names; HoloViews takes them too,
# Bokeh palettes are the capitalised "Viridis256", "Cividis256").
SATURATION_CMAP = "viridis"  # CO2 saturation
PERMEABILITY_CMAP = "cividis"  # permeability, on a log scale
DIFFERENCE_CMAP = "RdBu_r"  # signed differences (prediction - simulator), symmetric around 0
WELL_COLOURS = {"injector": "#d62728", "producer": "#1f77b4"}  # red injector, blue producer
WELL_MARKERS = {"injector": "v", "producer": "^"}  # injector points down into the rock


def log_ticks(low: float, high: float, max_ticks: int = 7) -> list[tuple[float, str]]:
    """Readable ticks for a log axis from ``low`` to ``high`` (both > 0): ``(value, label)`` pairs at
    1, 2, 5 × 10^n; when the range holds fewer than two of those, at 1..9 × 10^n, then at 1.0, 1.1,
    ..., 9.9 × 10^n; every decade when it holds more than ``max_ticks``; labelled in plain numbers
    ("0.05", "20") so that values such as final losses can be read off."""
    if not (np.isfinite(low) and np.isfinite(high) and 0 < low <= high):
        raise ValueError(f"log ticks need 0 < low <= high, got low={low!r}, high={high!r}")
    decades = np.arange(np.floor(np.log10(low)), np.ceil(np.log10(high)) + 1)

    def at(subs) -> list[float]:
        values = (float(f"{m * 10.0**e:.6g}") for e in decades for m in subs)
        return [v for v in values if low * (1 - 1e-9) <= v <= high * (1 + 1e-9)]

    values = at((1, 2, 5))
    if len(values) < 2:
        values = at(range(1, 10))
    if len(values) < 2:
        values = at(np.arange(10, 100) / 10)  # 1.0, 1.1, ..., 9.9 x 10^n
        values = values[:: max(1, -(-len(values) // max_ticks))]  # at most max_ticks of them
    elif len(values) > max_ticks:
        values = at((1,))
    if len(values) < 2:  # a range narrower than one step of 1..9 x 10^n: its two ends
        values = sorted({float(f"{low:.3g}"), float(f"{high:.3g}")})
    return [(v, f"{v:g}") for v in values]


def md_ticks(axis) -> None:
    """Label a log-scaled permeability axis (e.g. a colour bar's) in plain mD: 20, 50, 100, 200."""
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(FuncFormatter(lambda value, _: ""))


def plume_gallery(ds: xr.Dataset, n_samples: int = 4, n_times: int = 3) -> Figure:
    """One row per sample: permeability (mD, log colour scale) with the wells, then CO2 saturation at
    ``n_times`` report times; one saturation colour bar per row, beside the last column."""
    samples = np.flatnonzero(ds["done"].values)[:n_samples]
    if samples.size == 0:
        raise ValueError("the store holds no finished samples yet (its `done` ledger is all False)")
    if n_times < 1:
        raise ValueError(f"n_times must be at least 1, got {n_times}")
    times = np.linspace(0, ds.sizes["time"] - 1, n_times + 1)[1:].round().astype(int)
    dx, dz = float(ds.x[1] - ds.x[0]), float(ds.z[1] - ds.z[0])  # cell centres -> cell edges
    extent = [float(ds.x[0]) - dx / 2, float(ds.x[-1]) + dx / 2, float(ds.z[-1]) + dz / 2, 0.0]
    k_all = ds["permeability"].isel(sample=samples).values
    k_norm = LogNorm(vmin=float(k_all.min()), vmax=float(k_all.max()))
    fig = Figure(figsize=(3.1 * (n_times + 1) + 1.0, 2.6 * samples.size + 0.4), layout="constrained")
    axes = fig.subplots(samples.size, n_times + 1, squeeze=False, sharex=True, sharey=True)
    for row, i in zip(axes, samples, strict=True):
        sample = ds.isel(sample=int(i))
        k = row[0].imshow(sample["permeability"].values, extent=extent, cmap=PERMEABILITY_CMAP, norm=k_norm)
        md_ticks(fig.colorbar(k, ax=row[0], label="permeability [mD]").ax.yaxis)
        for name in ("injector", "producer"):
            row[0].plot(
                ds.x.values[int(sample[f"{name}_x"])],
                ds.z.values[int(sample[f"{name}_z"])],
                WELL_MARKERS[name],
                color=WELL_COLOURS[name],
                markeredgecolor="white",
                ms=8,
                label=name,
            )
        row[0].set_title(f"sample {int(i)}: {float(sample['rate_m3_per_day']):.0f} m³/day", fontsize=9)
        for ax, t in zip(row[1:], times, strict=True):
            s = ax.imshow(
                sample["saturation"].isel(time=int(t)).values,
                extent=extent,
                vmin=0,
                vmax=1,
                cmap=SATURATION_CMAP,
            )
            ax.set_title(f"CO2 saturation, {float(ds.time[t]):.0f} d", fontsize=9)
        fig.colorbar(s, ax=row[1:], label="CO2 saturation [-]", fraction=0.05)
        row[0].set_ylabel("depth [m]")
    for ax in axes[-1]:
        ax.set_xlabel("x [m]")
    fig.legend(
        *axes[0, 0].get_legend_handles_labels(), loc="outside upper left", ncols=2, fontsize=8, frameon=False
    )
    return fig


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store")
    parser.add_argument("out_png")
    parser.add_argument("--samples", type=int, default=4)
    args = parser.parse_args(argv)
    fig = plume_gallery(open_dataset(args.store), n_samples=args.samples)
    fig.savefig(args.out_png, dpi=90)
    print(f"wrote {args.out_png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
