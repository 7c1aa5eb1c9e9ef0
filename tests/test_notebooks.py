"""Every notebook runs headless with papermill, on tiny parameters, in the order a user runs them:
01 generates a store on a dask cluster, 02 trains full- and half-precision surrogates on it, 03
builds the explorer on the full-precision run and checks it against the simulator."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import numpy as np
import papermill
import pytest

from data_gen.store import open_dataset

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
N_SAMPLES = 8


def _run(name: str, out_dir: Path, **parameters) -> nbformat.NotebookNode:
    """Execute notebook ``name`` (cwd: notebooks/) with ``parameters``; return the executed copy."""
    output = out_dir / name
    papermill.execute_notebook(
        NOTEBOOKS / name,
        output,
        parameters=parameters,
        cwd=str(NOTEBOOKS),
        progress_bar=False,
        execution_timeout=300,
    )
    return nbformat.read(output, as_version=4)


def _outputs(notebook: nbformat.NotebookNode) -> tuple[str, set[str]]:
    """All stream text of the notebook, and the MIME types of its rich outputs."""
    text, mimes = [], set()
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            text.append(output.get("text", ""))
            mimes.update(output.get("data", {}))
            text.append(output.get("data", {}).get("text/html", ""))
    return "".join(text), mimes


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("notebooks")


@pytest.fixture(scope="module")
def generated(work):
    store = work / "store.zarr"
    notebook = _run(
        "01_generate_data.ipynb",
        work,
        store=str(store),
        n_samples=N_SAMPLES,
        resolution=16,
        workers=1,
        samples_per_chunk=4,
        n_gallery=2,
        figures_dir=str(work / "figures"),
    )
    return store, notebook


@pytest.fixture(scope="module")
def trained(work, generated):
    store, _ = generated
    notebook = _run(
        "02_train_surrogate.ipynb",
        work,
        store=str(store),
        run_dir=str(work / "runs"),
        precisions=["full", "half"],
        epochs=1,
        batch_size=4,
        width=4,
        modes=4,
        layers=1,
        device="cpu",
        figures_dir=str(work / "figures"),
    )
    return work / "runs", notebook


def test_generate_notebook_fills_the_store_and_shows_the_gallery(generated, work):
    store, notebook = generated
    with open_dataset(store) as ds:
        assert ds["done"].values.all() and ds.sizes["sample"] == N_SAMPLES
        assert ds.sizes["x"] == 16 and np.isfinite(ds["saturation"].values).all()
    text, mimes = _outputs(notebook)
    assert "dask dashboard: <a href=" in text
    assert f"{N_SAMPLES}/{N_SAMPLES} samples done" in text
    assert "application/vnd.holoviews_exec.v0+json" in mimes  # Bokeh plots (gallery, plume areas)
    assert (work / "figures" / "01_gallery.html").stat().st_size > 0


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


def test_explore_notebook_builds_the_explorer_and_runs_the_simulator(trained, work):
    runs, _ = trained
    notebook = _run("03_explore_scenarios.ipynb", work, run_dir=str(runs / "full"), simulate=True)
    text, mimes = _outputs(notebook)
    assert "application/vnd.jupyter.widget-view+json" in mimes  # the explorer app
    assert "surrogate vs simulator: relative L2 error" in text
