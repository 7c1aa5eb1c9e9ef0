"""ccs_fno.widgets.static: static renderings carry the interactive figure's options, saved pages are
self-contained, and bad requests are refused before anything is written."""

from __future__ import annotations

import holoviews as hv
import numpy as np
import pytest
from matplotlib import colormaps
from matplotlib.image import imread

from ccs_fno.widgets import external_resources, figure_png, load_extension, save_figure
from ccs_fno.widgets.static import to_matplotlib
from data_gen.plots import log_ticks

load_extension()


@pytest.fixture(scope="module")
def layout() -> hv.Layout:
    image = hv.Image(np.arange(12.0).reshape(3, 4), bounds=(0, 0, 60, 45), kdims=["x", "depth"]).opts(
        cmap="cividis", clim=(0.0, 20.0), colorbar=True, invert_yaxis=True, title="field"
    )
    curves = hv.Overlay(
        [hv.Curve(([1, 2, 3], [1.0, 0.3, 0.08]), "epoch", "loss", label=name) for name in ("a", "b")]
    ).opts(logy=True, yticks=log_ticks(0.08, 1.0), width=420, height=300, title="losses")
    return hv.Layout([image, curves])


def test_static_rendering_carries_the_bokeh_options(layout):
    fig = to_matplotlib(layout)
    image_ax = next(ax for ax in fig.axes if ax.images)
    (image,) = image_ax.images
    ends = np.array([0.0, 0.5, 1.0])
    np.testing.assert_allclose(image.get_cmap()(ends), colormaps["cividis"](ends), atol=0.01)
    assert image.get_clim() == (0.0, 20.0)
    assert image_ax.get_ylim()[0] > image_ax.get_ylim()[1]  # depth increases downward
    curve_ax = next(ax for ax in fig.axes if ax.lines)
    assert curve_ax.get_yscale() == "log" and curve_ax.get_title() == "losses"
    labels = [t.get_text() for t in curve_ax.get_yticklabels() if t.get_text()]
    assert labels == ["0.1", "0.2", "0.5", "1"]
    assert [t.get_text() for t in curve_ax.get_legend().get_texts()] == ["a", "b"]
    box = curve_ax.get_position()
    width, height = fig.get_size_inches()
    assert box.width * width / (box.height * height) == pytest.approx(420 / 300, rel=0.02)


def test_saved_figure_is_a_self_contained_page_and_a_picture(layout, tmp_path):
    written = save_figure(layout, tmp_path / "figs" / "f.html")
    assert written == [tmp_path / "figs" / "f.html", tmp_path / "figs" / "f.png"]
    page = written[0].read_text()
    assert external_resources(page) == [] and "Bokeh.embed" in page
    assert imread(written[1])[..., :3].std() > 0.05
    assert figure_png(layout)[:8] == b"\x89PNG\r\n\x1a\n"


def test_external_resources_finds_what_a_page_would_fetch(layout, tmp_path):
    # Panel's own save (hv.save) puts CDN stylesheets in the document: the defect this replaces
    hv.save(layout, tmp_path / "panel.html", resources="inline")
    leaks = external_resources((tmp_path / "panel.html").read_text())
    assert any(url.startswith("https://cdn.holoviz.org/") and url.endswith(".css") for url in leaks)
    page = '<link rel="stylesheet" href="a.css"><script src="//cdn.x/y.js"></script><a href="https://x">x</a>'
    assert external_resources(page) == ["//cdn.x/y.js", "a.css"]
    assert external_resources("<style>@import 'https://f/x.css'; b {background: url(data:,)}</style>") == [
        "https://f/x.css"
    ]


def test_bad_requests_are_refused_before_anything_is_written(layout, tmp_path):
    with pytest.raises(ValueError, match=r"'f\.svg'.*must end in \.html or \.png"):
        save_figure(layout, tmp_path / "f.svg")
    with pytest.raises(TypeError, match="DynamicMap.*static="):
        save_figure(hv.DynamicMap(lambda: hv.Curve([1, 2])), tmp_path / "d.html")
    with pytest.raises(TypeError, match="no static rendering for a dict"):
        figure_png({"not": "a figure"})
    assert list(tmp_path.iterdir()) == []


def test_log_ticks_are_readable_on_any_range():
    assert log_ticks(20, 120) == [(20.0, "20"), (50.0, "50"), (100.0, "100")]
    assert [v for v, _ in log_ticks(0.05, 1.0)] == [0.05, 0.1, 0.2, 0.5, 1.0]
    assert [v for v, _ in log_ticks(0.061, 0.089)] == [0.07, 0.08]  # within one step of 1-2-5
    assert [v for v, _ in log_ticks(1.59, 1.79)] == [1.6, 1.7]
    assert len(log_ticks(1e-6, 1e3)) == 10  # decades only when 1-2-5 would crowd the axis
    with pytest.raises(ValueError, match="0 < low <= high, got low=0"):
        log_ticks(0, 1)
