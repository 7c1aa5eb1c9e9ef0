"""Every notebook runs headless with papermill, on tiny parameters, in the order a user runs them:
01 generates a store on a dask cluster, 02 trains full- and half-precision surrogates on it, 03
builds the explorer on the full-precision run and checks it against the simulator."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
from matplotlib.image import imread
from notebook_runs import N_SAMPLES, notebook_outputs, run_notebook

from ccs_fno.widgets import external_resources
from data_gen.store import open_dataset

# The fixtures `work`, `generated` (notebook 01) and `trained` (notebook 02) are in notebook_runs.py,
# executed once per session (conftest.py).
_run, _outputs = run_notebook, notebook_outputs


def _static_figures(notebook) -> list[np.ndarray]:
    """The static PNG renderings (``show_figure``) among the notebook's outputs, decoded."""
    images = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if "ccs_fno" in output.get("metadata", {}) and "image/png" in output.get("data", {}):
                images.append(imread(io.BytesIO(base64.b64decode(output["data"]["image/png"]))))
    return images


def _assert_saved_offline(figures: Path, names: list[str]) -> None:
    """Each saved figure: a self-contained HTML page and a non-blank PNG beside it."""
    for name in names:
        page = (figures / f"{name}.html").read_text()
        assert "Bokeh" in page and external_resources(page) == [], name
        image = imread(figures / f"{name}.png")
        assert image[..., :3].std() > 0.02, f"{name}.png is blank"


def test_generate_notebook_fills_the_store_and_shows_the_gallery(generated, work):
    store, notebook = generated
    with open_dataset(store) as ds:
        assert ds["done"].values.all() and ds.sizes["sample"] == N_SAMPLES
        assert ds.sizes["x"] == 16 and np.isfinite(ds["saturation"].values).all()
    text, mimes = _outputs(notebook)
    assert "dask dashboard: <a href=" in text
    assert f"{N_SAMPLES}/{N_SAMPLES} samples done" in text
    assert "application/vnd.holoviews_exec.v0+json" in mimes  # Bokeh plots (gallery, plume areas)
    # readable without JavaScript: a static picture of the gallery and of the plume areas
    static = _static_figures(notebook)
    assert len(static) == 2 and all(image[..., :3].std() > 0.02 for image in static)
    _assert_saved_offline(work / "figures", ["01_gallery", "01_plume_areas"])


def test_train_notebook_trains_both_precisions_and_compares_them(trained, work):
    runs, notebook = trained
    for name in ("full", "half"):
        metrics = [json.loads(line) for line in (runs / name / "metrics.jsonl").read_text().splitlines()]
        assert [m["epoch"] for m in metrics] == [1] and metrics[0]["precision"] == name
        assert (runs / name / "model.pt").is_file()
    table = (work / "figures" / "02_test_errors.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in table[1:]] == ["full", "half"]
    text, mimes = _outputs(notebook)
    assert "half vs full on sample" in text
    assert "application/vnd.holoviews_exec.v0+json" in mimes
    # loss curves, error maps and the half - full map as static pictures too
    static = _static_figures(notebook)
    assert len(static) == 3 and all(image[..., :3].std() > 0.02 for image in static)
    _assert_saved_offline(work / "figures", ["02_loss_curves", "02_error_maps", "02_half_vs_full"])
    # the legend states each run's final loss, readable whatever the log axis shows
    for name in ("full", "half"):
        final = json.loads((runs / name / "metrics.jsonl").read_text().splitlines()[-1])["train_loss"]
        assert f"{name}: final {final:.3g}" in (work / "figures" / "02_loss_curves.html").read_text()


def test_explore_notebook_builds_the_explorer_and_runs_the_simulator(trained, work):
    runs, _ = trained
    notebook = _run("03_explore_scenarios.ipynb", work, run_dir=str(runs / "full"), simulate=True)
    text, mimes = _outputs(notebook)
    assert "application/vnd.jupyter.widget-view+json" in mimes  # the explorer app
    assert "surrogate vs simulator: relative L2 error" in text
