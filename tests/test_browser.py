"""The scenario explorer in a real JupyterLab, driven by a real headless Chromium (Playwright).

Opens ``notebooks/03_explore_scenarios.ipynb`` (parameters pointing at a tiny run trained here),
runs all its cells, and checks in the browser that the widgets and the six Bokeh plots render,
that moving the time slider changes a plot (its Bokeh model and its pixels), that "Simulate"
shows the simulator's comparison, and that nothing was fetched from outside 127.0.0.1 (BokehJS
and Panel's CSS inline). Chromium must be installed (`make browser-deps`): without it this test
fails, it never skips. Screenshots go to ``outputs/test-artifacts/``.
"""

from __future__ import annotations

import re
from pathlib import Path

import papermill
import pytest
from lab_browser import chromium_page, jupyter_lab, open_and_run_all, require_chromium
from playwright.sync_api import expect
from tiny_run import TINY_TIMES_DAYS, build_tiny_run

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "03_explore_scenarios.ipynb"
ARTIFACTS = ROOT / "outputs" / "test-artifacts"
UI_TIMEOUT_MS = 120_000  # a cold kernel imports torch, HoloViews and Panel on a small machine

# The title of the first Bokeh plot whose title starts with the argument (BokehJS models).
PLOT_TITLE_JS = """(start) => {
  if (!window.Bokeh || !Bokeh.documents) return null;
  for (const doc of Bokeh.documents) {
    for (const model of doc.all_models) {
      const title = model.title;
      if (title && typeof title.text === 'string' && title.text.startsWith(start)) return title.text;
    }
  }
  return null;
}"""
# The locations of the time markers (Bokeh Spans) on the plume curves.
MARKERS_JS = """() => {
  const out = [];
  for (const doc of Bokeh.documents)
    for (const model of doc.all_models)
      if (model.type === 'Span' || (model.location !== undefined && model.dimension !== undefined))
        out.push(model.location);
  return out;
}"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return build_tiny_run(tmp_path_factory.mktemp("browser-run"))


@pytest.mark.timeout(600)
def test_explorer_renders_and_reacts_in_jupyterlab(run_dir, tmp_path):
    require_chromium()  # fails, with how to install it, when there is no browser
    root = tmp_path / "lab"
    root.mkdir()
    papermill.execute_notebook(
        ROOT / "notebooks" / NOTEBOOK,
        root / NOTEBOOK,
        parameters={"run_dir": str(run_dir)},
        prepare_only=True,  # only inject the parameters: JupyterLab runs it
        progress_bar=False,
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page_errors: list[str] = []
    with jupyter_lab(root, tmp_path / "state") as lab, chromium_page(lab, 1400, 1800) as page:
        page.set_default_timeout(UI_TIMEOUT_MS)
        page.on("pageerror", lambda error: page_errors.append(str(error)))
        open_and_run_all(page, lab, NOTEBOOK, timeout_s=UI_TIMEOUT_MS / 1000)
        app = page.locator(".jp-OutputArea-output", has=page.locator("button", has_text="Simulate"))
        expect(app).to_have_count(1, timeout=UI_TIMEOUT_MS)

        # the widgets: geology, seed, 3 channel sliders, rate, 2 depths, time, Simulate, progress
        expect(app.locator(".widget-dropdown select")).to_have_count(1)
        expect(app.locator(".widget-hslider")).to_have_count(7)
        expect(app.locator(".widget-text", has_text="seed")).to_have_count(1)
        expect(app.locator(".widget-hprogress")).to_have_count(1)
        # the Bokeh plots: six figures, each drawn on a canvas
        expect(app.locator(".bk-Canvas")).to_have_count(6, timeout=UI_TIMEOUT_MS)
        predicted = app.locator(".bk-Canvas").nth(1)
        expect(predicted).to_be_visible()
        page.wait_for_function(PLOT_TITLE_JS, arg="surrogate: CO2 saturation at 1000 d")
        page.wait_for_timeout(500)  # let the canvases paint
        before = predicted.screenshot()
        app.screenshot(path=ARTIFACTS / "explorer_before.png")

        # move the time slider three steps back with the keyboard, as a user would
        time_slider = app.locator(".widget-hslider", has=page.get_by_text("time", exact=True))
        time_slider.locator(".noUi-handle").focus()
        for _ in range(3):
            page.keyboard.press("ArrowLeft")
        t_days = TINY_TIMES_DAYS[-4]
        expect(time_slider.locator(".widget-readout")).to_have_text(f"{t_days:g} d")
        page.wait_for_function(PLOT_TITLE_JS, arg=f"surrogate: CO2 saturation at {t_days:g} d")
        page.wait_for_timeout(500)
        assert predicted.screenshot() != before, "the predicted-saturation plot did not change"
        assert page.evaluate(MARKERS_JS) == [t_days, t_days]  # both curves mark the new time

        # Simulate: the comparison appears, the relative error is reported
        app.locator("button", has_text="Simulate").click()
        status = app.locator(".widget-html", has_text="relative L2 error")
        expect(status).to_have_count(1, timeout=UI_TIMEOUT_MS)
        assert re.search(r"relative L2 error \d+\.\d% over all times", status.inner_text())
        page.wait_for_function(PLOT_TITLE_JS, arg=f"simulator: CO2 saturation at {t_days:g} d")
        page.wait_for_timeout(500)
        app.screenshot(path=ARTIFACTS / "explorer.png")

    assert not page_errors, f"JavaScript errors in the page: {page_errors}"
    assert not lab.external_requests, f"requests left the machine: {lab.external_requests}"
