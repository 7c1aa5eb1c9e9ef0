"""The scenario explorer in a real JupyterLab, driven by a real headless Chromium (Playwright).

One JupyterLab server for the module; the notebook is ``notebooks/03_explore_scenarios.ipynb``
with parameters pointing at a tiny run trained here. What a person sees is read from the page:
BokehJS's own models (``lab_browser.BOKEH_FIGURES_JS``), the widgets' DOM and canvas pixels.

- ``test_explorer_live``: the app renders in a 1600 x 1000 window with its comparison row in view
  and plots that use the width; without a simulation the simulator and difference panels say so
  in words (no image, no colour bar) and legends list only the lines drawn; units (t/day, Mt/yr,
  mD colour bar, depth in m, m² of section); the training-distribution banner before Simulate
  (gaussian geology; a seed whose channel misses the injector) without moving the plots; a new
  seed does not move the wells; the time slider redraws, and once the controls rest it swaps the
  frames in the browser (while the kernel sleeps); Simulate shows the comparison.
- ``test_executed_notebook``: a notebook executed by papermill (``simulate=True``) opened in
  JupyterLab shows the explorer's static rendering without re-running; "Run All" with
  ``simulate=True`` then shows the simulator panels and curves consistent with the status line.

No JavaScript errors, nothing fetched from outside 127.0.0.1. Chromium must be installed (`make
browser-deps`): without it these tests fail, they never skip. Screenshots go to
``outputs/test-artifacts/``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import papermill
import pytest
from lab_browser import (
    KERNEL_SLEEP_JS,
    bokeh_figures,
    bokeh_slider,
    checked_page,
    jupyter_lab,
    open_and_run_all,
    open_notebook,
    require_chromium,
    wait_for_figures,
)
from playwright.sync_api import expect
from tiny_run import TINY_TIMES_DAYS, build_tiny_run, fit_calibration

from ccs_fno.widgets import ScenarioExplorer
from data_gen.geology import channel_mask

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "03_explore_scenarios.ipynb"
ARTIFACTS = ROOT / "outputs" / "test-artifacts"
UI_TIMEOUT_MS = 120_000  # a cold kernel imports torch and Bokeh on a small machine
WINDOW = (1600, 1000)
NO_SIMULATION = "no simulation yet: press Simulate"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run = build_tiny_run(tmp_path_factory.mktemp("browser-run"))
    app = ScenarioExplorer.from_run(run)
    fit_calibration(app.space.grid).save(run)  # the explorer shows its 90 % band
    app.close()
    return run


@pytest.fixture(scope="module")
def lab(run_dir, tmp_path_factory):
    require_chromium()  # fails, with how to install it, when there is no browser
    root = tmp_path_factory.mktemp("lab")
    papermill.execute_notebook(  # only inject the parameters: JupyterLab runs it
        NOTEBOOK,
        root / "live.ipynb",
        parameters={"run_dir": str(run_dir)},
        prepare_only=True,
        progress_bar=False,
    )
    papermill.execute_notebook(  # executed headless, as `make demo` does, then opened
        NOTEBOOK,
        root / "executed.ipynb",
        parameters={"run_dir": str(run_dir), "simulate": True},
        progress_bar=False,
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with jupyter_lab(root, tmp_path_factory.mktemp("state")) as server:
        yield server
    assert not server.external_requests, f"requests left the machine: {server.external_requests}"


@pytest.fixture()
def page(lab):
    with checked_page(lab, *WINDOW, UI_TIMEOUT_MS) as page:  # fails on any JavaScript error
        yield page


def _notebook(page):
    """The notebook on show (JupyterLab may restore others, hidden, from its workspace)."""
    return page.locator(".jp-NotebookPanel").filter(visible=True)


def _app(page):
    app = _notebook(page).locator(".jp-OutputArea-output", has=page.locator("button", has_text="Simulate"))
    expect(app).to_have_count(1, timeout=UI_TIMEOUT_MS)
    expect(app.locator(".bk-Canvas")).to_have_count(8, timeout=UI_TIMEOUT_MS)  # 4 fields, 3 curves, band
    return app


def _wait_for(page, predicate, what: str, timeout_s: float = 60.0):
    """Poll the Bokeh figures until ``predicate(figures)`` holds; return them."""
    return wait_for_figures(page, predicate, what, timeout_s)


def _outside_seed(run_dir) -> tuple[int, tuple[float, float]]:
    """A channel seed whose channel misses the explorer's starting injector cell, and the
    starting (injector, producer) depths in m."""
    explorer = ScenarioExplorer.from_run(run_dir)
    try:
        c, cell = explorer.controls, explorer.scenario.injector_zx
        grid, params = explorer.space.grid, c.geology_params()
        seed = next(s for s in range(1, 100) if not channel_mask(grid, params, s)[cell])
        return seed, (c.injector_depth.value, c.producer_depth.value)
    finally:
        explorer.close()


@pytest.mark.timeout(600)
def test_explorer_live(lab, page, run_dir):
    seed, depths = _outside_seed(run_dir)
    open_and_run_all(page, lab, "live.ipynb", timeout_s=UI_TIMEOUT_MS / 1000)
    app = _app(page)
    figures = _wait_for(
        page, lambda f: f["surrogate"]["shown"] == "surrogate: CO2 saturation at 1000 d", "it"
    )
    app.locator(".bk-Canvas").nth(0).scroll_into_view_if_needed()
    page.wait_for_timeout(500)  # let the canvases paint
    app.screenshot(path=ARTIFACTS / "explorer_before.png")

    # no simulation: words in the simulator and difference panels, no image, no colour bar
    for name in ("simulator", "difference"):
        assert figures[name]["labels"] == [NO_SIMULATION] and figures[name]["image"] is False
        assert figures[name]["colour_bars"] == []
    # legends list only the lines drawn; the calibrated 90 % band is shaded and mapped
    assert figures["area"]["legend"] == ["surrogate", "90 % band"]
    assert figures["extent"]["legend"] == ["surrogate", "90 % band"]
    assert figures["mass"]["legend"] == ["injected", "stored (surrogate)"]
    assert figures["band"]["shown"] == "surrogate ± 90 % band at 1000 d" and figures["band"]["image"]
    expect(app.get_by_text("90 % conformal band from 10 held-out simulations")).to_have_count(1)
    # units
    assert figures["rock"]["colour_bars"] == ["permeability (mD)"]
    assert figures["surrogate"]["colour_bars"] == ["CO2 saturation (-)"]
    assert figures["rock"]["ylabel"] == "depth (m)" and figures["rock"]["xlabel"] == "x (m)"
    assert figures["area"]["ylabel"] == "area (m² of section)"
    assert figures["area"]["title"] == "plume area in the vertical section"
    assert figures["mass"]["ylabel"] == "CO2 mass (t)"
    expect(app.get_by_text(re.compile(r"= \d+\.\d t/day = \d\.\d{4} Mt/yr CO2"))).to_have_count(1)
    banner = app.locator(".ccs-banner-info", has_text="inside the surrogate's training distribution")
    expect(banner).to_have_count(1)

    # the layout: the comparison row in a 1600 x 1000 window, the plots use the width
    canvases = app.locator(".bk-Canvas")
    top = app.bounding_box()["y"]
    bottom = canvases.nth(7).bounding_box()  # the band map: the tallest of the bottom row
    assert bottom["y"] + bottom["height"] - top < WINDOW[1] - 110, "the app is taller than the window"
    box, right = app.bounding_box(), canvases.nth(3).bounding_box()  # the difference panel: last in its row
    assert right["x"] + right["width"] > box["x"] + 0.93 * box["width"], "the plots leave the width unused"
    row_y = canvases.nth(0).bounding_box()["y"]

    # gaussian geology on a channel-trained model: the banner says so before anyone simulates,
    # and the plots do not move down
    app.locator(".widget-dropdown select").first.select_option("gaussian")
    warning = app.locator(".ccs-banner-warning", has_text="Outside the surrogate's training distribution")
    expect(warning).to_have_count(1)
    expect(warning).to_contain_text("not channel geology")
    assert canvases.nth(0).bounding_box()["y"] == row_y, "choosing another geology moved the plots"
    assert bokeh_figures(page)["simulator"]["labels"] == [NO_SIMULATION]
    app.locator(".widget-dropdown select").first.select_option("channel")
    expect(banner).to_have_count(1)

    # a new channel realisation does not move the wells; the banner says the injector is outside
    seed_box = app.locator(".widget-text", has_text="seed").locator("input")
    seed_box.fill(str(seed))
    seed_box.press("Enter")
    expect(warning).to_contain_text("injector")
    readouts = [
        app.locator(".widget-hslider", has_text=name).locator(".widget-readout").inner_text()
        for name in ("inj. depth (m)", "prod. depth (m)")
    ]
    assert [float(r) for r in readouts] == list(depths), "the seed moved the wells"
    # asked to, the app moves them into the channel and says where from and to
    app.locator("button", has_text="wells into channel").click()
    status = app.locator(".ccs-banner", has_text="wells completed at the channel centre")
    expect(status).to_contain_text(re.compile(rf"injector {depths[0]:.0f} → \d+ m"))
    expect(banner).to_have_count(1)

    # the time slider, with the keyboard as a user would: the plot redraws (model and pixels)
    predicted = canvases.nth(1)
    before = predicted.screenshot()
    time_slider = bokeh_slider(app, page, "time")
    time_slider.locator(".noUi-handle").focus()
    for _ in range(3):
        page.keyboard.press("ArrowLeft")
    t_days = TINY_TIMES_DAYS[-4]
    expect(time_slider.locator(".bk-slider-title")).to_have_text(f"time: {t_days:g} d")
    figures = _wait_for(  # the markers move in the same update, in later messages
        page,
        lambda f: (
            f["surrogate"]["shown"] == f"surrogate: CO2 saturation at {t_days:g} d"
            and [f[n]["marker"] for n in ("area", "extent", "mass")] == [t_days] * 3
        ),
        "t and its markers",
    )
    assert figures["band"]["shown"] == f"surrogate ± 90 % band at {t_days:g} d"
    page.wait_for_timeout(300)
    assert predicted.screenshot() != before, "the predicted-saturation plot did not change"

    # once the controls rest, the frames of every report time are in the browser and the slider
    # swaps them there: images, notes and markers follow it while the kernel is busy
    n_times = len(TINY_TIMES_DAYS)
    _wait_for(page, lambda f: f["surrogate"]["frames"] == n_times == f["band"]["frames"], "every frame")
    page.evaluate(KERNEL_SLEEP_JS, 6)
    page.wait_for_timeout(300)  # the kernel is asleep now
    time_slider.locator(".noUi-handle").focus()
    for _ in range(2):
        page.keyboard.press("ArrowLeft")
    t_days = TINY_TIMES_DAYS[-6]
    figures = _wait_for(
        page,
        lambda f: (
            f["surrogate"]["shown"] == f"surrogate: CO2 saturation at {t_days:g} d"
            and f["band"]["shown"] == f"surrogate ± 90 % band at {t_days:g} d"
            and [f[n]["marker"] for n in ("area", "extent", "mass")] == [t_days] * 3
        ),
        "the frames swapped by the browser",
        timeout_s=3,  # well before the kernel wakes
    )

    # Simulate: the comparison replaces the placeholders; the legends gain the simulator
    app.locator("button", has_text="Simulate").click()
    expect(app.locator(".ccs-banner", has_text="relative L2 error")).to_have_count(1, timeout=UI_TIMEOUT_MS)
    figures = _wait_for(page, lambda f: f["simulator"]["image"] is True, "the simulation")
    assert figures["simulator"]["shown"] == f"simulator: CO2 saturation at {t_days:g} d"
    assert figures["simulator"]["labels"] == [] and figures["difference"]["labels"] == []
    assert figures["difference"]["note"].startswith(f"at {t_days:g} d: rel. L2 error")
    assert figures["area"]["legend"] == ["surrogate", "simulator", "90 % band"]
    assert figures["mass"]["legend"] == ["injected", "stored (surrogate)", "stored (simulator)"]
    # the simulation's frames follow: the comparison row swaps in the browser too
    _wait_for(page, lambda f: f["simulator"]["frames"] == n_times == f["difference"]["frames"], "its frames")
    time_slider.locator(".noUi-handle").focus()
    page.keyboard.press("ArrowRight")
    t_days = TINY_TIMES_DAYS[-5]
    _wait_for(
        page,
        lambda f: (
            f["simulator"]["shown"] == f"simulator: CO2 saturation at {t_days:g} d"
            and f["difference"]["note"].startswith(f"at {t_days:g} d: rel. L2 error")
        ),
        "the comparison at the slider's time",
    )
    page.wait_for_timeout(300)
    app.screenshot(path=ARTIFACTS / "explorer.png")


@pytest.mark.timeout(600)
def test_executed_notebook(lab, page):
    # opened as papermill left it, kernel idle and nothing re-run: the static rendering is there
    open_notebook(page, lab, "executed.ipynb", timeout_s=UI_TIMEOUT_MS / 1000)
    cell = _notebook(page).locator(".jp-CodeCell", has_text="the app, and below it a static picture")
    image = cell.locator(".jp-OutputArea-output img")
    expect(image).to_have_count(1)
    expect(image).to_be_visible()
    assert image.evaluate("(img) => img.naturalWidth") > 800
    assert "VBox(" not in cell.inner_text()  # no widget repr for a reader: a sentence instead
    expect(cell).to_contain_text("scenario explorer: interactive when this notebook runs")
    expect(page.get_by_text(re.compile(r"surrogate vs simulator: relative L2 error \d+\.\d%"))).to_have_count(
        1
    )
    cell.screenshot(path=ARTIFACTS / "explorer_executed.png")

    # "Run All" with simulate=True: the panels agree with the status line as soon as it is shown
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    app = _app(page)
    status = app.locator(".ccs-banner", has_text="relative L2 error")
    expect(status).to_have_count(1, timeout=UI_TIMEOUT_MS)
    figures = _wait_for(page, lambda f: f["simulator"]["image"] is True, "the simulator panel")
    last = f"{TINY_TIMES_DAYS[-1]:g} d"
    assert figures["simulator"]["shown"] == f"simulator: CO2 saturation at {last}"
    assert figures["simulator"]["labels"] == [] and figures["difference"]["labels"] == []
    assert figures["area"]["legend"] == ["surrogate", "simulator", "90 % band"]
    assert figures["extent"]["legend"] == ["surrogate", "simulator", "90 % band"]
    percent = re.search(r"(\d+\.\d)% over all times", status.inner_text()).group(1)
    assert np.isfinite(float(percent))
