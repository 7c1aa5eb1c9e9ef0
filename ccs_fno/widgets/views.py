"""HoloViews (Bokeh backend) plots of the notebooks: fields, permeability, saturation, wells.

Fields are ``(z, x)`` arrays on a ``Grid`` and are drawn with depth increasing downward. The
notebook apps (explorer, inversion, UQ) do not use these: they update Bokeh data sources in
place through ``ccs_fno.widgets.panels``.
"""

from __future__ import annotations

import holoviews as hv
import numpy as np

from ccs_fno.widgets.panels import WELL_COLOURS
from data_gen.grid import Grid

X = hv.Dimension("x", label="x", unit="m")
Z = hv.Dimension("z", label="depth", unit="m")
TIME = hv.Dimension("time", label="time", unit="d")
SATURATION = hv.Dimension("saturation", label="CO2 saturation")
LOG_K = hv.Dimension("log10_k", label="permeability", unit="log10 mD")
DIFFERENCE = hv.Dimension("difference", label="saturation difference")
AREA = hv.Dimension("area", label="plume area", unit="km²")
EXTENT = hv.Dimension("extent", label="plume extent", unit="m")
FIELD_WIDTH_PX = 280  # frame width of field images; the height follows the section's aspect
CURVE_SIZE_PX = (390, 230)


def load_extension() -> None:
    """Load HoloViews' Bokeh backend for a notebook, offline: BokehJS and Panel's CSS inline."""
    import panel as pn

    pn.config.inline = True  # else Panel's stylesheets are fetched from its CDN
    hv.extension("bokeh", inline=True, logo=False)


def _check_field(field: np.ndarray, grid: Grid) -> np.ndarray:
    f = np.asarray(field)
    if f.shape != grid.shape:
        raise ValueError(f"field has shape {f.shape} but the grid is (nz, nx) = {grid.shape}")
    return f


def image_opts(grid: Grid, cmap: str = "viridis", clim: tuple[float, float] | None = None) -> hv.Options:
    """Options of a field image on ``grid``: depth down, square cells, colour bar, hover; without
    ``clim`` the colour range follows each frame's data."""
    # A fixed frame of the section's aspect, not data_aspect: that costs ~30 ms more per update.
    height = round(FIELD_WIDTH_PX * (grid.nz * grid.dz_m) / (grid.nx * grid.dx_m))
    return hv.opts.Image(
        backend="bokeh",
        framewise=clim is None,
        cmap=cmap,
        clim=clim if clim is not None else (np.nan, np.nan),  # NaN: from the data
        colorbar=True,
        invert_yaxis=True,
        frame_width=FIELD_WIDTH_PX,
        frame_height=height,
        tools=["hover"],
    )


def raw_image(field: np.ndarray, grid: Grid, vdim: hv.Dimension | str, title: str = "") -> hv.Image:
    """A ``(z, x)`` field as an image in metres, without options (see ``image_opts``)."""
    depth_m, width_m = grid.nz * grid.dz_m, grid.nx * grid.dx_m
    # An image's first row is drawn at the top of its bounds, i.e. at the largest depth before the
    # y axis is inverted: flip so that row z = 0 lies at depth 0.
    return hv.Image(
        np.flipud(_check_field(field, grid)),
        bounds=(0.0, 0.0, width_m, depth_m),
        kdims=[X, Z],
        vdims=[vdim],
        label=title,
    )


def field_image(
    field: np.ndarray,
    grid: Grid,
    *,
    vdim: hv.Dimension | str = SATURATION,
    title: str = "",
    cmap: str = "viridis",
    clim: tuple[float, float] | None = None,
) -> hv.Image:
    """A ``(z, x)`` field as an image in metres, depth down, with a colour bar."""
    return raw_image(field, grid, vdim, title).opts(image_opts(grid, cmap, clim))


def permeability_image(permeability_md: np.ndarray, grid: Grid, title: str = "permeability") -> hv.Image:
    """Permeability (mD) on a log10 colour scale."""
    log_k = np.log10(_check_field(permeability_md, grid))
    return field_image(log_k, grid, vdim=LOG_K, title=title, cmap="cividis")


def saturation_image(
    saturation: np.ndarray, grid: Grid, max_saturation: float = 1.0, title: str = ""
) -> hv.Image:
    """CO2 saturation on a fixed [0, max_saturation] colour scale."""
    return field_image(saturation, grid, title=title, clim=(0.0, max_saturation))


def points_opts() -> hv.Options:
    """Options of the wells' points (a function: options need a loaded plotting backend)."""
    return hv.opts.Points(
        backend="bokeh",
        color="well",
        cmap=WELL_COLOURS,
        size=10,
        marker="triangle",
        line_color="white",
        show_legend=False,
        tools=["hover"],
    )


def wells_points(grid: Grid, injector_zx: tuple[int, int], producer_zx: tuple[int, int]) -> hv.Points:
    """The injector (red) and producer (blue) cells as points, without options (``points_opts``)."""
    rows = [
        (grid.x_m[x], grid.z_m[z], name)
        for name, (z, x) in (("injector", injector_zx), ("producer", producer_zx))
    ]
    return hv.Points(rows, kdims=[X, Z], vdims=["well"])
