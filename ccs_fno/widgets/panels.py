"""Widget foundations of the notebook apps (explorer, inversion, UQ): Bokeh panels fed by
``ColumnDataSource``s and one way to put them in an ipywidgets layout; with them, from their own
modules, the colour scales (``colour_scale``), the message banner (``banner``), sources shared by
panels (``shared_source``) and the time slider (``time_slider``), all importable from here.

How an app uses them::

    from ccs_fno.widgets.panels import Banner, CurvePanel, ImagePanel, SATURATION, bokeh_view

    rock = ImagePanel(grid, "permeability", permeability_scale(sticky=True), wells=True)
    now = ImagePanel(grid, "surrogate: CO2 saturation", saturation_scale(s_max), wells=rock)
    curves = SharedSource()  # panels over the same x: one event for all of them
    area = CurvePanel("plume area", TIME, AREA_SECTION, {"surrogate": SOLID}, name="area", shared=curves)
    banner = Banner()
    app = widgets.VBox([controls, banner.widget, bokeh_view(panel_grid([[rock, now], [area]]))])
    # on a control change (in the app's lock):
    rock.show(k_md); rock.set_wells({"injector": (z_i, x_i), "producer": (z_p, x_p)})
    now.show(s[t], note=f"at {t_days[t]:g} d")               # the note: in the image's corner
    now.placeholder("no simulation yet: press Simulate")      # text, never an all-zero map
    with curves.batch():
        area.set_line("surrogate", t_days, area_m2)
    banner.show("warning", ["injector above the channel"])

An update changes data-source columns (a patch or new ``data``: one Bokeh event per source,
images as float32 binary buffers, curves as JSON lists) and a few properties (colour range,
visibility, a title): nothing is re-rendered and no HoloViews object is rebuilt. Every event is
a round of messages to the browser that BokehJS applies and repaints on its own (~10 ms each in
JupyterLab on a small machine), so what changes together shares a source (``SharedSource``),
while each image keeps its own (a change of a shared source repaints every panel drawing from
it). ``bokeh_view`` wraps a Bokeh layout in ``jupyter_bokeh``'s ``BokehModel`` ipywidget (the
documented bridge between Bokeh and ipywidgets): every document change is sent to the browser
as it happens, in the order made. Apps serialise their updates (a lock) when a background
thread (a simulator) also updates panels.

Fields are ``(z, x)`` arrays on a ``data_gen.grid.Grid``; depth (m) grows downward; x and
depth axes are labelled in m; colour bars carry the quantity and its unit (permeability on a
log scale with mD tick labels). This module holds no app logic: apps compute, panels display.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from bokeh.models import (
    BasicTicker,
    CDSView,
    ColorBar,
    ColumnDataSource,
    HoverTool,
    Label,
    Legend,
    LegendItem,
    LinearColorMapper,
    LogColorMapper,
    LogTicker,
    NumeralTickFormatter,
    Range1d,
)
from bokeh.plotting import figure

from ccs_fno.widgets.banner import Banner
from ccs_fno.widgets.colour_scale import (
    ColourScale,
    difference_scale,
    permeability_scale,
    saturation_scale,
)
from ccs_fno.widgets.shared_source import SharedSource
from ccs_fno.widgets.time_slider import TimeSlider
from data_gen.grid import Grid

WELL_COLOURS = {"injector": "#d62728", "producer": "#1f77b4"}
IMAGE_SIZE_PX = (300, 258)  # width (with colour bar), height of an image panel at its nominal size
CURVE_SIZE_PX = (300, 200)
# Room for the colour bar right of an image and for the y axis left of a curve panel, wide enough
# for their widest tick labels ("1,000" mD, "1,500,000" m²): new ranges then never change the
# figures' size, which would make BokehJS lay out the whole document again (~50 ms, measured).
IMAGE_RIGHT_PX = 76
PLACEHOLDER_CHARS = 22  # characters per line of a placeholder text: the frame of a 1600-px-wide app
CURVE_LEFT_PX = 84
TOOLS = "pan,wheel_zoom,box_zoom,reset,save"


# A colour bar faded out: its scale transparent, its texts in its background's colour (white).
# Alpha 0 on a text would do too, but BokehJS then leaves the text out of the layout: the figure
# changes size and the whole document is laid out again (measured).
_COLOUR_BAR_SHOWN = {"scale_alpha": 1.0, "major_label_text_color": "#444444", "title_text_color": "#444444"}
_COLOUR_BAR_FADED = {"scale_alpha": 0.0, "major_label_text_color": "white", "title_text_color": "white"}


def _check_field(field: np.ndarray, grid: Grid) -> np.ndarray:
    f = np.asarray(field, dtype=np.float64)
    if f.shape != grid.shape:
        raise ValueError(
            f"field has shape {f.shape} but the grid is (nz, nx) = {grid.shape}: pass one (z, x) field"
        )
    return f


class ImagePanel:
    """A ``(z, x)`` field on ``grid`` as an image, depth down, axes in m, with a colour bar.

    ``show(field)`` draws a field; ``placeholder(text)`` hides the image, its note and its colour
    bar (faded out, keeping its room: ``colour_bar_shown``) and writes ``text`` in the middle of
    the panel instead (nothing to show yet). With
    ``wells=True`` the panel also draws well markers (``set_wells``); ``wells=other_panel``: the
    markers of that panel (one source: ``set_wells`` on either moves both). ``name`` names the Bokeh
    figure (found by it in the browser: tests, benchmarks). ``figure`` is the Bokeh
    figure, ``source`` the image's data source.

    ``show(field, note=...)`` also writes a short ``note`` in the panel's top-left corner (e.g. the
    time shown): a column of the data source, so it changes with the image in one event, where a
    title change is an event of its own. With ``shared`` the image and its note are columns
    ``name`` and ``name + "_note"`` of a ``SharedSource`` that other panels also draw from (an
    update of several panels then leaves as one event); without, the panel has its own (columns
    ``image`` and ``image_note``).

    With ``frames=time_slider`` (a ``TimeSlider``) the panel shows a field per report time:
    ``show_frames(stack, notes)`` sends them all (a row each) and the browser swaps them as the
    slider moves, with no kernel round trip; ``show`` sends one (the kernel's frame at the
    slider's time). ``field`` and ``note_text`` are those at the slider's time.
    """

    def __init__(
        self,
        grid: Grid,
        title: str,
        scale: ColourScale,
        *,
        wells: bool | ImagePanel = False,
        name: str | None = None,
        size_px: tuple[int, int] = IMAGE_SIZE_PX,
        shared: SharedSource | None = None,
        frames: TimeSlider | None = None,
    ) -> None:
        if shared is not None and not name:
            raise ValueError("an image panel on a shared source needs a name (its column): pass name=...")
        self.grid, self.scale = grid, scale
        self.shared = shared if shared is not None else SharedSource()
        self.column = "image" if shared is None else name
        self.note_column = f"{self.column}_note"
        self.shared.add(self.column, [np.zeros(grid.shape, dtype=np.float32)])
        self.shared.add(self.note_column, [None])  # None: no note (an empty text would still draw its box)
        self.source = self.shared.source
        self.time = frames
        self._loaded: np.ndarray | None = None  # the stack whose frames the source holds
        if frames is not None:  # image and note through one row of the source: the browser picks it
            self.frame_filter = frames.link(self.source)

        def view() -> dict:  # a renderer's view of the source (one each, one filter for both)
            return {"view": CDSView(filter=self.frame_filter)} if frames is not None else {}

        width_m, depth_m = grid.nx * grid.dx_m, grid.nz * grid.dz_m
        self.figure = figure(
            title=title,
            name=name,
            width=size_px[0],
            height=size_px[1],
            x_range=Range1d(0.0, width_m, bounds=(0.0, width_m)),
            y_range=Range1d(depth_m, 0.0, bounds=(0.0, depth_m)),  # start > end: depth grows downward
            x_axis_label="x (m)",
            y_axis_label="depth (m)",
            tools=TOOLS,
            toolbar_location=None,
            sizing_mode="scale_width",
            min_border_right=IMAGE_RIGHT_PX,
        )
        self.figure.grid.visible = False
        mapper_type = LogColorMapper if scale.log else LinearColorMapper
        low = 1.0 if scale.log else 0.0
        self.mapper = mapper_type(palette=scale.colours(), low=low, high=low + 1.0)
        self.image = self.figure.image(
            image=self.column,
            x=0.0,
            y=0.0,
            dw=width_m,
            dh=depth_m,
            source=self.source,
            color_mapper=self.mapper,
            **view(),
        )
        ticker = LogTicker(mantissas=[1, 2, 5]) if scale.log else BasicTicker()
        self.colour_bar = ColorBar(
            color_mapper=self.mapper,
            ticker=ticker,
            formatter=NumeralTickFormatter(format="0,0.[0]" if scale.log else "0.[00]"),
            title=scale.label,
            title_standoff=4,
            width=10,
            padding=4,
        )
        self.figure.add_layout(self.colour_bar, "right")
        self.figure.add_tools(
            HoverTool(
                renderers=[self.image],
                tooltips=[
                    ("x", "$x{0} m"),
                    ("depth", "$y{0} m"),
                    (scale.label, f"@{{{self.column}}}{{0.[000]}}"),
                ],
            )
        )
        self.message = Label(
            x=width_m / 2,
            y=depth_m / 2,
            text="",
            text_align="center",
            text_baseline="middle",
            text_font_size="13px",
            text_color="#555555",
            visible=False,
        )
        self.placeholder_text = ""  # the text of the placeholder shown (unwrapped)
        self.figure.add_layout(self.message)
        self.note = self.figure.text(
            x=0.02 * width_m, y=0.02 * depth_m, text=self.note_column, source=self.source,
            text_align="left", text_baseline="top", text_font_size="11px", text_color="#222222",
            background_fill_color="white", background_fill_alpha=0.75, padding=2,
            **view(),
        )  # fmt: skip
        self.wells_source: ColumnDataSource | None = None
        if isinstance(wells, ImagePanel):
            if wells.wells_source is None:
                raise ValueError("wells=panel: that panel draws no wells (build it with wells=True)")
            self.wells_source = wells.wells_source
        elif wells:
            self.wells_source = ColumnDataSource({"x": [], "depth": [], "well": [], "colour": []})
        if self.wells_source is not None:
            markers = self.figure.scatter(
                "x", "depth", source=self.wells_source, marker="triangle", size=11,
                fill_color="colour", line_color="white",
            )  # fmt: skip
            self.figure.add_tools(HoverTool(renderers=[markers], tooltips=[("", "@well at @depth{0} m")]))
        self.placeholder("nothing to show yet")

    @property
    def showing_placeholder(self) -> bool:
        """True while the panel shows its placeholder text instead of a field."""
        return bool(self.message.visible)

    def set_title(self, title: str) -> None:
        self.figure.title.text = title

    @property
    def _row(self) -> int:
        """The source's row drawn: the slider's time where it holds a row per report time."""
        rows = len(self.shared.get(self.column))
        return self.time.value if self.time is not None and rows > 1 else 0

    @property
    def field(self) -> np.ndarray:
        """The field drawn (float32, as sent to the browser)."""
        return np.asarray(self.shared.get(self.column)[self._row])

    @property
    def note_text(self) -> str:
        """The note in the panel's corner ("" when none or a placeholder is shown)."""
        return "" if self.showing_placeholder else self.shared.get(self.note_column)[self._row] or ""

    @property
    def frames_loaded(self) -> bool:
        """Whether the browser holds a frame per report time (``show_frames``)."""
        return self._loaded is not None

    def show(self, field: np.ndarray, title: str | None = None, note: str | None = None) -> None:
        """Draw ``field`` (``(z, x)``, the quantity of the panel's colour scale); ``note``: the
        text in its corner (None: keep it)."""
        f = _check_field(field, self.grid)
        self._set_colour_range(*self.scale.range_of(f))
        if note is None:
            note = self.note_text
        if self.time is not None:
            self._set_frame(0)
        self._loaded = None
        with self.shared.batch():
            self.shared.set(self.column, [f.astype(np.float32)])  # half the bytes of float64 to send
            self.shared.set(self.note_column, [note or None])
        self._reveal(title)

    def show_frames(self, frames: np.ndarray, notes: Sequence[str], title: str | None = None) -> None:
        """Send a field per report time (``(time, z, x)``) with its note; the browser shows the
        one at the time slider's time as it moves. Nothing is sent when these frames (the same
        array) are there already."""
        if self.time is None:
            raise ValueError("this panel was built without a time slider: pass frames=TimeSlider(...)")
        n = self.time.times_days.size
        stack = np.asarray(frames)
        if stack.shape != (n, *self.grid.shape) or len(notes) != n:
            raise ValueError(
                f"frames of shape {stack.shape} with {len(notes)} notes, but the slider has {n} report "
                f"times on a grid of {self.grid.shape}: pass ({n}, nz, nx) frames and {n} notes"
            )
        if self._loaded is not frames:
            self._set_colour_range(*self.scale.range_of(stack))
            self._set_frame(self.time.value)
            with self.shared.batch():
                self.shared.set(self.column, [f.astype(np.float32) for f in stack])
                self.shared.set(self.note_column, [note or None for note in notes])
            self._loaded = frames
        self._reveal(title)

    def _set_frame(self, row: int) -> None:
        """Draw ``row`` of the source: set here until the panel is displayed, by the browser after
        (its callback on new data picks the row at the slider's time: see ``TimeSlider``)."""
        if self.figure.document is None:
            self.frame_filter.indices = [row]

    def show_frame(self, frames: np.ndarray, title: str | None = None, note: str | None = None) -> None:
        """Draw ``frames`` (``(time, z, x)``) at the time slider's time: nothing to send when the
        browser holds these frames (``show_frames``), else the one frame (``show``)."""
        if self._loaded is frames:
            self._reveal(title)
        else:
            self.show(frames[self.time.value], title, note)

    def _reveal(self, title: str | None) -> None:
        self.image.visible = self.note.visible = True  # Bokeh sends changes only
        self._show_colour_bar(True)
        self.message.visible = False
        if title is not None:
            self.set_title(title)

    def _set_colour_range(self, low: float, high: float) -> None:
        """The mapper's range for a field spanning (low, high); with a ``sticky`` scale the range
        holds while the field stays inside it and fills at least 60 % of it (in log10 on a log
        scale), and a new one has 10 % to spare at either end."""
        mapper = self.mapper
        if self.scale.sticky:
            log = self.scale.log
            t = np.log10 if log else (lambda v: v)
            lo, hi, old_lo, old_hi = t(low), t(high), t(mapper.low), t(mapper.high)
            if old_lo <= lo and hi <= old_hi and (hi - lo) >= 0.6 * (old_hi - old_lo):
                return
            pad = 0.1 * (hi - lo)
            if self.scale.symmetric:
                low, high = -high * 1.1, high * 1.1
            elif log:
                low, high = 10 ** (lo - pad), 10 ** (hi + pad)
            else:
                low, high = lo - pad, hi + pad
        mapper.update(low=low, high=high)

    @property
    def colour_bar_shown(self) -> bool:
        """Whether the colour bar is drawn (not while a placeholder is shown)."""
        return self.colour_bar.scale_alpha > 0

    def _show_colour_bar(self, shown: bool) -> None:
        """Draw or fade out the colour bar. Fading keeps its room: hiding it would change the
        figure's size, and BokehJS would lay out the whole document again (~0.1 s in JupyterLab
        on a small machine, measured)."""
        self.colour_bar.update(**(_COLOUR_BAR_SHOWN if shown else _COLOUR_BAR_FADED))

    def placeholder(self, text: str, title: str | None = None) -> None:
        """Show ``text`` instead of a field: no image, no colour bar, no note (nothing that reads
        as data)."""
        self.placeholder_text = text
        # in lines that fit the frame (a label is clipped at the frame's edges)
        self.message.text = "\n".join(textwrap.wrap(text, PLACEHOLDER_CHARS)) or text
        self.message.visible = True
        self.image.visible = self.note.visible = False  # the data stay
        self._show_colour_bar(False)
        if title is not None:
            self.set_title(title)

    def set_wells(self, wells: Mapping[str, tuple[int, int]]) -> None:
        """Mark wells by name at their cells ``(z, x)``; colours from ``WELL_COLOURS``."""
        if self.wells_source is None:
            raise ValueError("this panel was built without wells: pass wells=True to ImagePanel")
        names = list(wells)
        cells = [self.grid.check_cell(tuple(wells[name]), name) for name in names]
        self.wells_source.data = {
            "x": [float(self.grid.x_m[x]) for _, x in cells],
            "depth": [float(self.grid.z_m[z]) for z, _ in cells],
            "well": names,
            "colour": [WELL_COLOURS.get(name, "#000000") for name in names],
        }


@dataclass(frozen=True)
class LineStyle:
    """Colour and dash of a curve panel's line."""

    colour: str
    dash: str = "solid"
    width: float = 2.0


SOLID = LineStyle("#1f77b4")
DASHED = LineStyle("#d62728", "dashed")


class CurvePanel:
    """Named lines against a common x quantity, a legend of only the lines drawn, and an
    optional vertical marker (e.g. the current time).

    ``lines`` maps names to styles (the legend label is the name); ``y_format`` is a Bokeh
    ``NumeralTickFormatter`` format of the y ticks (e.g. ``"0,0"``). A line is drawn once
    ``set_line`` gave it data and hidden again by ``clear_line``: hidden lines leave the legend.
    ``bands`` maps names to colours of shaded bands (``set_band``: a lower and an upper curve,
    e.g. an error band around a line), listed in the legend like lines while drawn.

    All lines and bands of a panel share its x values and one data source (``source``):
    ``update`` changes several of them with one Bokeh event (one message to the browser, one
    redraw), where a ``set_line`` per line sends one each. With ``fit_ranges`` the axes' ranges
    are computed here from the lines and bands drawn (``Range1d``), not by the browser (which
    sends them back as changes of its own); glyphs added to ``figure`` by hand then do not count.

    With ``shared`` (a ``SharedSource``; needs ``name``) the panel's columns (``name + "_y0"``, ...)
    live in a source that other curve panels over the same x values also use: the changes of
    several panels in one ``shared.batch()`` leave as one event. ``marker_on=time_slider`` (a
    ``TimeSlider``) draws the marker at the slider's time, moved by the browser as the slider
    moves (``set_marker`` then does not apply).
    """

    def __init__(
        self,
        title: str,
        x_label: str,
        y_label: str,
        lines: Mapping[str, LineStyle],
        *,
        marker: bool = True,
        y_format: str | None = None,
        name: str | None = None,
        size_px: tuple[int, int] = CURVE_SIZE_PX,
        bands: Mapping[str, str] | None = None,
        fit_ranges: bool = False,
        shared: SharedSource | None = None,
        marker_on: TimeSlider | None = None,
    ) -> None:
        if not lines:
            raise ValueError("a curve panel needs at least one line: pass lines={'name': LineStyle(...)}")
        if shared is not None and not name:
            raise ValueError(
                "a curve panel on a shared source needs a name (its columns' prefix): pass name=..."
            )
        self.fit_ranges = fit_ranges
        self.shared = shared if shared is not None else SharedSource()
        prefix = f"{name}_" if shared is not None else ""
        ranges = {"x_range": Range1d(0.0, 1.0), "y_range": Range1d(0.0, 1.0)} if fit_ranges else {}
        self.figure = figure(
            title=title,
            name=name,
            width=size_px[0],
            height=size_px[1],
            x_axis_label=x_label,
            y_axis_label=y_label,
            tools=TOOLS,
            toolbar_location=None,
            sizing_mode="scale_width",
            min_border_left=CURVE_LEFT_PX,
            **ranges,
        )
        # columns: "x", then per line "y<i>", per band "lower<i>" and "upper<i>"
        self.columns: dict[str, tuple[str, ...]] = {}
        self.renderers = {}
        self.items: dict[str, LegendItem] = {}
        self.bands = tuple(bands or ())
        band_items: dict[str, LegendItem] = {}  # listed after the lines
        if "x" not in self.shared.source.data:
            self.shared.add("x", np.zeros(0))
        self.source = self.shared.source
        y_tip = "@{%s}{" + (y_format or "0.[000]") + "}"
        for i, (band, colour) in enumerate((bands or {}).items()):  # drawn under the lines
            if band in lines:
                raise ValueError(f"{band!r} names both a line and a band: give them different names")
            self.columns[band] = (f"{prefix}lower{i}", f"{prefix}upper{i}")
            renderer = self.figure.varea(
                "x", *self.columns[band], source=self.source, fill_color=colour, fill_alpha=0.25,
                visible=False,
            )  # fmt: skip
            self.renderers[band] = renderer
            band_items[band] = LegendItem(label=band, renderers=[renderer], visible=False)
        for i, (line, style) in enumerate(lines.items()):
            self.columns[line] = (f"{prefix}y{i}",)
            renderer = self.figure.line(
                "x", self.columns[line][0], source=self.source, line_color=style.colour, line_dash=style.dash,
                line_width=style.width, visible=False,
            )  # fmt: skip
            self.renderers[line] = renderer
            self.items[line] = LegendItem(label=line, renderers=[renderer], visible=False)
            tips = [(x_label, "@x{0.[00]}"), (f"{y_label}, {line}", y_tip % self.columns[line][0])]
            self.figure.add_tools(HoverTool(renderers=[renderer], tooltips=tips))
        self.items.update(band_items)
        rows = len(self.shared.get("x"))
        for column in (c for cs in self.columns.values() for c in cs):
            self.shared.add(column, np.full(rows, np.nan))
        self.legend = Legend(items=list(self.items.values()), location="top_left", visible=False)
        self.figure.add_layout(self.legend)
        if y_format is not None:  # a Numeral format, e.g. "0,0" for 120,000
            self.figure.yaxis[0].formatter = NumeralTickFormatter(format=y_format)
        self.marker_on = marker_on if marker else None
        self._marker: SharedSource | None = None
        if marker:
            # a vertical line (NaN: none), on the overlay layer: moving it repaints only that
            # layer, not the lines
            style = {"line_color": "grey", "line_dash": "dashed", "line_width": 1, "level": "overlay"}
            if marker_on is not None:
                self.figure.vspan(x="t", source=marker_on.source, view=marker_on.marker_view(), **style)
            else:
                self._marker = SharedSource()
                self._marker.add("marker", [np.nan])
                self.figure.vspan(x="marker", source=self._marker.source, **style)

    def update(
        self,
        x: np.ndarray,
        lines: Mapping[str, np.ndarray | None] | None = None,
        bands: Mapping[str, tuple[np.ndarray, np.ndarray] | None] | None = None,
    ) -> None:
        """Draw (values) or hide (None) several lines and bands over ``x`` at once (one Bokeh
        event). The others stay as they are over the same ``x``; new ``x`` values hide them (they
        were drawn over the old ones)."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 1:
            raise ValueError(f"x must be 1-D, got shape {x.shape}")
        lines, bands = dict(lines or {}), dict(bands or {})
        for name in lines:
            if name not in self.columns or name in self.bands:
                raise ValueError(f"unknown line {name!r}; this panel draws {self._names(False)}")
        for name in bands:
            if name not in self.bands:
                raise ValueError(f"unknown band {name!r}; this panel shades {list(self.bands)}")
        old_x = self.shared.get("x")
        same_x = old_x.shape == x.shape and np.array_equal(old_x, x)
        data = {"x": old_x if same_x else x}
        data.update({c: self.shared.get(c) for cs in self.columns.values() for c in cs})
        # Each renderer's visibility is set once, to its final value, and only when it changes: a
        # False-then-True flip of one property within an update (sent from the app's worker thread)
        # could reach the browser as its last state False.
        visibility = {name: item.visible for name, item in self.items.items()}
        if not same_x:  # new x values: what is not given here is hidden (it was drawn over the old x)
            data.update({c: np.full(x.shape, np.nan) for cs in self.columns.values() for c in cs})
            visibility.update({name: False for name in self.drawn()})
        values = {**{n: None if y is None else (y,) for n, y in lines.items()}, **bands}
        for name, columns in values.items():
            visibility[name] = columns is not None
            for column, y in zip(
                self.columns[name], columns or (None,) * len(self.columns[name]), strict=True
            ):
                y = np.full(x.shape, np.nan) if y is None else np.asarray(y, dtype=np.float64)
                if y.shape != x.shape:
                    raise ValueError(
                        f"{name!r}: x and its values must be 1-D of one length, got {x.shape} and {y.shape}"
                    )
                data[column] = y
        with self.shared.batch():  # one event (columns that did not change are not sent)
            for column, values in data.items():
                self.shared.set(column, values)
        for name, visible in visibility.items():
            for model in (self.renderers[name], self.items[name]):
                if model.visible != visible:
                    model.visible = visible
        self.legend.visible = any(item.visible for item in self.items.values())
        if self.fit_ranges:
            self._fit_ranges(data)

    def _fit_ranges(self, data: Mapping[str, np.ndarray]) -> None:
        """Axis ranges that hold what is drawn: x its span; y from 0 (or the lowest value, when
        negative) to the highest plus 5 %, changed only when the data leave the range or fill
        less than 60 % of it (a small change of the curves sends no range change)."""
        x = data["x"]
        if x.size:
            low, high = float(x.min()), float(x.max())
            _set_range(self.figure.x_range, low, high if high > low else low + 1.0)
        drawn = [data[c] for n in self.drawn() for c in self.columns[n]]
        finite = np.concatenate([y[np.isfinite(y)] for y in drawn]) if drawn else np.zeros(0)
        if not finite.size:
            return
        low, high = min(float(finite.min()), 0.0), max(float(finite.max()), 0.0)
        pad = 0.05 * (high - low) or 1.0
        y = self.figure.y_range
        inside = y.start <= low and high <= y.end
        if not inside or (high - low) < 0.6 * (y.end - y.start):
            _set_range(y, low - pad if low < 0 else 0.0, high + pad)

    def set_line(self, name: str, x: np.ndarray, y: np.ndarray) -> None:
        """Draw line ``name`` through ``(x, y)`` and list it in the legend."""
        self.update(x, lines={name: y})

    def clear_line(self, name: str) -> None:
        """Hide line ``name`` and take it out of the legend."""
        self.update(self.shared.get("x"), lines={name: None})

    def set_band(self, name: str, x: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> None:
        """Shade band ``name`` between ``lower`` and ``upper`` over ``x`` and list it in the legend."""
        self.update(x, bands={name: (lower, upper)})

    def clear_band(self, name: str) -> None:
        """Hide band ``name`` and take it out of the legend."""
        self.update(self.shared.get("x"), bands={name: None})

    def line_data(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)`` of line ``name`` as sent to the browser (NaN where hidden)."""
        if name not in self.columns or name in self.bands:
            raise ValueError(f"unknown line {name!r}; this panel draws {self._names(False)}")
        return self.shared.get("x"), self.shared.get(self.columns[name][0])

    def band_data(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(x, lower, upper)`` of band ``name`` as sent to the browser."""
        if name not in self.bands:
            raise ValueError(f"unknown band {name!r}; this panel shades {list(self.bands)}")
        lower, upper = self.columns[name]
        return self.shared.get("x"), self.shared.get(lower), self.shared.get(upper)

    def _names(self, bands: bool) -> list[str]:
        return [n for n in self.columns if (n in self.bands) == bands]

    def drawn(self) -> list[str]:
        """Names of the lines and bands drawn (and listed in the legend), in order: lines first."""
        return [name for name, item in self.items.items() if item.visible]

    def set_marker(self, x: float | None) -> None:
        """Put the vertical marker at ``x`` (None: hide it)."""
        if self._marker is None:
            raise ValueError(
                "this panel draws no marker of its own: build it with marker=True (with marker_on= "
                "a time slider, the slider moves it)"
            )
        self._marker.set("marker", [np.nan if x is None else float(x)])

    @property
    def marker_at(self) -> float | None:
        """Where the marker is drawn (None: hidden)."""
        if self.marker_on is not None:
            return self.marker_on.t_days
        if self._marker is None:
            return None
        x = float(self._marker.get("marker")[0])
        return x if np.isfinite(x) else None


def _set_range(axis: Range1d, start: float, end: float) -> None:
    """Set a range's ends, sending only those that change."""
    if axis.start != start:
        axis.start = start
    if axis.end != end:
        axis.end = end


def panel_grid(rows: Sequence[Sequence[ImagePanel | CurvePanel]]):
    """A Bokeh layout of panels in rows that shares the available width (each panel scales
    with it, keeping its aspect)."""
    from bokeh.layouts import column, row

    return column(
        [row([p.figure for p in r], sizing_mode="stretch_width") for r in rows], sizing_mode="stretch_width"
    )


def bokeh_view(layout):
    """The Bokeh ``layout`` as an ipywidget (``jupyter_bokeh.BokehModel``) for an ipywidgets app."""
    try:
        from jupyter_bokeh import BokehModel
    except ImportError:  # pragma: no cover - the notebook extra installs it
        raise ImportError(
            "the notebook apps need jupyter_bokeh (Bokeh plots inside ipywidgets): "
            "install the notebook extra, `pip install -e '.[notebook]'`"
        ) from None
    return BokehModel(layout)


__all__ = [
    "DASHED",
    "SOLID",
    "WELL_COLOURS",
    "Banner",
    "ColourScale",
    "CurvePanel",
    "ImagePanel",
    "LineStyle",
    "SharedSource",
    "TimeSlider",
    "bokeh_view",
    "difference_scale",
    "panel_grid",
    "permeability_scale",
    "saturation_scale",
]
