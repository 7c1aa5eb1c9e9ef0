"""The scenario explorer's plots, built from the widget foundations (``panels.py``).

Top row: the rock (permeability, log mD) with the wells, the surrogate's CO2 saturation now,
the simulator's, and their difference; bottom row: plume area in the section, plume horizontal
extent and CO2 mass (injected, and stored according to surrogate and simulator) against time,
with a marker at the current time; a time slider above them (``TimeSlider``).
``ExplorerViews.show(frame)`` updates only the panels whose part of the ``ExplorerFrame``
changed, in few Bokeh events (each is a round of messages that
BokehJS applies and repaints on its own): an image and the note in its corner (the time shown;
the difference's relative L2 error) are one event, the three curve panels share one source
(``SharedSource``). The rock's and the difference's colour scales
are sticky (``ColourScale.sticky``): moving a control recolours what changed, not the colour bar
each time. Without a simulation for the shown scenario, the simulator and difference panels say
so in words and the curves list no simulator line.

The time slider swaps frames in the browser: ``show`` sends the images at the slider's time
(one frame each, what a control change needs at once) and ``load_frames`` every report time's
(the app calls it once the controls rest); from then on the slider moves the images, their
notes and the curves' markers without a kernel round trip (``time_slider``).

With a conformal calibration of the surrogate (``ccs_fno.uq.Calibration``, fitted on held-out
simulations on the same grid and report times) the area and extent panels shade its 90 % band
around the surrogate's curve and a fourth panel in the bottom row maps the per-cell 90 % band
at the shown time; for a scenario outside the training distribution (``band_applies`` false)
the band panel says the band does not apply and nothing is shaded.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ccs_fno.co2_mass import injected_mass_t, stored_mass_t
from ccs_fno.plume import plume_area_m2, plume_extent_m, relative_error
from ccs_fno.widgets.panels import (
    ColourScale,
    CurvePanel,
    ImagePanel,
    LineStyle,
    SharedSource,
    bokeh_view,
    difference_scale,
    panel_grid,
    permeability_scale,
    saturation_scale,
)
from ccs_fno.widgets.static import static_figure
from ccs_fno.widgets.time_slider import TimeSlider
from data_gen.grid import Grid

if TYPE_CHECKING:
    from ccs_fno.uq import Calibration

SURROGATE = LineStyle("#1f77b4")
SIMULATOR = LineStyle("#d62728", "dashed")
INJECTED = LineStyle("#555555", "dotted")
TIME_LABEL = "time (d)"
BAND_LEVEL = 0.9  # the calibrated coverage the explorer shows
BAND = f"{BAND_LEVEL:.0%} band".replace("%", " %")  # legend label: "90 % band"
BAND_DOES_NOT_APPLY = f"the {BAND} does not apply here: the scenario lies outside the training distribution"
BAND_MAP_DOES_NOT_APPLY = "no valid band outside the training distribution"
SURROGATE_TITLE = "surrogate: CO2 saturation"
SIMULATOR_TITLE = "simulator: CO2 saturation"
DIFFERENCE_TITLE = "difference: surrogate − simulator"
BAND_TITLE = f"surrogate ± {BAND}"


@dataclass(frozen=True)
class ExplorerFrame:
    """What the explorer shows: a scenario's rock, wells, rate and prediction at one report
    time, and the simulator's saturation for the same scenario (``simulated``) once there is one.

    ``predicted`` and ``simulated`` are ``(time, z, x)``; ``simulation_note`` says in words why
    there is no simulation. Views compare arrays by identity: build a frame from new arrays
    when the data change.
    """

    permeability_md: np.ndarray
    injector_zx: tuple[int, int]
    producer_zx: tuple[int, int]
    rate_m3_per_day: float
    predicted: np.ndarray
    time_index: int
    simulated: np.ndarray | None = None
    simulation_note: str = "no simulation yet: press Simulate"
    band_applies: bool = True  # the scenario lies in the calibration's (training) distribution


def _changed(old: ExplorerFrame | None, new: ExplorerFrame, *names: str) -> bool:
    if old is None:
        return True
    for name in names:
        a, b = getattr(old, name), getattr(new, name)
        if (a is not b) if isinstance(b, np.ndarray) or b is None else a != b:
            return True
    return False


def _at(t_days: float) -> str:
    """The note on an image of report time ``t_days``."""
    return f"at {t_days:g} d"


def _percent(value: float) -> str:
    return "n/a" if not np.isfinite(value) else f"{100 * value:.1f} %"


class ExplorerViews:
    """The explorer's panels in two rows (``layout``), shown as one ipywidget (``widget``):
    seven, and an eighth (the per-cell band map ``band``) with a ``calibration``.

    ``porosity`` and ``co2_density_kg_m3`` turn saturation into stored CO2 mass.
    ``calibration`` must fit the grid and ``times_days`` (``Calibration.fits``) and hold the
    ``BAND_LEVEL``. ``time``: the time slider (built here when not given).
    """

    def __init__(
        self,
        grid: Grid,
        times_days: np.ndarray,
        max_saturation: float,
        porosity: float,
        co2_density_kg_m3: float,
        calibration: Calibration | None = None,
        time: TimeSlider | None = None,
    ) -> None:
        self.grid = grid
        self.times_days = np.asarray(times_days, dtype=float)
        self.time = time if time is not None else TimeSlider(self.times_days)
        if not np.array_equal(self.time.times_days, self.times_days):
            raise ValueError(
                "the time slider's report times are not the panels' times_days: pass a slider of them"
            )
        frames = {"frames": self.time}
        self.porosity, self.density = float(porosity), float(co2_density_kg_m3)
        saturation = saturation_scale(max_saturation)
        # Each image and its note are one source (one event per panel shown): a source shared
        # by all images would repaint every image panel on any change (measured slower).
        self.curve_source = SharedSource()  # the curves of the bottom row, over the report times
        self.rock = ImagePanel(
            grid, "permeability and wells", permeability_scale(sticky=True), wells=True, name="rock"
        )
        wells = self.rock  # one wells source: moving them is one event for the three panels
        common = {"wells": wells, **frames}
        self.now = ImagePanel(grid, SURROGATE_TITLE, saturation, name="surrogate", **common)
        self.simulated = ImagePanel(grid, SIMULATOR_TITLE, saturation, name="simulator", **common)
        self.difference = ImagePanel(
            grid,
            DIFFERENCE_TITLE,
            difference_scale("surrogate − simulator (-)", sticky=True),
            name="difference",
            **frames,
        )
        self._difference: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # (predicted, simulated, -)
        curves = {"shared": self.curve_source, "marker_on": self.time, "fit_ranges": True}
        two = {"surrogate": SURROGATE, "simulator": SIMULATOR}
        self.calibration = calibration
        bands = None
        if calibration is not None:
            if not calibration.fits(grid, self.times_days):
                raise ValueError(
                    "the calibration was fitted on another grid or other report times than the "
                    "surrogate's: give the calibration of this surrogate"
                )
            calibration.check_level(BAND_LEVEL)
            bands = {BAND: SURROGATE.colour}
        self.area = CurvePanel(
            "plume area in the vertical section",
            TIME_LABEL,
            "area (m² of section)",
            two,
            y_format="0,0",
            name="area",
            bands=bands,
            **curves,
        )
        self.extent = CurvePanel(
            "plume horizontal extent",
            TIME_LABEL,
            "extent (m)",
            two,
            y_format="0,0",
            name="extent",
            bands=bands,
            **curves,
        )
        self.mass = CurvePanel(
            "CO2 mass",
            TIME_LABEL,
            "CO2 mass (t)",
            {"injected": INJECTED, "stored (surrogate)": SURROGATE, "stored (simulator)": SIMULATOR},
            y_format="0,0",
            name="mass",
            **curves,
        )
        self.curves = (self.area, self.extent, self.mass)
        self.band: ImagePanel | None = None
        bottom = [self.area, self.extent, self.mass]
        if calibration is not None:
            cell_band = calibration.band(BAND_LEVEL)
            self._band_widths = {  # the band half-widths per report time
                "cells": np.asarray(cell_band.values),
                "area": np.asarray(calibration.area_band(BAND_LEVEL).values, dtype=float),
                "extent": np.asarray(calibration.extent_band(BAND_LEVEL).values, dtype=float),
            }
            high = max(float(self._band_widths["cells"].max()), 1e-6)
            self.band = ImagePanel(
                grid,
                BAND_TITLE,
                ColourScale(f"{BAND} half-width (saturation)", "Magma256", 0.0, high),
                name="band",
                **frames,
            )
            bottom.append(self.band)
        self.rows = [[self.rock, self.now, self.simulated, self.difference], bottom]
        from bokeh.layouts import column

        self.layout = column([self.time.slider, panel_grid(self.rows)], sizing_mode="stretch_width")
        self._widget = None
        self._last: ExplorerFrame | None = None

    def static_figure(self):
        """The panels as they are now, drawn by matplotlib (see ``static.static_figure``)."""
        return static_figure(self.rows)

    @property
    def widget(self):
        """The panels as one ipywidget (built once)."""
        if self._widget is None:
            self._widget = bokeh_view(self.layout)
        return self._widget

    def _t(self, frame: ExplorerFrame) -> float:
        return float(self.times_days[frame.time_index])

    @contextmanager
    def _sending(self) -> Iterator[None]:
        """Once the panels are displayed, the changes made inside leave for the browser in one
        burst after all are made (a Bokeh document hold, "combine": repeated changes of a
        property merged), not interleaved with the computing of the next panel."""
        document = self.layout.document
        if document is None:  # not displayed yet: nothing is sent
            yield
            return
        document.hold("combine")
        try:
            with self.curve_source.batch():
                yield
        finally:
            document.unhold()

    def show(self, frame: ExplorerFrame) -> None:
        """Display ``frame``, updating only the panels whose data changed (at the time slider's
        time, ``frame.time_index``)."""
        with self._sending():
            self._show(frame)

    def load_frames(self) -> None:
        """Send the images of every report time (surrogate, and simulator, difference and band
        where shown): the time slider then swaps them in the browser. Nothing is sent for images
        whose frames are there already."""
        frame = self._last
        if frame is None:
            return
        notes = [_at(t) for t in self.times_days]
        with self._sending():
            self.now.show_frames(frame.predicted, notes)
            if frame.simulated is not None:
                self.simulated.show_frames(frame.simulated, notes)
                pairs = zip(notes, frame.predicted, frame.simulated, strict=True)
                errors = [f"{n}: rel. L2 error {_percent(relative_error(p, s))}" for n, p, s in pairs]
                self.difference.show_frames(self._difference_of(frame), errors)
            if self.band is not None and frame.band_applies:
                self.band.show_frames(self._band_widths["cells"], notes)

    def _show(self, frame: ExplorerFrame) -> None:
        old, self._last = self._last, frame
        wells = {"injector": frame.injector_zx, "producer": frame.producer_zx}
        if _changed(old, frame, "permeability_md"):
            self.rock.show(frame.permeability_md)
        if _changed(old, frame, "injector_zx", "producer_zx"):
            self.rock.set_wells(wells)  # and the surrogate's and simulator's panels (one source)
        t = self._t(frame)
        now_changed = _changed(old, frame, "predicted", "time_index")
        if now_changed:
            self.now.show_frame(frame.predicted, note=_at(t))
        if _changed(old, frame, "simulated", "simulation_note") or (
            frame.simulated is not None and now_changed
        ):
            self._show_comparison(frame, t)
        curves = self._curves(old, frame)  # in the curve source's batch: one Bokeh event for all three
        for panel, (lines, bands) in zip(self.curves, curves, strict=True):
            if lines or bands:
                panel.update(self.times_days, lines, bands)
        if self.band is not None and _changed(old, frame, "time_index", "band_applies"):
            self._show_band_map(frame, t)

    def _difference_of(self, frame: ExplorerFrame) -> np.ndarray:
        """Surrogate - simulator at every report time (one array per pair of predictions)."""
        cached = self._difference
        if cached is None or cached[0] is not frame.predicted or cached[1] is not frame.simulated:
            cached = self._difference = (frame.predicted, frame.simulated, frame.predicted - frame.simulated)
        return cached[2]

    def _curves(self, old: ExplorerFrame | None, frame: ExplorerFrame) -> list[tuple[dict, dict]]:
        """The lines and bands of the area, extent and mass panels that ``frame`` changes (None:
        hide)."""
        (area, area_bands), (extent, extent_bands), (mass, _) = curves = [({}, {}) for _ in self.curves]
        grid, cell = self.grid, frame.injector_zx
        if _changed(old, frame, "predicted", "injector_zx", "band_applies"):
            p = frame.predicted
            area["surrogate"], extent["surrogate"] = (
                plume_area_m2(p, grid, cell),
                plume_extent_m(p, grid, cell),
            )
            if self.band is not None:
                for lines, bands, key in ((area, area_bands, "area"), (extent, extent_bands, "extent")):
                    curve, width = lines["surrogate"], self._band_widths[key]
                    bands[BAND] = (
                        (np.maximum(curve - width, 0.0), curve + width) if frame.band_applies else None
                    )
        if _changed(old, frame, "predicted"):
            mass["stored (surrogate)"] = stored_mass_t(frame.predicted, self.porosity, grid, self.density)
        if _changed(old, frame, "rate_m3_per_day"):
            mass["injected"] = injected_mass_t(self.times_days, frame.rate_m3_per_day, self.density)
        if _changed(old, frame, "simulated", "injector_zx"):
            s = frame.simulated
            if s is None:
                area["simulator"] = extent["simulator"] = mass["stored (simulator)"] = None
            else:
                area["simulator"], extent["simulator"] = (
                    plume_area_m2(s, grid, cell),
                    plume_extent_m(s, grid, cell),
                )
                mass["stored (simulator)"] = stored_mass_t(s, self.porosity, grid, self.density)
        return curves

    def _show_band_map(self, frame: ExplorerFrame, t: float) -> None:
        if frame.band_applies:
            self.band.show_frame(self._band_widths["cells"], note=_at(t))
        else:
            self.band.placeholder(BAND_MAP_DOES_NOT_APPLY)  # the title stays: one event less

    def _show_comparison(self, frame: ExplorerFrame, t: float) -> None:
        if frame.simulated is None:
            self.simulated.placeholder(frame.simulation_note)
            self.difference.placeholder(frame.simulation_note)
            return
        now = frame.time_index
        self.simulated.show_frame(frame.simulated, note=_at(t))
        error = _percent(relative_error(frame.predicted[now], frame.simulated[now]))
        self.difference.show_frame(self._difference_of(frame), note=f"{_at(t)}: rel. L2 error {error}")
