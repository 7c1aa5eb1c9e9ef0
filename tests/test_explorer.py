"""The scenario explorer without a browser: plume metrics, controls -> surrogate -> the Bokeh data
sources of its panels, wells that stay where the user put them, the training-distribution banner
before any simulation, engineering units, the background simulator, and the messages for a
missing or mismatched run. The browser side is in tests/test_browser.py."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from tiny_run import TINY_TIMES_DAYS, build_tiny_run, fit_calibration

from ccs_fno.co2_mass import injected_mass_t, stored_mass_t
from ccs_fno.plume import plume_area_m2, plume_extent_m, relative_error
from ccs_fno.uq import Calibration
from ccs_fno.widgets import ScenarioExplorer
from data_gen.geology import channel_mask
from data_gen.grid import Grid
from data_gen.physics import simulate
from data_gen.scenarios import default_space
from data_gen.store import create_store

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return build_tiny_run(tmp_path_factory.mktemp("explorer"))


@pytest.fixture()
def explorer(run_dir):
    app = ScenarioExplorer.from_run(run_dir)
    yield app
    app.close()


def _image(panel) -> np.ndarray:
    """The (z, x) field a panel sends to the browser."""
    assert not panel.showing_placeholder, panel.placeholder_text
    return panel.field


def _shown_title(panel) -> str:
    """An image panel's title with the note in its corner (e.g. the time shown)."""
    return f"{panel.figure.title.text} {panel.note_text}".strip()


# -- plume metrics ---------------------------------------------------------------------------------


def _flood(mask: np.ndarray, start: tuple[int, int]) -> set[tuple[int, int]]:
    """Cells of ``mask`` reachable from ``start`` through edge neighbours (breadth-first)."""
    if not mask[start]:
        return set()
    seen, todo = {start}, [start]
    while todo:
        z, x = todo.pop()
        for cell in ((z - 1, x), (z + 1, x), (z, x - 1), (z, x + 1)):
            inside = 0 <= cell[0] < mask.shape[0] and 0 <= cell[1] < mask.shape[1]
            if inside and mask[cell] and cell not in seen:
                seen.add(cell)
                todo.append(cell)
    return seen


def test_plume_area_and_extent_match_a_brute_force_count():
    grid = Grid(nz=6, nx=7, dx_m=10.0, dz_m=5.0)
    rng = np.random.default_rng(3)
    saturation = rng.uniform(0, 0.1, size=(5, 6, 7)) * (rng.uniform(size=(5, 6, 7)) < 0.5)
    saturation[0] = 0.0  # no plume at all
    saturation[1, 2, 3] = 0.5  # the injector cell alone
    threshold, injector = 0.02, (2, 3)
    area = plume_area_m2(saturation, grid, threshold=threshold)
    extent = plume_extent_m(saturation, grid, threshold=threshold)
    connected_area = plume_area_m2(saturation, grid, injector, threshold)
    connected_extent = plume_extent_m(saturation, grid, injector, threshold)
    for t in range(5):
        mask = saturation[t] > threshold
        for got_area, got_extent, cells in (
            (area, extent, {(z, x) for z in range(6) for x in range(7) if mask[z, x]}),
            (connected_area, connected_extent, _flood(mask, injector)),
        ):
            columns = [x for _, x in cells]
            assert got_area[t] == len(cells) * 10.0 * 5.0
            assert got_extent[t] == ((max(columns) - min(columns) + 1) * 10.0 if cells else 0.0)
    assert connected_area[0] == 0.0 and connected_area[1] >= 50.0
    assert (connected_area <= area).all() and (connected_area < area).any()


def test_plume_metrics_and_relative_error_refuse_bad_input():
    grid = Grid(nz=4, nx=4)
    with pytest.raises(ValueError, match=r"\(z, x\) = \(4, 4\).*\(3, 4\)"):
        plume_area_m2(np.zeros((3, 4)), grid)
    with pytest.raises(ValueError, match="threshold must be a saturation in \\[0, 1\\), got 1.5"):
        plume_extent_m(np.zeros((4, 4)), grid, threshold=1.5)
    with pytest.raises(ValueError, match="injector_zx .* lies outside the grid"):
        plume_area_m2(np.zeros((4, 4)), grid, (4, 0))
    with pytest.raises(ValueError, match="shapes differ"):
        relative_error(np.zeros(3), np.zeros(4))
    assert np.isnan(relative_error(np.ones(3), np.zeros(3)))
    assert relative_error(np.array([3.0, 4.0]), np.array([0.0, 5.0])) == pytest.approx(np.sqrt(10) / 5)


# -- explorer --------------------------------------------------------------------------------------


def test_a_control_change_updates_the_panels_from_the_surrogate_and_wells_stay_put(explorer):
    c, v = explorer.controls, explorer.views
    assert explorer.predicted.shape == (len(TINY_TIMES_DAYS), 16, 16)
    c.rate.value = c.rate.max
    scenario = explorer.current_scenario()
    assert scenario.space.geology == "channel" and scenario.config.rate_m3_per_day == c.rate.max
    expected = explorer.surrogate.predict(
        explorer.permeability_md,
        rate_m3_per_day=c.rate.max,
        injector_zx=scenario.injector_zx,
        producer_zx=scenario.producer_zx,
        porosity=explorer.space.porosity,
    ).values
    np.testing.assert_array_equal(explorer.predicted, expected)
    last = len(TINY_TIMES_DAYS) - 1
    assert _shown_title(v.now) == "surrogate: CO2 saturation at 1000 d"
    np.testing.assert_array_equal(_image(v.now), expected[last])

    c.time.value = 3
    assert _shown_title(v.now) == "surrogate: CO2 saturation at 300 d"
    np.testing.assert_array_equal(_image(v.now), expected[3])
    assert [p.marker_at for p in v.curves] == [300.0] * 3

    # a new channel realisation: new rock, new prediction, but the wells stay where they were
    depths = c.injector_depth.value, c.producer_depth.value
    wells = scenario.injector_zx, scenario.producer_zx
    seed = next(
        s for s in range(1, 50) if not channel_mask(explorer.space.grid, c.geology_params(), s)[wells[0]]
    )
    c.seed.value = seed
    np.testing.assert_allclose(_image(v.rock), explorer.permeability_md)
    assert (c.injector_depth.value, c.producer_depth.value) == depths
    assert (explorer.scenario.injector_zx, explorer.scenario.producer_zx) == wells
    assert explorer.scenario.seed == seed
    # ... and the banner says, before any simulation, that the injector now lies outside the channel
    assert explorer.trust.level == "warning"
    assert "Outside the surrogate's training distribution" in explorer.trust_text
    assert "injector" in explorer.trust_text and "channel" in explorer.trust_text
    # the user asks for the wells in the channel: they move, and the status says from where to where
    explorer.wells_into_channel()
    mask = channel_mask(explorer.space.grid, c.geology_params(), seed)
    assert mask[explorer.scenario.injector_zx] and mask[explorer.scenario.producer_zx]
    assert explorer.status_text.startswith("wells completed at the channel centre: injector ")
    assert f"→ {c.injector_depth.value:.0f} m" in explorer.status_text
    assert explorer.trust.level == "info" and "inside" in explorer.trust_text
    assert v.rock.wells_source.data["depth"][0] == explorer.space.grid.z_m[explorer.scenario.injector_zx[0]]


def test_gaussian_geology_on_a_channel_model_is_flagged_before_simulating(explorer):
    c = explorer.controls
    wells = explorer.scenario.injector_zx, explorer.scenario.producer_zx
    c.geology.value = "gaussian"
    shown = [box for box in c._param_column.children if box.layout.display != "none"]
    assert len(shown) == 1 and shown[0].children[0] is c.params["gaussian"]["geometric_mean_md"]
    k = explorer.permeability_md
    assert np.unique(k).size == k.size  # a continuous field, not two facies
    params = c.geology_params()
    assert explorer.scenario.space.geology == "gaussian" and explorer.scenario.geology_params == params
    assert (explorer.scenario.injector_zx, explorer.scenario.producer_zx) == wells  # wells stay
    np.testing.assert_allclose(_image(explorer.views.rock), k)
    report = explorer.domain_report()
    assert not report.ok and explorer.trust.level == "warning"
    assert explorer.trust.lines[1:] == tuple(report.reasons)
    assert "not channel geology" in explorer.trust_text
    assert explorer.simulation is None  # said before anyone pressed Simulate
    c.params["gaussian"]["len_scale_m"].value = c.params["gaussian"]["len_scale_m"].max
    assert explorer.scenario.geology_params.len_scale_m == c.params["gaussian"]["len_scale_m"].max
    assert not np.array_equal(explorer.permeability_md, k)
    assert "cannot" not in explorer.status_text


def test_engineering_units_rate_as_mass_and_injected_vs_stored_mass(explorer):
    c, v = explorer.controls, explorer.views
    c.rate.value = 100.0
    density = explorer.space.simulation.fluids.co2_density_kg_m3
    assert density == 700.0
    assert "= 70.0 t/day = 0.0256 Mt/yr CO2<br>at 700 kg/m³: 70 kt in 1000 d" in c.rate_mass.value
    times = np.asarray(TINY_TIMES_DAYS)
    np.testing.assert_allclose(v.mass.line_data("injected")[1], injected_mass_t(times, 100.0, density))
    stored = stored_mass_t(explorer.predicted, explorer.space.porosity, explorer.space.grid, density)
    np.testing.assert_allclose(v.mass.line_data("stored (surrogate)")[1], stored)
    assert v.mass.drawn() == ["injected", "stored (surrogate)"]  # no simulator line before Simulate
    assert v.area.figure.title.text == "plume area in the vertical section"
    assert v.area.figure.yaxis[0].axis_label == "area (m² of section)"
    assert v.rock.colour_bar.title == "permeability (mD)" and v.rock.mapper.low > 0  # log scale
    assert v.rock.figure.yaxis[0].axis_label == "depth (m)"
    assert "inj. depth (m)" == c.injector_depth.description


def test_simulate_runs_the_real_simulator_in_the_background_and_shows_the_comparison(explorer):
    v = explorer.views
    for panel in (v.simulated, v.difference):  # no simulation: words, not an all-zero map
        assert panel.showing_placeholder and panel.placeholder_text == "no simulation yet: press Simulate"
        assert not panel.image.visible and not panel.colour_bar_shown
    assert v.area.drawn() == ["surrogate"] and v.extent.drawn() == ["surrogate"]
    progress = []
    explorer.controls.progress.observe(lambda change: progress.append(change["new"]), "value")
    explorer.controls.time.value = 6
    future = explorer.simulate()
    assert not future.done()  # simulate() returned while the simulator runs in its thread
    assert explorer.simulate() is future  # one simulation at a time
    assert explorer.controls.simulate.disabled
    simulated = future.result(timeout=60)

    s = explorer.scenario
    reference = simulate(explorer.permeability_md, explorer.space.porosity, s.config).saturation
    np.testing.assert_array_equal(simulated, reference)
    assert progress == [t / TINY_TIMES_DAYS[-1] for t in TINY_TIMES_DAYS[1:]]  # per report time
    assert not explorer.controls.simulate.disabled

    assert _shown_title(v.simulated) == "simulator: CO2 saturation at 600 d"
    np.testing.assert_array_equal(_image(v.simulated), reference[6].astype(np.float32))
    assert v.difference.figure.title.text == "difference: surrogate − simulator"
    assert v.difference.note_text.startswith("at 600 d: rel. L2 error")
    difference = (explorer.predicted[6] - reference[6]).astype(np.float32)  # images go out as float32
    np.testing.assert_array_equal(_image(v.difference), difference)
    overall = relative_error(explorer.predicted, reference)
    assert f"{overall:.1%} over all times" in explorer.status_text
    assert v.area.drawn() == ["surrogate", "simulator"]
    np.testing.assert_array_equal(
        v.area.line_data("simulator")[1], plume_area_m2(reference, explorer.space.grid, s.injector_zx)
    )
    assert v.mass.drawn() == ["injected", "stored (surrogate)", "stored (simulator)"]

    explorer.controls.rate.value = explorer.controls.rate.min  # the simulation no longer applies
    assert v.simulated.placeholder_text == "scenario changed: press Simulate"
    assert v.simulated.showing_placeholder and v.difference.showing_placeholder
    assert v.area.drawn() == ["surrogate"] and "stored (simulator)" not in v.mass.drawn()
    explorer.controls.rate.value = s.rate_m3_per_day  # back to the simulated scenario
    np.testing.assert_array_equal(_image(v.simulated), reference[6].astype(np.float32))
    assert v.area.drawn() == ["surrogate", "simulator"]


def test_static_figure_draws_what_the_panels_hold(explorer):
    figure = explorer.static_figure()
    titles = [ax.get_title() for ax in figure.axes if ax.get_title()]
    assert titles[:4] == [
        "permeability and wells",
        "surrogate: CO2 saturation at 1000 d",
        "simulator: CO2 saturation",  # no note: a placeholder says there is no simulation
        "difference: surrogate − simulator",
    ]
    texts = [t.get_text() for ax in figure.axes for t in ax.texts]
    assert texts.count("no simulation yet: press Simulate") == 2
    rock = figure.axes[0]
    np.testing.assert_allclose(rock.images[0].get_array(), explorer.permeability_md)


def test_missing_or_mismatched_runs_are_explained(run_dir, tmp_path):
    with pytest.raises(ValueError, match="no run directory given: train a surrogate with `ccs-fno train"):
        ScenarioExplorer.from_run(None)
    with pytest.raises(FileNotFoundError, match="holds no trained surrogate \\(model.pt\\)"):
        ScenarioExplorer.from_run(tmp_path)
    with pytest.raises(FileNotFoundError, match="nowhere.zarr is not there: pass store=PATH"):
        ScenarioExplorer.from_run(run_dir, tmp_path / "nowhere.zarr")

    coarse = tmp_path / "coarse.zarr"
    create_store(coarse, default_space("channel", 8, report_times_days=TINY_TIMES_DAYS), 0, 4)
    with pytest.raises(ValueError, match=r"run's grid \(16 x 16 cells of 60 m.*store's \(8 x 8 cells"):
        ScenarioExplorer.from_run(run_dir, coarse)
    other_times = tmp_path / "times.zarr"
    create_store(other_times, default_space("channel", 16), 0, 4)
    with pytest.raises(ValueError, match="predicts 11 report times .* store reports 51"):
        ScenarioExplorer.from_run(run_dir, other_times)

    config = json.loads((run_dir / "config.json").read_text())
    assert ScenarioExplorer.from_run(run_dir, config["store"]).space.grid.shape == (16, 16)


# -- the calibrated error band ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def calibrated(run_dir, tmp_path_factory):
    """A copy of the tiny run with a calibration.nc next to its model (as `ccs-fno calibrate` leaves)."""
    copy = tmp_path_factory.mktemp("calibrated") / "run"
    shutil.copytree(run_dir, copy)
    app = ScenarioExplorer.from_run(run_dir)
    fit_calibration(app.space.grid, TINY_TIMES_DAYS).save(copy)
    app.close()
    return copy


def test_the_calibrated_90_percent_band_is_shown_for_the_shown_time(calibrated):
    explorer = ScenarioExplorer.from_run(calibrated)
    cal, v, c = Calibration.load(calibrated), explorer.views, explorer.controls
    try:
        assert explorer.calibration is not None
        assert explorer.status_text.endswith("; 90 % conformal band from 10 held-out simulations")
        assert v.rows[1] == [v.area, v.extent, v.mass, v.band]
        times = np.asarray(TINY_TIMES_DAYS)
        for step in (len(times) - 1, 4):
            c.time.value = step
            t = times[step]
            assert _shown_title(v.band) == f"surrogate ± 90 % band at {t:g} d"
            np.testing.assert_array_equal(_image(v.band), cal.band(0.9, time_days=t).values)
            assert v.band.colour_bar.title == "90 % band half-width (saturation)"
        p, cell = explorer.predicted, explorer.scenario.injector_zx
        for panel, curve, width in (
            (v.area, plume_area_m2(p, explorer.space.grid, cell), cal.area_band(0.9)),
            (v.extent, plume_extent_m(p, explorer.space.grid, cell), cal.extent_band(0.9)),
        ):
            assert panel.drawn() == ["surrogate", "90 % band"]
            _, lower, upper = panel.band_data("90 % band")
            band = {"lower": lower, "upper": upper}
            w = width.sel(time=400.0, method="nearest").item()
            assert w > 0
            assert band["upper"][4] == curve[4] + w and band["lower"][4] == max(curve[4] - w, 0.0)
            np.testing.assert_array_equal(band["upper"], curve + width.values)
        figure = explorer.static_figure()  # the offline picture shades it too
        area = next(ax for ax in figure.axes if ax.get_title() == "plume area in the vertical section")
        assert [shade.get_label() for shade in area.collections] == ["90 % band"]
    finally:
        explorer.close()


def test_outside_the_training_distribution_the_band_does_not_apply(calibrated):
    explorer = ScenarioExplorer.from_run(calibrated)
    v, c = explorer.views, explorer.controls
    try:
        c.geology.value = "gaussian"
        assert not explorer.domain_report().ok
        assert "the 90 % band does not apply here: the scenario lies outside the training distribution" in (
            explorer.status_text
        )
        assert v.band.showing_placeholder
        assert v.band.placeholder_text == "no valid band outside the training distribution"
        assert v.area.drawn() == ["surrogate"] and v.extent.drawn() == ["surrogate"]
        c.geology.value = "channel"
        assert explorer.domain_report().ok and "does not apply" not in explorer.status_text
        assert not v.band.showing_placeholder and v.area.drawn() == ["surrogate", "90 % band"]
    finally:
        explorer.close()


def test_no_band_without_a_fitting_calibration(explorer, calibrated):
    assert explorer.calibration is None and explorer.views.band is None
    assert "band" not in explorer.status_text and explorer.views.area.drawn() == ["surrogate"]
    assert len(explorer.views.rows[1]) == 3
    other = fit_calibration(explorer.space.grid, TINY_TIMES_DAYS[:-1])  # other report times
    app = ScenarioExplorer(explorer.surrogate, explorer.space, other)
    try:
        assert app.calibration is None and app.views.band is None
        assert app.status_text.endswith("its calibration is of another grid or report times: no band shown")
    finally:
        app.close()
