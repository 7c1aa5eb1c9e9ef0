"""The inversion app in a real JupyterLab, driven by a real headless Chromium (Playwright).

One JupyterLab server for the module; the notebook is ``notebooks/04_invert_permeability.ipynb``
with parameters pointing at a tiny run trained here (its app section at the end). What a person
sees is read from the page (BokehJS models, the widgets' DOM): monitoring wells placed and removed
by clicks on the truth map, a run to completion (misfit curve, inverted map, status), the
simulator verification in the background, a cancelled run that leaves the app usable, no
JavaScript errors and nothing fetched from outside 127.0.0.1. Chromium must be installed: without
it this test fails, it never skips. Screenshots go to ``outputs/test-artifacts/``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from lab_browser import checked_page, notebook_lab, open_and_run_all, wait_for_figures
from playwright.sync_api import expect

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "04_invert_permeability.ipynb"
ARTIFACTS = ROOT / "outputs" / "test-artifacts"
UI_TIMEOUT_MS = 180_000  # a cold kernel imports torch and Bokeh, then runs the notebook's inversion
WINDOW = (1500, 1500)


@pytest.fixture(scope="module")
def tiny(responsive_run_dir):
    """The tiny run whose output follows the permeability (shared with test_inversion.py): (run, store)."""
    return responsive_run_dir, responsive_run_dir.parent / "store.zarr"


@pytest.fixture(scope="module")
def lab(tiny, tmp_path_factory):
    run_dir, store = tiny
    root = tmp_path_factory.mktemp("lab")
    parameters = {
        "run_dir": str(run_dir),
        "truth_store": str(store),
        "truth_index": 1,
        "iterations": 10,
        "verify_with_simulator": False,
        "prior_samples": 30,
        "n_modes": 8,
        "export": str(root / "result.nc"),
        "figures_dir": str(root / "figures"),
    }
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with notebook_lab(NOTEBOOK, root, tmp_path_factory.mktemp("state"), "invert.ipynb", parameters) as server:
        yield server
    assert not server.external_requests, f"requests left the machine: {server.external_requests}"


@pytest.fixture()
def page(lab):
    with checked_page(lab, *WINDOW, UI_TIMEOUT_MS) as page:
        yield page


def _wells(app) -> int:
    text = app.locator(".ccs-wells").inner_text()
    return int(re.match(r"(\d+) monitoring well", text).group(1))


@pytest.mark.timeout(900)
def test_inversion_app(lab, page):
    open_and_run_all(page, lab, "invert.ipynb", timeout_s=UI_TIMEOUT_MS / 1000)
    notebook = page.locator(".jp-NotebookPanel").filter(visible=True)
    app = notebook.locator(
        ".jp-OutputArea-output", has=page.locator("button", has_text="Verify with simulator")
    )
    expect(app).to_have_count(1, timeout=UI_TIMEOUT_MS)
    expect(app.locator(".bk-Canvas")).to_have_count(8, timeout=UI_TIMEOUT_MS)  # 6 maps, 2 curves
    figures = wait_for_figures(page, lambda f: "truth" in f and f["truth"]["image"], "the truth map")
    assert figures["inverted"]["image"] is False and figures["inverted"]["labels"] == ["press Run"]
    assert figures["truth"]["colour_bars"] == ["permeability (mD)"]

    # wells by clicks: a click adds a well (or removes the one within a column); the same click undoes it
    truth = app.locator(".bk-Canvas").nth(0)
    truth.scroll_into_view_if_needed()
    box = truth.bounding_box()
    before = _wells(app)
    page.mouse.click(box["x"] + 0.35 * box["width"], box["y"] + 0.5 * box["height"])
    expect(app.locator(".ccs-wells")).not_to_have_text(re.compile(rf"^{before} monitoring"))
    changed = _wells(app)
    assert abs(changed - before) == 1
    page.wait_for_timeout(800)  # two clicks within Bokeh's double-tap interval are one double tap
    page.mouse.click(box["x"] + 0.35 * box["width"], box["y"] + 0.5 * box["height"])
    expect(app.locator(".ccs-wells")).to_have_text(re.compile(rf"^{before} monitoring"))
    if before == 0:  # nothing observed: put one well back in
        page.mouse.click(box["x"] + 0.5 * box["width"], box["y"] + 0.5 * box["height"])

    # a run to completion: the misfit curve, the inverted map, the status line
    app.locator("button", has_text="Run").first.click()
    expect(app.locator(".ccs-banner", has_text="completed: chi2/N")).to_have_count(1, timeout=UI_TIMEOUT_MS)
    # the result's panel updates reach the page as separate messages: wait for all of them
    figures = wait_for_figures(
        page,
        lambda f: (
            f["inverted"]["image"]
            and f["misfit"]["legend"] == ["misfit"]
            and f["data"]["legend"] == ["observed", "predicted"]
        ),
        "a result",
    )
    assert figures["plume_simulator"]["labels"] == ["press Verify with simulator after a run"]

    # the simulator confirms in the background
    app.locator("button", has_text="Verify with simulator").click()
    expect(app.locator(".ccs-banner", has_text="simulator-confirmed")).to_have_count(1, timeout=UI_TIMEOUT_MS)
    wait_for_figures(page, lambda f: f["plume_simulator"]["image"], "the simulator's plume")
    app.screenshot(path=ARTIFACTS / "inversion_app.png")

    # cancel a long run: the status says so, the best model so far is shown, Run works again
    iterations = app.locator(".widget-text", has_text="iterations").locator("input")
    iterations.fill("100000")
    iterations.press("Enter")
    app.locator("button", has_text="Run").first.click()
    expect(app.locator(".ccs-banner", has_text="inverting")).to_have_count(1, timeout=UI_TIMEOUT_MS)
    page.wait_for_timeout(1000)
    app.locator("button", has_text="Cancel").click()
    expect(app.locator(".ccs-banner", has_text="cancelled: chi2/N")).to_have_count(1, timeout=UI_TIMEOUT_MS)
    expect(app.locator("button", has_text="Run").first).to_be_enabled()
    wait_for_figures(page, lambda f: f["inverted"]["image"], "the cancelled run's model")


def test_failed_run_leaves_the_app_usable(tiny, tmp_path):
    """No browser: a run on a missing observations file fails with the reason in the status line,
    Run is enabled again, and a run on a scenario then completes."""
    from ccs_fno.surrogate import load_surrogate
    from ccs_fno.widgets import InversionApp

    run_dir, store = tiny
    app = InversionApp(load_surrogate(run_dir), store=store, prior_samples=20, n_modes=4, iterations=3)
    try:
        with pytest.raises(ValueError, match="nothing to export: press Run first"):
            app.export()
        app.source.value = "observations file"
        app.file.value = str(tmp_path / "missing.nc")
        with pytest.raises(FileNotFoundError):
            app.run().result(timeout=300)
        assert "the inversion failed: FileNotFoundError: no observations file at" in app.status_text
        assert not app.run_button.disabled and app.cancel_button.disabled
        app.source.value = "scenario"
        app.well_times.value = "200, 400, later"
        with pytest.raises(ValueError, match="well log times must be comma-separated days"):
            app.run().result(timeout=300)
        app.well_times.value = "200, 400"
        result = app.run().result(timeout=300)
        assert result.attrs["status"] == "completed" and app.status_text.startswith("completed: chi2/N")
        app.export_path.value = str(tmp_path / "result.zarr")
        assert app.export().is_dir()
    finally:
        app.close()
