"""The explorer's controls: geology kind and parameters, seed, wells, Simulate (ipywidgets) and
the time slider (a ``TimeSlider``, drawn with the panels).

``ExplorerControls`` only builds and reads widgets; the explorer wires them to the surrogate.
Slider ranges are physical (mD, m, degrees) and always include the starting value. The controls
sit in four columns of fixed height, so switching the geology kind (3 or 6 parameters) never
moves the plots below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import ipywidgets as widgets
import numpy as np

from ccs_fno.widgets.time_slider import TimeSlider
from data_gen.geology import GAUSSIAN_MODELS, GEOLOGY_KINDS, GeologyParams
from data_gen.grid import Grid

_STYLE = {"description_width": "96px"}
_WIDTH = "265px"
_COLUMN_HEIGHT = "224px"  # the tallest column: the gaussian parameters (6 rows)
MAX_SEED = 2**31 - 1


@dataclass(frozen=True)
class ParamSlider:
    """A slider over the numeric geology parameter ``name`` from ``low`` to ``high``."""

    name: str
    description: str
    low: float
    high: float
    log: bool = False


def geology_sliders(kind: str, grid: Grid, params: GeologyParams) -> tuple[ParamSlider, ...]:
    """The sliders of geology ``kind`` on ``grid``, starting from ``params``."""
    depth_m, width_m = grid.nz * grid.dz_m, grid.nx * grid.dx_m
    if kind == "channel":
        sliders = (
            ParamSlider("channel_md", "channel (mD)", 10.0, 1000.0, log=True),
            ParamSlider("background_md", "host rock (mD)", 1.0, 200.0, log=True),
            # ChannelParams refuses a thickness below its minimum thickness
            ParamSlider("thickness_m", "thickness (m)", params.min_thickness_m, depth_m / 2),
        )
    elif kind == "gaussian":
        sliders = (
            ParamSlider("geometric_mean_md", "mean k (mD)", 5.0, 500.0, log=True),
            ParamSlider("log_variance", "variance ln k", 0.0, 3.0),
            ParamSlider("len_scale_m", "length (m)", 2 * grid.dx_m, width_m),
            ParamSlider("anisotropy", "anisotropy", 0.05, 1.0),
            ParamSlider("angle_deg", "dip (deg)", -45.0, 45.0),
        )
    else:
        raise ValueError(f"unknown geology kind {kind!r}; allowed: {GEOLOGY_KINDS}")
    # widen a range that does not hold the starting value (e.g. a store's own defaults)
    return tuple(
        replace(s, low=min(s.low, getattr(params, s.name)), high=max(s.high, getattr(params, s.name)))
        for s in sliders
    )


def _slider(spec: ParamSlider, value: float) -> widgets.Widget:
    common = {"description": spec.description, "style": _STYLE, "continuous_update": False}
    common["layout"] = widgets.Layout(width=_WIDTH)
    if spec.log:
        return widgets.FloatLogSlider(
            value=value, base=10, min=math.log10(spec.low), max=math.log10(spec.high), step=0.01, **common
        )
    step = (spec.high - spec.low) / 200
    return widgets.FloatSlider(value=value, min=spec.low, max=spec.high, step=step, **common)


def _depth_slider(description: str, grid: Grid, depth_m: float) -> widgets.FloatSlider:
    """Cell-centre depths of the grid, in m."""
    return widgets.FloatSlider(
        value=depth_m,
        min=float(grid.z_m[0]),
        max=float(grid.z_m[-1]),
        step=grid.dz_m,
        description=description,
        style=_STYLE,
        layout=widgets.Layout(width=_WIDTH),
        continuous_update=False,
        readout_format=".1f",
    )


def depth_to_row(grid: Grid, depth_m: float) -> int:
    """The row (z index) of the cell holding ``depth_m`` (m below the section top)."""
    return int(np.clip(depth_m // grid.dz_m, 0, grid.nz - 1))


class ExplorerControls:
    """All widgets of the explorer; ``box`` lays them out in four columns.

    ``params`` maps each geology kind to its starting parameters; ``rate_range`` bounds the
    injection rate (m^3/day); depths are in m below the section top.
    """

    def __init__(
        self,
        grid: Grid,
        times_days: np.ndarray,
        geology: str,
        params: dict[str, GeologyParams],
        rate_m3_per_day: float,
        rate_range: tuple[float, float],
        injector_depth_m: float,
        producer_depth_m: float,
    ) -> None:
        self.grid = grid
        self._base = dict(params)
        self.geology = widgets.Dropdown(
            options=list(GEOLOGY_KINDS),
            value=geology,
            description="geology",
            style=_STYLE,
            layout=widgets.Layout(width=_WIDTH),
        )
        self.seed = widgets.BoundedIntText(
            value=0,
            min=0,
            max=MAX_SEED,
            description="seed",
            style=_STYLE,
            layout=widgets.Layout(width=_WIDTH),
        )
        self.params = {
            kind: {s.name: _slider(s, getattr(p, s.name)) for s in geology_sliders(kind, grid, p)}
            for kind, p in self._base.items()
        }
        if "gaussian" in self.params:
            self.params["gaussian"]["model"] = widgets.Dropdown(
                options=list(GAUSSIAN_MODELS),
                value=self._base["gaussian"].model,
                description="covariance",
                layout=widgets.Layout(width=_WIDTH),
                style=_STYLE,
            )
        self._param_boxes = {kind: widgets.VBox(list(w.values())) for kind, w in self.params.items()}
        low, high = rate_range
        self.rate = widgets.FloatSlider(
            value=rate_m3_per_day,
            min=low,
            max=high,
            step=(high - low) / 100 if high > low else 1.0,
            description="rate (m³/day)",
            readout_format=".0f",
            style=_STYLE,
            layout=widgets.Layout(width=_WIDTH),
            continuous_update=False,
        )
        self.injector_depth = _depth_slider("inj. depth (m)", grid, injector_depth_m)
        self.producer_depth = _depth_slider("prod. depth (m)", grid, producer_depth_m)
        self.time = TimeSlider(times_days)  # drawn above the panels: it swaps their frames in the browser
        self.simulate = widgets.Button(
            description="Simulate",
            icon="play",
            button_style="primary",
            tooltip="run the simulator for this scenario in the background and compare",
            layout=widgets.Layout(width="140px"),
        )
        self.progress = widgets.FloatProgress(
            value=0.0, min=0.0, max=1.0, layout=widgets.Layout(width="100px", margin="8px 0 0 8px")
        )
        # what the rate means in mass (t/day, Mt/year): written by the explorer
        self.rate_mass = widgets.HTML(
            value="", layout=widgets.Layout(width=_WIDTH, margin="0 0 0 8px", overflow="hidden")
        )
        self.wells_into_channel = widgets.Button(
            description="wells into channel",
            icon="arrows-v",
            layout=widgets.Layout(width="170px", margin="2px 0 0 100px"),
            tooltip="move both wells to the channel's centre line in their columns (as in training)",
        )
        # every kind's sliders stay in the page, the other kinds' hidden: swapping the children
        # instead would make the browser build the sliders anew at each switch (~0.1 s, measured)
        self._param_column = widgets.VBox(list(self._param_boxes.values()))
        self.geology.observe(lambda _: self._show_params(), "value")
        self._show_params()

        def column(title: str, *children: widgets.Widget) -> widgets.VBox:
            layout = widgets.Layout(padding="0 8px 0 0", height=_COLUMN_HEIGHT, overflow="hidden")
            return widgets.VBox([widgets.HTML(f"<b>{title}</b>"), *children], layout=layout)

        self.box = widgets.HBox(
            [
                column("Geology", self.geology, self.seed),
                column("Rock parameters", self._param_column),
                column(
                    "Injection and wells",
                    self.rate,
                    self.rate_mass,
                    self.injector_depth,
                    self.producer_depth,
                    self.wells_into_channel,
                ),
                column("Simulator", widgets.HBox([self.simulate, self.progress])),
            ],
            layout=widgets.Layout(flex_flow="row wrap"),
        )

    def _show_params(self) -> None:
        for kind, box in self._param_boxes.items():
            box.layout.display = None if kind == self.geology.value else "none"

    def scenario_widgets(self) -> list[widgets.Widget]:
        """Every widget whose value changes the scenario (not the time)."""
        params = [w for kind in self.params.values() for w in kind.values()]
        return [self.geology, self.seed, *params, self.rate, self.injector_depth, self.producer_depth]

    def geology_params(self) -> GeologyParams:
        """The parameters of the selected geology kind, from the sliders (may raise ValueError)."""
        kind = self.geology.value
        return replace(self._base[kind], **{name: w.value for name, w in self.params[kind].items()})

    def well_rows(self) -> tuple[int, int]:
        """Rows (z indices) of the injector and producer cells."""
        return (
            depth_to_row(self.grid, self.injector_depth.value),
            depth_to_row(self.grid, self.producer_depth.value),
        )
