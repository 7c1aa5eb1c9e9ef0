"""The demo's plume gallery renders from a real generated store: wells marked and in the legend,
the project's colour maps, permeability in mD, no title colliding with a colour bar."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.image import imread

from data_gen.pipeline import generate
from data_gen.plots import PERMEABILITY_CMAP, SATURATION_CMAP, WELL_COLOURS, plume_gallery
from data_gen.scenarios import default_space
from data_gen.store import create_store, open_dataset


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("plots") / "s.zarr"
    space = default_space("channel", resolution=16, report_times_days=(0.0, 100.0, 200.0, 300.0))
    generate(path, space, 4, 3, workers=1, samples_per_chunk=2, progress=False)
    return path


def test_plume_gallery_cli_writes_a_figure_of_the_plumes(store, tmp_path):
    png = tmp_path / "plumes.png"
    subprocess.run(
        [sys.executable, "-m", "data_gen.plots", str(store), str(png), "--samples", "2"], check=True
    )
    image = imread(png)
    assert image.shape[0] > 200 and image.shape[1] > 400
    assert image[..., :3].std() > 0.05  # not a blank canvas


def test_gallery_marks_the_wells_of_each_sample_and_names_them_in_a_legend(store):
    ds = open_dataset(store)
    fig = plume_gallery(ds, n_samples=3, n_times=2)
    rows = np.array([ax for ax in fig.axes if ax.images]).reshape(3, 3)
    for i, row in enumerate(rows):
        wells = {line.get_label(): line for line in row[0].lines}
        assert set(wells) == {"injector", "producer"}
        for name, line in wells.items():
            x, z = ds.x.values[int(ds[f"{name}_x"][i])], ds.z.values[int(ds[f"{name}_z"][i])]
            assert (line.get_xdata()[0], line.get_ydata()[0]) == (x, z)
            assert line.get_color() == WELL_COLOURS[name]
        assert not any(ax.lines for ax in row[1:])  # the plumes stay unobstructed
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["injector", "producer"]


def test_gallery_uses_the_project_colour_maps_and_labels_permeability_in_md(store):
    ds = open_dataset(store)
    fig = plume_gallery(ds, n_samples=2, n_times=3)
    FigureCanvasAgg(fig).draw()
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert [im.get_cmap().name for im in images] == ([PERMEABILITY_CMAP] + [SATURATION_CMAP] * 3) * 2
    k_bars = [cb for cb in fig.axes if cb.get_ylabel() == "permeability [mD]"]
    assert len(k_bars) == 2
    k = ds["permeability"].values[:2]
    for bar in k_bars:
        low, high = bar.get_ylim()
        shown = [t.get_text() for t in bar.get_yticklabels() if low <= t.get_position()[1] <= high]
        values = [float(text) for text in shown if text]  # plain numbers in mD, not powers of ten
        assert len(values) >= 2 and k.min() <= min(values) and max(values) <= k.max()
    assert {ax.get_ylabel() for ax in fig.axes if ax.images} == {"depth [m]", ""}
    assert {ax.get_xlabel() for ax in fig.axes if ax.images} == {"x [m]", ""}


def _overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_no_panel_title_collides_with_a_colour_bar_or_another_title(store):
    fig = plume_gallery(open_dataset(store), n_samples=2, n_times=3)
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    titles = [ax.title.get_window_extent(renderer) for ax in fig.axes if ax.images]
    bars = [ax.get_tightbbox(renderer) for ax in fig.axes if not ax.images]  # colour bars + labels
    assert len(titles) == 8 and len(bars) == 4
    for i, title in enumerate(titles):
        assert not any(_overlap(title, bar) for bar in bars), f"title {i} overlaps a colour bar"
        assert not any(_overlap(title, other) for other in titles[i + 1 :]), f"title {i} overlaps"
    width, height = fig.bbox.width, fig.bbox.height
    for box in titles + bars:  # nothing cut off at the edges
        assert box.x0 >= -1 and box.y0 >= -1 and box.x1 <= width + 1 and box.y1 <= height + 1


def test_plume_gallery_refuses_a_store_without_finished_samples(tmp_path):
    store = tmp_path / "empty.zarr"
    create_store(store, default_space("channel", resolution=16), master_seed=0, n_samples=2)
    with pytest.raises(ValueError, match="no finished samples"):
        plume_gallery(open_dataset(store))
    assert not np.any(open_dataset(store)["done"].values)
