"""The scenario explorer without a browser: plume metrics, controls -> surrogate -> Bokeh plot
data, the background simulator, and the messages for a missing or mismatched run."""

from __future__ import annotations

import json
from dataclasses import replace

import holoviews as hv
import numpy as np
import pytest
from bokeh.models import GlyphRenderer, Plot
from bokeh.models import Image as BokehImage
from tiny_run import TINY_TIMES_DAYS, build_tiny_run

from ccs_fno.widgets import ScenarioExplorer
from ccs_fno.widgets.plume import plume_area_m2, plume_extent_m, relative_error
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


def _figure(plot, title_start: str) -> Plot:
    figures = [f for f in plot.state.select({"type": Plot}) if f.title.text.startswith(title_start)]
    assert len(figures) == 1, [f.title.text for f in plot.state.select({"type": Plot})]
    return figures[0]


def _image(figure: Plot) -> np.ndarray:
    """The (z, x) data of the figure's image glyph, as Bokeh would send it to the browser."""
    (renderer,) = [
        r for r in figure.renderers if isinstance(r, GlyphRenderer) and isinstance(r.glyph, BokehImage)
    ]
    return np.asarray(renderer.data_source.data["image"][0])


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


def test_a_control_change_updates_the_plot_data_from_the_surrogate(explorer):
    plot = hv.renderer("bokeh").get_plot(explorer.views.layout)
    c = explorer.controls
    assert explorer.predicted.shape == (len(TINY_TIMES_DAYS), 16, 16)
    c.rate.value = c.rate.max
    scenario = explorer.current_scenario()
    expected = explorer.surrogate.predict(
        explorer.permeability_md,
        rate_m3_per_day=c.rate.max,
        injector_zx=scenario.injector_zx,
        producer_zx=scenario.producer_zx,
        porosity=explorer.space.porosity,
    ).values
    np.testing.assert_array_equal(explorer.predicted, expected)
    last = len(TINY_TIMES_DAYS) - 1
    figure = _figure(plot, "surrogate: CO2 saturation at 1000 d")
    np.testing.assert_array_equal(_image(figure), expected[last])

    c.time.value = 3
    assert figure.title.text == "surrogate: CO2 saturation at 300 d"
    np.testing.assert_array_equal(_image(figure), expected[3])

    c.seed.value = 5  # a new channel: new rock, wells re-completed in the channel, new prediction
    permeability = _image(_figure(plot, "permeability"))
    np.testing.assert_allclose(permeability, np.log10(explorer.permeability_md))
    grid, params = explorer.space.grid, explorer.controls.geology_params()
    mask = channel_mask(grid, params, 5)
    assert mask[explorer.scenario.injector_zx] and mask[explorer.scenario.producer_zx]
    assert explorer.scenario.seed == 5


def test_switching_to_gaussian_geology_draws_a_log_normal_field(explorer):
    plot = hv.renderer("bokeh").get_plot(explorer.views.layout)
    c = explorer.controls
    wells = explorer.scenario.injector_zx, explorer.scenario.producer_zx
    c.geology.value = "gaussian"
    assert c._geology_box.children[-1].children[0] is c.params["gaussian"]["geometric_mean_md"]
    k = explorer.permeability_md
    assert np.unique(k).size == k.size  # a continuous field, not two facies
    params = c.geology_params()
    assert explorer.scenario.geology == "gaussian" and explorer.scenario.geology_params == params
    assert (explorer.scenario.injector_zx, explorer.scenario.producer_zx) == wells  # wells stay
    np.testing.assert_allclose(_image(_figure(plot, "permeability")), np.log10(k))
    c.params["gaussian"]["len_scale_m"].value = c.params["gaussian"]["len_scale_m"].max
    assert explorer.scenario.geology_params.len_scale_m == c.params["gaussian"]["len_scale_m"].max
    assert not np.array_equal(explorer.permeability_md, k)
    assert "cannot" not in explorer.status_text


def test_simulate_runs_the_real_simulator_in_the_background_and_shows_the_comparison(explorer):
    plot = hv.renderer("bokeh").get_plot(explorer.views.layout)
    progress = []
    explorer.controls.progress.observe(lambda change: progress.append(change["new"]), "value")
    explorer.controls.time.value = 6
    future = explorer.simulate()
    assert not future.done()  # simulate() returned while the simulator runs in its thread
    assert explorer.simulate() is future  # one simulation at a time
    assert explorer.controls.simulate.disabled
    simulated = future.result(timeout=60)

    s = explorer.scenario
    config = replace(
        explorer.space.simulation,
        rate_m3_per_day=s.rate_m3_per_day,
        injector_zx=s.injector_zx,
        producer_zx=s.producer_zx,
    )
    reference = simulate(explorer.permeability_md, explorer.space.porosity, config).saturation
    np.testing.assert_array_equal(simulated, reference)
    assert progress == [t / TINY_TIMES_DAYS[-1] for t in TINY_TIMES_DAYS[1:]]  # per report time
    assert not explorer.controls.simulate.disabled

    np.testing.assert_array_equal(_image(_figure(plot, "simulator: CO2 saturation at 600 d")), reference[6])
    difference = _figure(plot, "difference: rel. L2 error")
    np.testing.assert_allclose(_image(difference), explorer.predicted[6] - reference[6], rtol=1e-6)
    overall = relative_error(explorer.predicted, reference)
    assert f"{overall:.1%} over all times" in explorer.status_text

    explorer.controls.rate.value = explorer.controls.rate.min  # the simulation no longer applies
    assert _figure(plot, "simulator: scenario changed, press Simulate")
    assert not _image(_figure(plot, "simulator")).any()
    explorer.controls.rate.value = s.rate_m3_per_day  # back to the simulated scenario
    np.testing.assert_array_equal(_image(_figure(plot, "simulator: CO2")), reference[6])


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
