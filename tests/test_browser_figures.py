"""What a pipeline leaves behind reads as it is, in a real browser, offline.

1. The notebooks executed by papermill (01 generate, 02 train; ``tests/notebook_runs.py``) opened in
   a real JupyterLab in real headless Chromium, *without running them* (untrusted: no JavaScript of
   theirs runs), show their figures: the gallery, plume areas, loss curves, error maps and the
   half - full map as pictures, each drawn with real pixels.
2. Every figure the notebooks save (``figures_dir``: self-contained HTML and PNG) loads from disk in
   Chromium with every network request aborted: each HTML page draws its Bokeh canvases with no
   console error and asks for nothing outside the file.

Chromium must be installed (``make chromium``): without it these tests fail, they never skip.
"""

from __future__ import annotations

import pytest
from lab_browser import CHROMIUM_ARGS, chromium_page, jupyter_lab, require_chromium

UI_TIMEOUT_MS = 120_000
# The PNG outputs (JupyterLab's image renderer) of the notebook in view (restored tabs of other
# notebooks stay in the page, hidden): natural size, loaded, displayed.
PICTURES = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-RenderedImage img"
IMAGES_JS = f"""() => Array.from(document.querySelectorAll('{PICTURES}')).map((img) => ({{
  width: img.naturalWidth, height: img.naturalHeight, complete: img.complete,
  shown: img.getBoundingClientRect().width > 0,
}}))"""
STATIC_FIGURES = {"01_generate_data.ipynb": 2, "02_train_surrogate.ipynb": 3}


@pytest.mark.timeout(600)
def test_executed_notebooks_show_their_figures_in_jupyterlab_without_running(generated, trained, work):
    require_chromium()
    page_errors: list[str] = []
    with jupyter_lab(work, work / "lab-state") as lab, chromium_page(lab, 1400, 1000) as page:
        page.set_default_timeout(UI_TIMEOUT_MS)
        page.on("pageerror", lambda error: page_errors.append(str(error)))
        for notebook, n_figures in STATIC_FIGURES.items():
            # reset: JupyterLab restores no other notebook from its workspace (whose pictures
            # could be matched while its panel is being hidden)
            page.goto(lab.notebook_url(notebook) + "&reset")
            page.locator(".jp-Notebook .jp-Cell").first.wait_for()
            # a figure is a PNG output; scroll each into view (JupyterLab renders lazily)
            images = page.locator(PICTURES)
            images.first.wait_for(state="attached")
            for i in range(images.count()):
                images.nth(i).scroll_into_view_if_needed()
            page.wait_for_function(f"() => document.querySelectorAll('{PICTURES}').length >= {n_figures}")
            shown = page.evaluate(IMAGES_JS)
            assert len(shown) == n_figures, f"{notebook}: {len(shown)} pictures, expected {n_figures}"
            for image in shown:
                assert image["complete"] and image["shown"], f"{notebook}: a picture is not drawn: {image}"
                assert image["width"] > 300 and image["height"] > 150, f"{notebook}: {image}"
            # the pictures carry content: their screenshots are not a flat colour
            pixels = images.nth(0).screenshot()
            assert len(set(pixels[100:])) > 50, f"{notebook}: the first picture looks blank"
    assert not page_errors, f"JavaScript errors in the page: {page_errors}"
    assert not lab.external_requests, f"requests left the machine: {lab.external_requests}"


@pytest.mark.timeout(300)
def test_every_saved_figure_loads_with_the_network_blocked(generated, trained, work):
    from playwright.sync_api import sync_playwright

    figures = sorted((work / "figures").glob("*.html"))
    names = {path.stem for path in figures}
    assert names == {"01_gallery", "01_plume_areas", "02_loss_curves", "02_error_maps", "02_half_vs_full"}
    assert all(path.with_suffix(".png").is_file() for path in figures)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=require_chromium(), args=list(CHROMIUM_ARGS))
        try:
            for path in figures:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                blocked, errors = [], []

                uri = path.as_uri()

                def route(route, blocked=blocked, uri=uri) -> None:
                    if route.request.url.startswith(("data:", "blob:")) or route.request.url == uri:
                        route.continue_()
                    else:  # anything else, local files included, would not travel with the page
                        blocked.append(route.request.url)
                        route.abort()

                page.route("**/*", route)
                page.on("console", lambda m, errors=errors: m.type == "error" and errors.append(m.text))
                page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
                page.goto(path.as_uri())
                canvases = page.locator(".bk-Canvas canvas, canvas")
                canvases.first.wait_for(timeout=60_000)
                page.wait_for_timeout(300)  # let Bokeh paint
                assert canvases.count() >= 1, f"{path.name} draws no canvas"
                assert not blocked, f"{path.name} asked for {blocked}"
                assert not errors, f"{path.name}: console errors {errors}"
                page.close()
        finally:
            browser.close()
