"""Static figures of an ensemble store (matplotlib): permeability and CO2 plumes per sample.

``python -m data_gen.plots STORE.zarr OUT.png [--samples 4]`` writes the gallery used by ``make demo``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # headless: figures go to files
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

from data_gen.store import open_dataset  # noqa: E402


def plume_gallery(ds: xr.Dataset, n_samples: int = 4, n_times: int = 3) -> plt.Figure:
    """One row per sample: log permeability, then CO2 saturation at ``n_times`` report times."""
    samples = np.flatnonzero(ds["done"].values)[:n_samples]
    if samples.size == 0:
        raise ValueError("the store holds no finished samples yet (its `done` ledger is all False)")
    times = np.linspace(0, ds.sizes["time"] - 1, n_times + 1)[1:].round().astype(int)
    extent = [0.0, float(ds.x[-1] + ds.x[0]), float(ds.z[-1] + ds.z[0]), 0.0]
    fig, axes = plt.subplots(
        samples.size, n_times + 1, figsize=(3.0 * (n_times + 1), 2.7 * samples.size), squeeze=False
    )
    for row, i in zip(axes, samples, strict=True):
        sample = ds.isel(sample=int(i))
        im = row[0].imshow(np.log10(sample["permeability"].values), extent=extent, cmap="cividis")
        fig.colorbar(im, ax=row[0], label="log10 k [mD]")
        row[0].plot(
            ds.x.values[int(sample["injector_x"])],
            ds.z.values[int(sample["injector_z"])],
            "r^",
            ms=7,
            label="injector",
        )
        row[0].plot(
            ds.x.values[int(sample["producer_x"])],
            ds.z.values[int(sample["producer_z"])],
            "wv",
            ms=7,
            label="producer",
        )
        row[0].set_title(f"sample {int(i)}: {float(sample['rate_m3_per_day']):.0f} m³/day")
        for ax, t in zip(row[1:], times, strict=True):
            im = ax.imshow(
                sample["saturation"].isel(time=int(t)).values, extent=extent, vmin=0, vmax=1, cmap="magma"
            )
            ax.set_title(f"CO2 saturation, {float(ds.time[t]):.0f} d")
        fig.colorbar(im, ax=row[-1], label="S_CO2")
        for ax in row:
            ax.set_xlabel("x [m]")
            ax.set_ylabel("depth [m]")
    axes[0, 0].legend(loc="lower right", fontsize=7)
    fig.tight_layout()
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
