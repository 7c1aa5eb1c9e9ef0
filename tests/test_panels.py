"""The widget foundations (ccs_fno/widgets/panels.py) on real Bokeh models: what an update puts
into the data sources and properties that BokehJS draws. The browser side is tested in
tests/test_browser.py."""

from __future__ import annotations

import numpy as np
import pytest
from bokeh.document import Document
from bokeh.models import LogColorMapper, LogTicker

from ccs_fno.widgets.panels import (
    DASHED,
    SOLID,
    Banner,
    CurvePanel,
    ImagePanel,
    SharedSource,
    bokeh_view,
    difference_scale,
    panel_grid,
    permeability_scale,
    saturation_scale,
)
from data_gen.grid import Grid

GRID = Grid(nz=4, nx=6, dx_m=10.0, dz_m=5.0)


def test_image_panel_draws_fields_depth_down_and_says_when_there_is_none():
    panel = ImagePanel(GRID, "simulator", saturation_scale(0.8), wells=True)
    assert panel.showing_placeholder and not panel.image.visible and not panel.colour_bar_shown
    panel.placeholder("no simulation yet: press Simulate", title="simulator")
    assert panel.placeholder_text == "no simulation yet: press Simulate" and panel.message.visible

    field = np.arange(24.0).reshape(4, 6) / 30
    panel.show(field, title="simulator: CO2 saturation at 20 d")
    sent = panel.source.data["image"][0]
    assert sent.dtype == np.float32  # half the bytes to the browser
    np.testing.assert_array_equal(sent, field.astype(np.float32))
    assert panel.image.visible and panel.colour_bar_shown and not panel.message.visible
    assert (panel.mapper.low, panel.mapper.high) == (0.0, 0.8)  # fixed saturation scale
    assert panel.colour_bar.title == "CO2 saturation (-)"
    f = panel.figure
    assert (f.x_range.start, f.x_range.end) == (0.0, 60.0)  # m
    assert (f.y_range.start, f.y_range.end) == (20.0, 0.0)  # depth grows downward
    assert f.xaxis[0].axis_label == "x (m)" and f.yaxis[0].axis_label == "depth (m)"
    # the image's row 0 (z = 0) spans depth 0 .. dz: drawn from y = 0 with height 20 m
    assert (panel.image.glyph.y, panel.image.glyph.dh, panel.image.glyph.dw) == (0.0, 20.0, 60.0)

    panel.set_wells({"injector": (1, 0), "producer": (3, 5)})
    data = panel.wells_source.data
    assert (
        data["x"] == [5.0, 55.0] and data["depth"] == [7.5, 17.5] and data["well"] == ["injector", "producer"]
    )
    twin = ImagePanel(GRID, "surrogate", saturation_scale(0.8), wells=panel)  # the same wells
    assert twin.wells_source is panel.wells_source
    with pytest.raises(ValueError, match="that panel draws no wells"):
        ImagePanel(GRID, "x", saturation_scale(), wells=ImagePanel(GRID, "y", saturation_scale()))
    with pytest.raises(ValueError, match=r"grid is \(nz, nx\) = \(4, 6\)"):
        panel.show(np.zeros((6, 4)))
    with pytest.raises(ValueError, match="producer"):
        panel.set_wells({"producer": (4, 0)})


def test_permeability_panel_has_a_log_colour_bar_with_md_ticks_and_differences_are_symmetric():
    k = np.full(GRID.shape, 20.0)
    k[1:3] = 120.0
    rock = ImagePanel(GRID, "permeability", permeability_scale())
    rock.show(k)
    assert isinstance(rock.mapper, LogColorMapper) and isinstance(rock.colour_bar.ticker, LogTicker)
    assert (rock.mapper.low, rock.mapper.high) == (20.0, 120.0)
    assert rock.colour_bar.title == "permeability (mD)" and rock.colour_bar.formatter.format == "0,0.[0]"

    difference = ImagePanel(GRID, "difference", difference_scale())
    d = np.zeros(GRID.shape)
    d[0, 0], d[1, 1] = 0.3, -0.1
    difference.show(d)
    assert (difference.mapper.low, difference.mapper.high) == (-0.3, 0.3)


def test_curve_panel_legend_lists_only_the_lines_drawn():
    panel = CurvePanel(
        "plume area", "time (d)", "area (m² of section)", {"surrogate": SOLID, "simulator": DASHED}
    )
    assert panel.drawn() == [] and not panel.legend.visible
    t = np.array([0.0, 20.0, 40.0])
    panel.set_line("surrogate", t, [0.0, 1.0, 2.0])
    assert panel.drawn() == ["surrogate"] and panel.legend.visible
    assert not panel.renderers["simulator"].visible
    panel.set_line("simulator", t, [0.0, 1.5, 2.5])
    assert panel.drawn() == ["surrogate", "simulator"]
    panel.clear_line("simulator")
    assert panel.drawn() == ["surrogate"] and np.isnan(panel.line_data("simulator")[1]).all()
    assert panel.marker_at is None
    panel.set_marker(20.0)
    assert panel.marker_at == 20.0
    panel.set_marker(None)
    assert panel.marker_at is None
    with pytest.raises(
        ValueError, match=r"unknown line 'observed'; this panel draws \['surrogate', 'simulator'\]"
    ):
        panel.set_line("observed", t, t)
    with pytest.raises(ValueError, match="1-D of one length"):
        panel.set_line("surrogate", t, t[:2])
    panel.set_line("simulator", t[:2], [0.0, 1.0])  # new x values: the line over the old ones goes
    assert panel.drawn() == ["simulator"] and np.isnan(panel.line_data("surrogate")[1]).all()


def test_an_update_is_one_event_per_source_and_the_view_is_an_ipywidget():
    rock = ImagePanel(GRID, "permeability", permeability_scale())
    curves = CurvePanel("area", "time (d)", "area", {"surrogate": SOLID}, fit_ranges=True)
    layout = panel_grid([[rock], [curves]])
    view = bokeh_view(layout)
    assert view.render_bundle["docs_json"]  # the whole document travels as the widget's state
    events = []
    document: Document = rock.figure.document
    document.on_change(lambda event: events.append(event))
    rock.show(np.full(GRID.shape, 50.0))
    changed = [(type(e.model).__name__, getattr(e, "attr", None)) for e in events]
    assert ("ColumnDataSource", "data") in changed
    assert sum(1 for m, a in changed if m == "ColumnDataSource") == 1  # the field: one event
    events.clear()
    t = np.array([0.0, 20.0, 40.0])  # several lines and bands of a curve panel: one event too
    curves.update(t, lines={"surrogate": [0.0, 1.0, 4.0]})
    assert [type(e.model).__name__ for e in events].count("ColumnDataSource") == 1
    assert (curves.figure.y_range.start, curves.figure.y_range.end) == (0.0, 4.2)  # computed here
    assert (curves.figure.x_range.start, curves.figure.x_range.end) == (0.0, 40.0)
    events.clear()
    curves.update(t, lines={"surrogate": [0.0, 1.0, 3.5]})  # still fills the range: no range change
    assert [type(e.model).__name__ for e in events] == ["ColumnDataSource"]
    curves.update(t, lines={"surrogate": [0.0, -1.0, 5.0]})
    assert (curves.figure.y_range.start, curves.figure.y_range.end) == (-1.3, 5.3)


def _events(document: Document) -> list:
    events: list = []
    document.on_change(lambda event: events.append(event))
    return events


def test_panels_on_a_shared_source_send_one_event_per_update():
    """Images on one source: what an update changes leaves as one patch of the changed columns,
    unchanged columns are not sent."""
    shared = SharedSource()
    now = ImagePanel(GRID, "surrogate", saturation_scale(), name="now", shared=shared)
    band = ImagePanel(GRID, "band", saturation_scale(), name="band", shared=shared)
    document = Document()
    document.add_root(panel_grid([[now, band]]))
    assert sorted(shared.source.data) == ["band", "band_note", "now", "now_note"]
    events = _events(document)
    field = np.full(GRID.shape, 0.25)
    with shared.batch():
        now.show(field, note="at 20 d")
        band.show(2 * field, note="at 20 d")
    patches = [e for e in events if type(e).__name__ == "ColumnsPatchedEvent"]
    assert len(patches) == 1 and sorted(patches[0].patches) == ["band", "band_note", "now", "now_note"]
    assert now.note_text == "at 20 d" and now.field.dtype == np.float32
    np.testing.assert_array_equal(band.field, 2 * field)
    events.clear()
    with shared.batch():  # one panel shown again: only that panel is sent
        now.show(now.field, note="at 40 d")
        band.show(band.field, note="at 20 d")
    sent = [sorted(e.patches) for e in events if type(e).__name__ == "ColumnsPatchedEvent"]
    assert sent == [["band", "now", "now_note"]]  # new arrays are sent; the unchanged note is not
    now.placeholder("no simulation yet")
    assert now.note_text == "" and now.showing_placeholder and not now.note.visible
    with pytest.raises(ValueError, match="needs a name"):
        ImagePanel(GRID, "x", saturation_scale(), shared=shared)
    with pytest.raises(ValueError, match="'now' is already in this shared source"):
        ImagePanel(GRID, "x", saturation_scale(), name="now", shared=shared)


def test_curve_panels_on_a_shared_source_share_x_and_send_one_event():
    shared = SharedSource()
    area = CurvePanel("area", "t", "m²", {"surrogate": SOLID}, name="area", shared=shared, marker=False)
    mass = CurvePanel("mass", "t", "t", {"injected": DASHED}, name="mass", shared=shared, marker=False)
    document = Document()
    document.add_root(panel_grid([[area, mass]]))
    events = _events(document)
    t = np.array([0.0, 20.0, 40.0])
    y = np.array([0.0, 1.0, 2.0])
    with shared.batch():  # the first update sets x: one new ``data``
        area.update(t, lines={"surrogate": y})
        mass.update(t, lines={"injected": 3 * y})
    assert [type(e).__name__ for e in events].count("ColumnDataChangedEvent") == 1
    np.testing.assert_array_equal(mass.line_data("injected")[1], 3 * y)
    events.clear()
    with shared.batch():  # same x: one patch of the columns that changed
        area.update(t, lines={"surrogate": y + 1})
        mass.update(t, lines={"injected": 3 * y})  # unchanged: not sent
    patches = [e for e in events if type(e).__name__ == "ColumnsPatchedEvent"]
    assert len(patches) == 1 and list(patches[0].patches) == ["area_y0"]
    y[:] = 99.0  # the source holds its own copy: the caller's array stays the caller's
    np.testing.assert_array_equal(area.line_data("surrogate")[1], [1.0, 2.0, 3.0])


def test_a_sticky_colour_scale_keeps_its_range_while_fields_fill_it():
    rock = ImagePanel(GRID, "permeability", permeability_scale(sticky=True))
    k = np.full(GRID.shape, 20.0)
    k[1:3] = 200.0
    rock.show(k)
    low, high = rock.mapper.low, rock.mapper.high
    assert low < 20.0 and high > 200.0  # 10 % of the log span to spare at either end
    assert np.log10(20.0) - np.log10(low) == pytest.approx(0.1, rel=1e-9)
    k[1:3] = 190.0
    rock.show(k)  # inside, and fills > 60 %: the colour bar stays
    assert (rock.mapper.low, rock.mapper.high) == (low, high)
    k[1:3] = 900.0
    rock.show(k)  # leaves it: a new range
    assert rock.mapper.high > 900.0
    k[1:3] = 25.0
    rock.show(k)  # fills too little of it: a new range
    assert rock.mapper.high < 30.0
    plain = ImagePanel(GRID, "permeability", permeability_scale())
    plain.show(k)
    assert (plain.mapper.low, plain.mapper.high) == (20.0, 25.0)
    difference = ImagePanel(GRID, "difference", difference_scale(sticky=True))
    d = np.zeros(GRID.shape)
    d[0, 0] = 0.3
    difference.show(d)
    assert (difference.mapper.low, difference.mapper.high) == pytest.approx((-0.33, 0.33))
    d[0, 0] = -0.25
    difference.show(d)
    assert (difference.mapper.low, difference.mapper.high) == pytest.approx((-0.33, 0.33))


def test_banner_escapes_text_and_hides():
    banner = Banner()
    banner.show("warning", ["injector <above> the channel", "rate 400 m³/day"], heading="Outside")
    assert banner.text == "Outside\ninjector <above> the channel\nrate 400 m³/day"
    assert "&lt;above&gt;" in banner.widget.value and "ccs-banner-warning" in banner.widget.value
    banner.hide()
    assert banner.widget.value == "" and banner.text == ""
    with pytest.raises(ValueError, match="unknown banner level 'alarm'"):
        banner.show("alarm", "x")


def test_a_time_slider_swaps_loaded_frames_in_the_browser_and_the_kernel_sends_one_otherwise():
    """Image panels linked to a ``TimeSlider``: ``show`` sends one frame (one row, drawn through a
    view at row 0), ``show_frames`` a row per report time with the view at the slider's time; the
    browser's callback (args checked here, run in tests/test_browser.py) moves the views; the
    panels report the frame at the slider's time either way."""
    from bokeh.models import CDSView, CustomJS

    from ccs_fno.widgets.time_slider import TimeSlider

    times = np.array([0.0, 20.0, 40.0])
    time = TimeSlider(times)
    assert time.value == 2 and time.t_days == 40.0  # starts at the last report time
    now = ImagePanel(GRID, "surrogate", saturation_scale(), name="now", frames=time)
    area = CurvePanel("area", "t", "m²", {"surrogate": SOLID}, marker_on=time)
    stack = np.stack([np.full(GRID.shape, v) for v in (0.1, 0.2, 0.3)])
    notes = [f"at {t:g} d" for t in times]
    now.show_frames(stack, notes)  # not displayed yet: the views' rows are set here
    assert now.frame_filter.indices == [2] and time.filter.indices == [2]
    time.value = 1
    assert time.filter.indices == [1] and now.note_text == "at 20 d"
    now.show(stack[1], note="at 20 d")
    assert now.frame_filter.indices == [0] and not now.frames_loaded
    time.value = 2
    document = Document()
    document.add_root(panel_grid([[now], [area]]))
    assert isinstance(now.image.view, CDSView) and now.image.view.filter is now.frame_filter
    assert now.note.view.filter is now.frame_filter  # the note swaps with its image
    (callback,) = [c for c in time.slider.js_property_callbacks["change:value"] if isinstance(c, CustomJS)]
    assert now.source in callback.args["sources"] and now.frame_filter in callback.args["filters"]
    assert callback in now.source.js_property_callbacks["change:data"]  # frames arriving late
    events = _events(document)

    now.show_frame(stack, note="at 40 d")  # not loaded: the kernel sends the frame at the slider's time
    assert len(now.source.data["image"]) == 1 and not now.frames_loaded
    np.testing.assert_array_equal(now.field, np.float32(0.3))
    seen = []
    time.observe(seen.append)
    time.value = 0
    assert seen == [{"old": 2, "new": 0}] and area.marker_at == 0.0
    now.show_frame(stack, note="at 0 d")
    np.testing.assert_array_equal(now.field, np.float32(0.1))

    time.value = 1
    events.clear()
    now.show_frames(stack, notes)  # every frame: one new ``data``; the browser moves the view
    assert len(now.source.data["image"]) == 3 and now.frames_loaded
    kinds = [(type(e).__name__, getattr(e, "attr", None)) for e in events]
    assert [k for k, _ in kinds].count("ColumnDataChangedEvent") == 1
    assert ("ModelChangedEvent", "indices") not in kinds  # displayed: the browser owns the views
    np.testing.assert_array_equal(now.field, np.float32(0.2))
    time.value = 2  # the browser moves the view (JS); here the panel reports the slider's frame
    np.testing.assert_array_equal(now.field, np.float32(0.3))
    assert now.note_text == "at 40 d" and area.marker_at == 40.0
    events.clear()
    now.show_frame(stack)  # loaded: nothing to send, the browser moved the view
    now.show_frames(stack, notes)
    assert [type(e).__name__ for e in events if type(e).__name__.startswith("Column")] == []
    now.placeholder("scenario changed: press Simulate")  # hides; the frames stay for later
    assert now.note_text == "" and len(now.source.data["image"]) == 3

    events.clear()
    other = stack + 0.1
    now.show_frame(other, note="at 20 d")  # new data: one frame again, the view back at row 0
    assert len(now.source.data["image"]) == 1 and not now.frames_loaded
    np.testing.assert_allclose(now.field, 0.4, rtol=1e-6)

    with pytest.raises(ValueError, match=r"frames of shape \(2, 4, 6\) with 3 notes.*3 report times"):
        now.show_frames(stack[:2], notes)
    with pytest.raises(ValueError, match="built without a time slider"):
        ImagePanel(GRID, "rock", permeability_scale()).show_frames(stack, notes)
    with pytest.raises(ValueError, match=r"time index 3 is not one of the 3 report times: .* 0 \.\.\. 2"):
        time.value = 3
    with pytest.raises(ValueError, match="report times that increase"):
        TimeSlider(np.array([0.0, 20.0, 20.0]))
    with pytest.raises(ValueError, match="draws no marker of its own"):
        area.set_marker(10.0)
