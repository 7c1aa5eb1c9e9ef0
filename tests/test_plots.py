"""The demo's plume gallery renders from a real generated store."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from matplotlib.image import imread

from data_gen.pipeline import generate
from data_gen.plots import plume_gallery
from data_gen.scenarios import default_space
from data_gen.store import create_store, open_dataset


def test_plume_gallery_cli_writes_a_figure_of_the_plumes(tmp_path):
    store = tmp_path / "s.zarr"
    space = default_space("channel", resolution=16, report_times_days=(0.0, 100.0, 200.0, 300.0))
    generate(store, space, 4, 3, workers=1, samples_per_chunk=2, progress=False)
    png = tmp_path / "plumes.png"
    subprocess.run(
        [sys.executable, "-m", "data_gen.plots", str(store), str(png), "--samples", "2"], check=True
    )
    image = imread(png)
    assert image.shape[0] > 200 and image.shape[1] > 400
    assert image[..., :3].std() > 0.05  # not a blank canvas
    fig = plume_gallery(open_dataset(store), n_samples=2, n_times=3)
    assert len(fig.axes) >= 2 * 4


def test_plume_gallery_refuses_a_store_without_finished_samples(tmp_path):
    store = tmp_path / "empty.zarr"
    create_store(store, default_space("channel", resolution=16), master_seed=0, n_samples=2)
    with pytest.raises(ValueError, match="no finished samples"):
        plume_gallery(open_dataset(store))
    assert not np.any(open_dataset(store)["done"].values)
