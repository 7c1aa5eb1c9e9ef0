"""The UQ app: in Python (state after run, cancel, threshold, export, posterior switch) and in a real
JupyterLab driven by a real headless Chromium (notebook 05 on a tiny run, one server per module).

In the browser, what a person sees is read from the page: BokehJS's own models
(``lab_browser.BOKEH_FIGURES_JS``), the widgets' DOM and canvas pixels. No JavaScript errors,
nothing fetched from outside 127.0.0.1. Chromium must be installed (``make browser-deps``): the
browser test fails without it, never skips. Screenshot: ``outputs/test-artifacts/uq_app.png``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from lab_browser import checked_page, notebook_lab, open_and_run_all, wait_for_figures
from playwright.sync_api import expect
from stores import build_store
from test_uq import notebook_05_parameters
from tiny_run import TINY_TIMES_DAYS

from ccs_fno.data import heldout_split, read_store
from ccs_fno.surrogate import load_surrogate
from ccs_fno.uq import calibrate
from ccs_fno.widgets import UncertaintyApp

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "05_uncertainty.ipynb"
ARTIFACTS = ROOT / "outputs" / "test-artifacts"
UI_TIMEOUT_MS = 180_000  # a cold kernel imports torch and Bokeh, then simulates the held-out store
WINDOW = (1600, 1000)


@pytest.fixture(scope="module")
def run_dir(tiny_run_dir):
    return tiny_run_dir  # shared with test_uq.py and test_domain.py


def test_app_runs_cancels_exports_and_refuses_a_missing_posterior(run_dir, tmp_path):
    surrogate = load_surrogate(run_dir)
    held = build_store(tmp_path / "held.zarr", 12, 9001, TINY_TIMES_DAYS)
    split = heldout_split(read_store(held).done_indices, 0.75, 0)
    calibration = calibrate(surrogate, held, split["calibration"], levels=(0.8,), delta=0.25)
    truth = np.linspace(0.0, 5e4, len(TINY_TIMES_DAYS))
    app = UncertaintyApp(
        surrogate, calibration, members=9, batch_size=4, truth_area_m2=truth, export_dir=tmp_path
    )
    try:
        assert app.mean.showing_placeholder and app.status.text == "press Run for a prior ensemble"
        assert app.export_button.disabled
        ds = app.run().result(timeout=300)
        assert ds.sizes["member"] == 9 and app.progress.value == 9
        assert app.status.text.startswith("done: 9 of 9 members")
        assert app.mean.figure.title.text == "mean CO2 saturation at 1000 d (9 members)"
        np.testing.assert_allclose(app.mean.field, ds["mean_saturation"].isel(time=-1))
        assert app.fan.drawn() == ["P50", "P90 conservative", "truth"]
        band = app.fan_band.data_source.data
        np.testing.assert_allclose(band["y2"], ds["plume_area_quantiles_m2"].sel(quantile=0.9))
        app.threshold.value = 0.2
        p = ds["exceedance_probability"].sel(threshold=0.2).isel(time=-1)
        assert app.exceed.figure.title.text == "P(S > 0.2) at 1000 d"
        np.testing.assert_allclose(app.exceed.field, p)
        app.time.value = 500.0
        assert app.fan.marker_at == 500.0
        path = app.export()
        assert xr.open_dataset(path, engine="scipy").sizes["member"] == 9
        app.mode.value = "posterior"
        assert app.mean.showing_placeholder and "a posterior needs observations" in app.status.text
        assert app.run() is None  # nothing to invert: the banner says what is missing
        app.mode.value = "prior"
        # cancel: stop after the batch running when asked (progress calls cancel after batch 2)
        app.members.value = 400
        app.progress.observe(lambda change: change["new"] >= 8 and app.cancel(), "value")
        stopped = app.run().result(timeout=300)
        assert stopped.attrs["cancelled"] == 1 and stopped.sizes["member"] == 8
        assert app.status.text.startswith("cancelled: 8 of 400 members")
    finally:
        app.close()


@pytest.fixture(scope="module")
def lab(run_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("uq-lab")
    parameters = notebook_05_parameters(run_dir, root)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with notebook_lab(NOTEBOOK, root, tmp_path_factory.mktemp("uq-state"), "uq.ipynb", parameters) as server:
        yield server
    assert not server.external_requests, f"requests left the machine: {server.external_requests}"


@pytest.mark.timeout(900)
def test_uq_app_in_jupyterlab(lab):
    with checked_page(lab, *WINDOW, UI_TIMEOUT_MS) as page:  # fails on any JavaScript error
        open_and_run_all(page, lab, "uq.ipynb", timeout_s=UI_TIMEOUT_MS / 1000)
        app = page.locator(".jp-OutputArea-output", has=page.locator("button", has_text="Cancel"))
        expect(app).to_have_count(1, timeout=UI_TIMEOUT_MS)
        expect(app.locator(".bk-Canvas")).to_have_count(5, timeout=UI_TIMEOUT_MS)  # 4 maps, 1 fan chart
        figures = wait_for_figures(
            page, lambda f: "(8 members)" in f.get("mean", {}).get("title", ""), "the prior"
        )
        assert figures["exceedance"]["title"] == "P(S > 0.05) at 1000 d"
        assert figures["conservative"]["title"] == "P(S + 80% band > 0.05) at 1000 d"
        # a map is drawn with its colour bar, or says in words that it would be zero everywhere
        for name, bar, nothing in (
            ("mean", "CO2 saturation (-)", "no CO2"),
            ("exceedance", "probability (-)", "no member above s* = 0.05"),
            ("conservative", "probability (-)", "no member above s* = 0.05"),
        ):
            drawn = (
                figures[name]["image"]
                and figures[name]["colour_bars"] == [bar]
                and not figures[name]["labels"]
            )
            said = figures[name]["labels"] == [nothing] and not figures[name]["image"]
            assert drawn or said, (name, figures[name])
        assert figures["fan"]["legend"] == ["P50", "P90 conservative"]
        assert figures["fan"]["marker"] == 1000.0
        assert figures["mean"]["ylabel"] == "depth (m)"
        expect(app.locator(".ccs-uq-table")).to_contain_text("80%")
        expect(app.locator(".ccs-uq-table")).to_contain_text("pointwise coverage")

        # a bigger ensemble: the progress bar fills, the panels say how many members they show
        members = app.locator(".widget-text", has_text="members").locator("input")
        members.fill("24")
        members.press("Enter")
        app.locator("button", has_text="Run").click()
        wait_for_figures(page, lambda f: "(24 members)" in f["mean"]["title"], "24 members")
        expect(app.locator(".ccs-banner-info")).to_contain_text("done: 24 of 24 members")

        # the threshold slider, with the keyboard: the exceedance map redraws (model and pixels)
        canvas = app.locator(".bk-Canvas").nth(2)
        app.locator(".bk-Canvas").nth(0).scroll_into_view_if_needed()
        page.wait_for_timeout(500)
        before = canvas.screenshot()
        slider = app.locator(".widget-hslider", has=page.get_by_text("s*", exact=True))
        slider.locator(".noUi-handle").focus()
        page.keyboard.press("ArrowLeft")
        page.keyboard.press("ArrowLeft")
        wait_for_figures(page, lambda f: f["exceedance"]["title"] == "P(S > 0.01) at 1000 d", "s* = 0.01")
        page.wait_for_timeout(300)
        assert canvas.screenshot() != before, "the exceedance map did not change"
        app.screenshot(path=ARTIFACTS / "uq_app.png")

        # export, then the posterior switch says what is missing
        app.locator("button", has_text="Export").click()
        expect(app.locator(".ccs-banner-info")).to_contain_text(
            re.compile(r"exported 24 members' statistics")
        )
        assert (lab.root_dir / "uq" / "uq_prior.nc").is_file()
        app.get_by_role("button", name="posterior").click()
        expect(app.locator(".ccs-banner-warning")).to_contain_text("a posterior needs observations")
        wait_for_figures(
            page,
            lambda f: f["mean"]["labels"] == ["no posterior: no observations given"],
            "",
        )


def test_app_runs_an_rml_posterior_of_observations(run_dir, tmp_path):
    from ccs_fno.inversion import (
        InversionConfig,
        MonitoringWells,
        ObservationDesign,
        draw_prior,
        synthesize_observations,
        truth_from_store,
    )

    surrogate = load_surrogate(run_dir)
    store = run_dir.parent / "store.zarr"
    obs = synthesize_observations(truth_from_store(store, 0), ObservationDesign(wells=MonitoringWells()), 1)
    prior = draw_prior(surrogate.domain.space, 6, 5)
    config = InversionConfig(parameterisation="pca", n_modes=3, iterations=2)
    app = UncertaintyApp(
        surrogate, members=3, observations=obs, inversion_prior=prior, inversion_config=config
    )
    try:
        app.mode.value = "posterior"
        assert app.status.text == "press Run for an RML posterior ensemble of the observations"
        ds = app.run().result(timeout=300)
        assert ds.attrs["kind"] == "posterior" and ds.sizes["member"] == 3
        assert app.status.text.startswith("done: 3 of 3 posterior members")
        assert app.mean.figure.title.text.endswith("(3 members)") and app.results["prior"] is None
    finally:
        app.close()
