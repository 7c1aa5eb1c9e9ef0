"""The notebooks executed once per test session by papermill, on tiny parameters, in the order a user
runs them (01 generates a store, 02 trains full- and half-precision runs on it), shared by
``tests/test_notebooks.py`` and the browser test of the executed notebooks (``conftest.py`` registers
the fixtures). ``figures_dir`` of both is ``work / "figures"``."""

from __future__ import annotations

from pathlib import Path

import nbformat
import papermill
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
N_SAMPLES = 8


def run_notebook(name: str, out_dir: Path, **parameters) -> nbformat.NotebookNode:
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


def notebook_outputs(notebook: nbformat.NotebookNode) -> tuple[str, set[str]]:
    """All stream text of the notebook, and the MIME types of its rich outputs."""
    text, mimes = [], set()
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            text.append(output.get("text", ""))
            mimes.update(output.get("data", {}))
            text.append(output.get("data", {}).get("text/html", ""))
    return "".join(text), mimes


@pytest.fixture(scope="session")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("notebooks")


@pytest.fixture(scope="session")
def generated(work):
    store = work / "store.zarr"
    notebook = run_notebook(
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


@pytest.fixture(scope="session")
def trained(work, generated):
    store, _ = generated
    notebook = run_notebook(
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
