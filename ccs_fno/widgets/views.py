"""HoloViews (Bokeh backend) plots of the notebooks and of the scenario explorer.

Fields are ``(z, x)`` arrays on a ``Grid`` and are drawn with depth increasing downward. The
explorer's views are DynamicMaps fed by ``hv.streams.Pipe``s; ``ExplorerViews.show`` sends a new
``ExplorerFrame`` only to the pipes whose part of the frame changed, triggered together, and a
displayed plot updates in place (its Bokeh data sources are pushed through Panel's comms). Plot
options are set once on each DynamicMap, not on every element it returns: that keeps an update
cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass

import holoviews as hv
import numpy as np

from ccs_fno.widgets.plume import plume_area_m2, plume_extent_m, relative_error
from data_gen.grid import Grid

X = hv.Dimension("x", label="x", unit="m")
Z = hv.Dimension("z", label="depth", unit="m")
TIME = hv.Dimension("time", label="time", unit="d")
SATURATION = hv.Dimension("saturation", label="CO2 saturation")
LOG_K = hv.Dimension("log10_k", label="permeability", unit="log10 mD")
DIFFERENCE = hv.Dimension("difference", label="saturation difference")
AREA = hv.Dimension("area", label="plume area", unit="km²")
EXTENT = hv.Dimension("extent", label="plume extent", unit="m")
WELL_COLOURS = {"injector": "#d62728", "producer": "#1f77b4"}
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


@dataclass(frozen=True)
class ExplorerFrame:
    """What the explorer shows: a scenario's rock, wells and prediction at one report time, and
    the simulator's saturation for the same scenario (``simulated``) once there is one.

    ``predicted`` and ``simulated`` are ``(time, z, x)``; ``simulation_note`` says why there is
    no simulation (e.g. "press Simulate"). Views compare arrays by identity: build a frame from
    new arrays when the data change.
    """

    permeability_md: np.ndarray
    injector_zx: tuple[int, int]
    producer_zx: tuple[int, int]
    predicted: np.ndarray
    time_index: int
    simulated: np.ndarray | None = None
    simulation_note: str = "press Simulate"


def _changed(old: ExplorerFrame | None, new: ExplorerFrame, *names: str) -> bool:
    if old is None:
        return True
    for name in names:
        a, b = getattr(old, name), getattr(new, name)
        if (a is not b) if isinstance(b, np.ndarray) or b is None else a != b:
            return True
    return False


_PARTS = ("rock", "now", "curves", "time", "comparison")  # one pipe each


class ExplorerViews:
    """The explorer's six views, two per row in ``layout``: rock and wells, predicted saturation
    now, area and extent of the plume connected to the injector against time (with a marker at
    the current time), simulated
    saturation now and the difference surrogate - simulator with its relative L2 error.
    """

    def __init__(
        self, grid: Grid, times_days: np.ndarray, max_saturation: float, frame: ExplorerFrame
    ) -> None:
        hv.renderer("bokeh")  # loads the backend if no notebook extension did
        self.grid = grid
        self.times_days = np.asarray(times_days, dtype=float)
        self.max_saturation = float(max_saturation)
        self._pipes = {name: hv.streams.Pipe(data=frame) for name in _PARTS}
        self._last: ExplorerFrame | None = frame
        width, height = CURVE_SIZE_PX
        curve_opts = (
            hv.opts.Curve(
                backend="bokeh", width=width, height=height, show_grid=True, tools=["hover"], framewise=True
            ),
            hv.opts.Overlay(backend="bokeh", legend_position="top_left"),
        )
        vline = hv.opts.VLine(backend="bokeh", color="grey", line_dash="dashed", line_width=1)
        saturation = image_opts(grid, clim=(0.0, self.max_saturation))
        self.layout = hv.Layout(
            [
                self._dmap(self._permeability, "rock").opts(image_opts(grid, cmap="cividis"), points_opts()),
                self._dmap(self._predicted, "now").opts(saturation, points_opts()),
                (self._dmap(self._area, "curves") * self._dmap(self._marker, "time")).opts(
                    *curve_opts, vline, hv.opts.Overlay(backend="bokeh", title="plume area")
                ),
                (self._dmap(self._extent, "curves") * self._dmap(self._marker, "time")).opts(
                    *curve_opts, vline, hv.opts.Overlay(backend="bokeh", title="plume horizontal extent")
                ),
                self._dmap(self._simulated, "comparison").opts(saturation),
                self._dmap(self._difference, "comparison").opts(image_opts(grid, cmap="RdBu_r")),
            ]
        ).cols(2)

    def _dmap(self, callback: Callable[[ExplorerFrame], hv.Element], part: str) -> hv.DynamicMap:
        """A view drawn by ``callback(data=frame)`` whenever the pipe of ``part`` sends."""
        return hv.DynamicMap(callback, streams=[self._pipes[part]])

    def show(self, frame: ExplorerFrame) -> None:
        """Display ``frame``, re-rendering only the views whose data changed."""
        old, self._last = self._last, frame
        sends = {
            "rock": _changed(old, frame, "permeability_md", "injector_zx", "producer_zx"),
            "now": _changed(old, frame, "predicted", "time_index"),
            "curves": _changed(old, frame, "predicted", "simulated"),
            "time": _changed(old, frame, "time_index"),
            "comparison": _changed(old, frame, "simulated", "simulation_note")
            or (frame.simulated is not None and _changed(old, frame, "predicted", "time_index")),
        }
        changed = [self._pipes[part] for part, send in sends.items() if send]
        for pipe in changed:
            pipe.update(data=frame)
        # One trigger for all: the layout re-renders what changed and pushes one message to the
        # browser. Each re-rendered plot would recompute its whole Bokeh document's model graph
        # (a third of an update's time, measured): freeze the documents, recompute once.
        with ExitStack() as frozen:
            for document in _documents(changed):
                frozen.enter_context(document.models.freeze())
            hv.streams.Stream.trigger(changed)

    def _t(self, frame: ExplorerFrame) -> float:
        return float(self.times_days[frame.time_index])

    def _with_wells(self, image: hv.Image, data: ExplorerFrame, title: str) -> hv.Overlay:
        # The layers keep fixed labels (an overlay matches its layers by label); the title is the
        # overlay's own label.
        wells = wells_points(self.grid, data.injector_zx, data.producer_zx)
        return (image * wells).relabel(title)

    def _permeability(self, data: ExplorerFrame) -> hv.Overlay:
        image = raw_image(np.log10(data.permeability_md), self.grid, LOG_K, "permeability")
        return self._with_wells(image, data, "permeability; injector red, producer blue")

    def _predicted(self, data: ExplorerFrame) -> hv.Overlay:
        image = raw_image(data.predicted[data.time_index], self.grid, SATURATION, "saturation")
        return self._with_wells(image, data, f"surrogate: CO2 saturation at {self._t(data):g} d")

    def _simulated(self, data: ExplorerFrame) -> hv.Image:
        if data.simulated is None:
            return raw_image(
                np.zeros(self.grid.shape), self.grid, SATURATION, f"simulator: {data.simulation_note}"
            )
        title = f"simulator: CO2 saturation at {self._t(data):g} d"
        return raw_image(data.simulated[data.time_index], self.grid, SATURATION, title)

    def _difference(self, data: ExplorerFrame) -> hv.Image:
        if data.simulated is None:
            diff, title = np.zeros(self.grid.shape), "difference: surrogate - simulator"
        else:
            now = data.time_index
            diff = data.predicted[now] - data.simulated[now]
            at_t = relative_error(data.predicted[now], data.simulated[now])
            title = f"difference: rel. L2 error {_percent(at_t)} at {self._t(data):g} d"
        bound = max(float(np.abs(diff).max()), 1e-3)  # symmetric colour scale around 0
        return raw_image(diff, self.grid, DIFFERENCE, title).redim.range(difference=(-bound, bound))

    def _series(self, data: ExplorerFrame, metric, vdim: hv.Dimension) -> hv.Overlay:
        # The simulator's curve is always there (NaN: not drawn) so the overlay keeps its layers.
        simulated = np.full(self.times_days.shape, np.nan)
        if data.simulated is not None:
            simulated = metric(data.simulated, self.grid, data.injector_zx)
        series = {
            "surrogate": metric(data.predicted, self.grid, data.injector_zx),
            "simulator": simulated,
        }
        curves = [hv.Curve((self.times_days, v), TIME, vdim, label=k) for k, v in series.items()]
        return hv.Overlay(curves)

    def _area(self, data: ExplorerFrame) -> hv.Overlay:
        return self._series(data, lambda *args: plume_area_m2(*args) / 1e6, AREA)

    def _extent(self, data: ExplorerFrame) -> hv.Overlay:
        return self._series(data, plume_extent_m, EXTENT)

    def _marker(self, data: ExplorerFrame) -> hv.VLine:
        return hv.VLine(self._t(data), kdims=[TIME, "y"])


def _documents(pipes: list[hv.streams.Pipe]) -> list:
    """The Bokeh documents of the plots that the pipes refresh (one per display)."""
    plots = {getattr(s, "__self__", None) for pipe in pipes for s in pipe.subscribers}
    models = (getattr(plot, "state", None) for plot in plots)
    documents = {id(d): d for d in (getattr(m, "document", None) for m in models) if d is not None}
    return list(documents.values())


def _percent(value: float) -> str:
    return "n/a" if not np.isfinite(value) else f"{100 * value:.1f} %"
