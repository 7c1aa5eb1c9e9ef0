"""Inversion through the surrogate: observations, operator, priors, regularisers, gradients,
recovery, progress/cancel, the result Dataset, simulator verification and bad input.

One tiny real run (16x16 store, an FNO trained for 20 epochs: ``responsive_run_dir``, shared with
the inversion app's test) serves the module."""

from __future__ import annotations

import copy
import json
import math
import threading

import numpy as np
import pytest
import torch
import xarray as xr

from ccs_fno.data import read_store
from ccs_fno.inversion import (
    InversionConfig,
    InversionProblem,
    MonitoringWells,
    ObservationDesign,
    ObservationOperator,
    ObservationsError,
    Snapshots,
    draw_prior,
    inversion_report,
    invert,
    load_observations,
    log_permeability_rel_l2,
    permeability_snr_db,
    save_observations,
    save_result,
    synthesize_observations,
    tikhonov_gradient,
    total_variation,
    truth_from_store,
    validate_observations,
    verify,
)
from ccs_fno.inversion.observations import truth_dataset
from ccs_fno.inversion.operator import interpolation_matrix
from ccs_fno.surrogate import load_surrogate
from data_gen.scenarios import default_space

pytestmark = pytest.mark.usefixtures("torch_one_thread")
N = 16  # the tiny grid


@pytest.fixture(scope="module")
def tiny(responsive_run_dir):
    """(store, surrogate, prior) on 16x16 with report times every 100 days; the FNO is trained
    long enough (20 epochs, ~10 s) for its output to follow the permeability."""
    run_dir = responsive_run_dir
    store = run_dir.parent / "store.zarr"
    prior = draw_prior(default_space("channel", resolution=N), 40, master_seed=777)
    return store, load_surrogate(run_dir), prior


@pytest.fixture(scope="module")
def truth(tiny):
    return truth_from_store(tiny[0], 1)


WELLS = ObservationDesign(
    wells=MonitoringWells(x_m=(300.0, 600.0), times_days=(200.0, 450.0)), noise_std=0.02
)
BOTH = ObservationDesign(
    wells=MonitoringWells(x_m=(300.0,), times_days=(500.0,), depths_m=(100.0, 500.0)),
    snapshots=Snapshots(times_days=(300.0,), smoothing_sigma_m=60.0, block_cells=3),
    noise_std=0.01,
)


def test_encode_torch_equals_encode_and_is_differentiable(tiny):
    _, surrogate, prior = tiny
    grid, norm = surrogate.grid, surrogate.normalisers
    k = np.exp(prior.log_permeability[:2])
    phi, rate = np.full((2, N, N), 0.25), np.array([70.0, 130.0])
    inj, prod = np.array([[3, 1], [8, 0]]), np.array([[5, 15], [9, 14]])
    expected = norm.encode(k, phi, rate, inj, prod, grid.z_m, grid.x_m)
    log_k = torch.tensor(np.log(k), requires_grad=True)
    rate_t = torch.tensor(rate, requires_grad=True)
    got = norm.encode_torch(log_k, rate_t, phi, inj, prod, grid.z_m, grid.x_m)
    np.testing.assert_allclose(got.detach().numpy(), expected, rtol=1e-6, atol=1e-6)
    got[:, 0].sum().backward()
    np.testing.assert_allclose(log_k.grad.numpy(), 1.0 / norm.log_permeability.std)
    assert rate_t.grad is None or torch.all(rate_t.grad == 0)


def test_interpolation_matrix_is_exact_for_linear_time_and_identity_on_report_times():
    report = np.array([0.0, 100.0, 250.0, 1000.0])
    times = np.array([0.0, 50.0, 100.0, 175.0, 999.0, 1000.0])
    w = interpolation_matrix(times, report)
    np.testing.assert_allclose(w @ (3.0 * report + 2.0), 3.0 * times + 2.0)
    np.testing.assert_allclose(w.sum(axis=1), 1.0)
    np.testing.assert_array_equal(interpolation_matrix(report, report), np.eye(4))


def test_operator_reads_cells_blocks_and_smooths_with_known_values(truth):
    """Synthesised data on an analytic saturation s(t, z, x) = (t / 1000) * (z_index + 2 x_index) / 48."""
    t = truth["time"].values
    zi, xi = np.meshgrid(np.arange(N), np.arange(N), indexing="ij")
    analytic = truth.copy()
    analytic["saturation"] = (("time", "z", "x"), (t[:, None, None] / 1000.0) * (zi + 2 * xi)[None] / 48.0)
    obs = synthesize_observations(analytic, BOTH, seed=0)
    clean = obs["well_saturation_clean"].values
    # the well at x = 300 m is column 5; depths 100 m and 500 m are rows 1 and 8 (60 m cells)
    np.testing.assert_allclose(clean, 0.5 * np.array([1 + 10, 8 + 10]) / 48.0)
    snap = obs["snapshot_saturation_clean"]
    assert snap.shape == (1, 6, 6)  # 16 cells in blocks of 3: 5 whole blocks and one of 1
    # a linear field is unchanged by the normalised Gaussian away from the edges; block means
    # of a linear field are its value at the block centre
    inner = snap.values[0, 1:4, 1:4]
    centres = np.arange(1, 4) * 3 + 1.0
    np.testing.assert_allclose(inner, 0.3 * (centres[:, None] + 2 * centres[None, :]) / 48.0, rtol=1e-9)
    np.testing.assert_allclose(snap["snapshot_z"].values[[0, -1]], [90.0, 15 * 60.0 + 30.0])
    # noise: the stated standard deviation, drawn from the seed
    noise = obs["well_saturation"].values - clean
    again = synthesize_observations(analytic, BOTH, seed=0)
    np.testing.assert_array_equal(again["well_saturation"].values, obs["well_saturation"].values)
    assert not np.array_equal(synthesize_observations(analytic, BOTH, seed=1)["well_saturation"], noise)


def test_regularisers_on_analytic_fields():
    nz, nx, a, b = 5, 7, 0.3, -0.2
    zi, xi = np.meshgrid(np.arange(nz), np.arange(nx), indexing="ij")
    ramp = torch.tensor(a * xi + b * zi, dtype=torch.float64)
    faces = (nz - 1) * nx + nz * (nx - 1)
    expected = 0.5 * (a**2 * nz * (nx - 1) + b**2 * (nz - 1) * nx) / faces
    assert float(tikhonov_gradient(ramp)) == pytest.approx(expected, rel=1e-12)
    h, eps = 1.5, 0.01  # a vertical step of height h: nz faces jump, all others are flat
    step = torch.tensor(np.where(xi >= 3, h, 0.0), dtype=torch.float64)
    assert float(total_variation(step, eps)) == pytest.approx(nz * (math.sqrt(h**2 + eps**2) - eps) / faces)
    assert float(total_variation(torch.zeros(nz, nx, dtype=torch.float64), eps)) == 0.0


def test_prior_modes_reproduce_projections_and_whiten_the_ensemble(tiny):
    prior = tiny[2]
    n = prior.n_samples
    full = prior.modes(n - 1)
    c = full.coefficients(prior.log_permeability)  # (n, n - 1)
    np.testing.assert_allclose(c.mean(axis=0), 0.0, atol=1e-9)
    np.testing.assert_allclose(c.var(axis=0, ddof=1), 1.0, rtol=1e-9)  # unit prior variance
    for i in (0, 7):
        np.testing.assert_allclose(full.field(c[i]), prior.log_permeability[i], atol=1e-9)
    basis = full.basis.reshape(n - 1, -1)
    np.testing.assert_allclose(basis @ basis.T, np.eye(n - 1), atol=1e-9)
    leading = prior.modes(5)  # leading modes: the first coefficients of the full set
    np.testing.assert_allclose(
        np.abs(leading.coefficients(prior.log_permeability)), np.abs(c[:, :5]), atol=1e-9
    )
    with pytest.raises(ValueError, match=r"n_modes must be an integer in \[1, 39\].*got 40"):
        prior.modes(40)


@pytest.mark.parametrize("parameterisation", ["cellwise", "pca"])
def test_objective_gradient_matches_central_differences(tiny, truth, parameterisation):
    _, surrogate, prior = tiny
    double = copy.copy(surrogate)
    double.model = copy.deepcopy(surrogate.model).double()
    obs = synthesize_observations(truth, BOTH, seed=3)
    config = InversionConfig(
        parameterisation=parameterisation, n_modes=10, regulariser="tv", invert_rate=True
    )
    problem = InversionProblem.build(double, obs, prior, config)
    rng = np.random.default_rng(0)
    theta = torch.tensor(problem.parameterisation.start(1, prior, rng), requires_grad=True)
    r = torch.tensor([0.3], dtype=torch.float64, requires_grad=True)
    objective, _, _ = problem.evaluate(theta, r)
    g_theta, g_r = torch.autograd.grad(objective, [theta, r])
    v, w = torch.from_numpy(rng.standard_normal(theta.shape)), 0.7
    eps = 1e-6
    with torch.no_grad():
        plus = problem.evaluate(theta + eps * v, r + eps * w)[0]
        minus = problem.evaluate(theta - eps * v, r - eps * w)[0]
    numeric = float(plus - minus) / (2 * eps)
    analytic = float((g_theta * v).sum() + g_r[0] * w)
    assert analytic == pytest.approx(numeric, rel=1e-5)
    assert abs(analytic) > 1e-8  # the objective does depend on the parameters


@pytest.fixture(scope="module")
def crime(tiny, truth):
    """Observations of a known field made by the surrogate itself (an "inverse crime": it tests
    the optimiser, not the surrogate): truth ln k = a field of the prior's 8 leading modes."""
    _, surrogate, prior = tiny
    modes = prior.modes(8)
    c_true = np.random.default_rng(5).standard_normal(8)
    k_true = np.exp(modes.field(c_true))
    sat = surrogate.predict(
        k_true,
        rate_m3_per_day=float(truth["rate_m3_per_day"]),
        injector_zx=(truth["injector_z"].item(), truth["injector_x"].item()),
        producer_zx=(truth["producer_z"].item(), truth["producer_x"].item()),
    )
    fake = truth.copy()
    fake["permeability"] = (("z", "x"), k_true)
    fake["saturation"] = (("time", "z", "x"), sat.values.astype(np.float64))
    design = ObservationDesign(snapshots=Snapshots(times_days=(300.0, 600.0, 1000.0)), noise_std=0.002)
    return fake, synthesize_observations(fake, design, seed=2)


OUTSIDE = "ignore:the surrogate was asked about a scenario outside"  # predict() on non-channel fields


@pytest.mark.filterwarnings(OUTSIDE)
def test_inversion_recovers_a_known_field_better_than_the_start(tiny, crime):
    _, surrogate, prior = tiny
    fake, obs = crime
    seen = []
    config = InversionConfig(parameterisation="pca", n_modes=8, optimizer="lbfgs", iterations=30, restarts=2)
    result = invert(surrogate, obs, prior, config, progress=seen.append)
    report = inversion_report(result, fake)
    assert result.attrs["status"] == "completed"
    assert report["log_k_rel_l2"] < 0.5 * report["log_k_rel_l2_start"]
    assert report["snr_db"] > report["snr_db_start"] + 3.0
    # (the data are the clipped prediction, the fit the raw output: a small misfit remains)
    assert report["normalised_misfit"] < 0.15 * float(result["misfit_history"][0, 0])
    # progress: every iteration of both restarts, in order, with the numbers of the history
    assert [(p.restart, p.iteration) for p in seen] == [(r, i) for r in range(2) for i in range(31)]
    assert seen[5].misfit == pytest.approx(float(result["misfit_history"][0, 5]))
    best = json.loads(result.attrs["provenance"])["best_restart"]
    assert float(result["objective_history"][best, -1]) <= float(result["objective_history"][1 - best, -1])


def test_cellwise_adam_respects_bounds_and_lowers_the_misfit(tiny, crime):
    _, surrogate, prior = tiny
    _, obs = crime
    config = InversionConfig("cellwise", "tv", weight=0.01, bounds_md=(25.0, 100.0), iterations=40)
    result = invert(surrogate, obs, prior, config)
    k = result["permeability"].values
    assert k.min() >= 25.0 and k.max() <= 100.0
    history = result["misfit_history"].values[0]
    assert history[-1] < 0.5 * history[0]


@pytest.mark.filterwarnings(OUTSIDE)
def test_result_dataset_agrees_with_predict_and_round_trips(tiny, truth, tmp_path):
    _, surrogate, prior = tiny
    obs = synthesize_observations(truth, BOTH, seed=4)
    config = InversionConfig(iterations=5, invert_rate=True)
    result = invert(surrogate, obs, prior, config)
    expected_vars = ["permeability", "start_permeability", "forecast_saturation", "misfit_history"]
    expected_vars += ["predicted_well_saturation", "predicted_snapshot_saturation", "well_saturation"]
    assert set(expected_vars) <= set(result.data_vars)
    assert result["permeability"].attrs["units"] == "mD" and result.attrs["status"] == "completed"
    # the forecast is the public predict() of the result's model; the predicted data are the
    # operator applied to the raw model output for the numpy encoding of that model
    wells = {
        "injector_zx": (obs["injector_z"].item(), obs["injector_x"].item()),
        "producer_zx": (obs["producer_z"].item(), obs["producer_x"].item()),
    }
    k, rate = result["permeability"].values, float(result["rate_m3_per_day"])
    sat = surrogate.predict(k, rate_m3_per_day=rate, **wells)
    np.testing.assert_allclose(result["forecast_saturation"].values, sat.values, atol=2e-5)
    # the result says where its model lies against the training distribution, as predict does
    assert result.attrs["out_of_domain"] == sat.attrs["out_of_domain"]
    grid = surrogate.grid
    x = surrogate.normalisers.encode(
        k[None], np.full((1, N, N), 0.25), np.array([rate]), np.array([wells["injector_zx"]]),
        np.array([wells["producer_zx"]]), grid.z_m, grid.x_m,
    )  # fmt: skip
    with torch.no_grad():
        raw = surrogate.model(torch.from_numpy(x))[0].double().numpy()
    expected = ObservationOperator.build(obs, surrogate.times_days).apply_numpy(raw)
    for name, values in expected.items():
        np.testing.assert_allclose(result[f"predicted_{name}"].values, values, atol=2e-5)
    residual = (result["predicted_snapshot_saturation"] - result["snapshot_saturation"]) / 0.01
    residual_w = (result["predicted_well_saturation"] - result["well_saturation"]) / 0.01
    n = residual.size + residual_w.size
    chi2 = float((residual**2).sum() + (residual_w**2).sum()) / n
    assert float(result["normalised_misfit"]) == pytest.approx(chi2, rel=1e-4)
    provenance = json.loads(result.attrs["provenance"])
    assert provenance["settings"]["invert_rate"] is True and provenance["prior"]["master_seed"] == 777
    assert provenance["observations"]["n_data"] == n
    for name in ("r.nc", "r.zarr"):
        path = save_result(result, tmp_path / name)
        zarr = {"engine": "zarr", "consolidated": False} if name.endswith("zarr") else {}
        back = xr.open_dataset(path, **zarr).load()
        xr.testing.assert_allclose(back["permeability"], result["permeability"])
        assert back["well_name"].values.tolist() == result["well_name"].values.tolist()
        assert json.loads(back.attrs["provenance"]) == provenance


def test_progress_and_cancel_leave_a_usable_result(tiny, truth):
    _, surrogate, prior = tiny
    obs = synthesize_observations(truth, WELLS, seed=5)
    cancel = threading.Event()
    seen = []

    def progress(p):
        seen.append(p.iteration)
        if p.iteration == 3:
            cancel.set()

    result = invert(surrogate, obs, prior, InversionConfig(iterations=50, restarts=3), progress, cancel)
    assert result.attrs["status"] == "cancelled" and seen == [0, 1, 2, 3]
    history = result["misfit_history"].values
    assert (
        np.isfinite(history[0, :4]).all() and np.isnan(history[0, 4:]).all() and np.isnan(history[1:]).all()
    )
    assert np.isfinite(result["permeability"].values).all()


def test_verify_reproduces_the_store_simulation(tiny, truth):
    """verify() runs the real simulator: on the truth's own permeability it reproduces the
    saturation the store's generator simulated (float32 storage)."""
    _, surrogate, prior = tiny
    obs = synthesize_observations(truth, WELLS, seed=6)
    result = invert(surrogate, obs, prior, InversionConfig(iterations=1))
    result["permeability"] = truth["permeability"]
    confirmed = verify(result)
    assert confirmed.dims == ("time", "z", "x") and confirmed.attrs["simulator_steps"] > 0
    np.testing.assert_allclose(confirmed.values, truth["saturation"].values, atol=1e-6)
    start = verify(result, "start_permeability")
    assert np.abs(start.values - confirmed.values).max() > 0.05  # another rock, another plume


def test_metrics():
    k_true = np.full((4, 4), 100.0)
    assert permeability_snr_db(k_true * 1.1, k_true) == pytest.approx(20.0)
    assert permeability_snr_db(k_true * 2.0, k_true) == pytest.approx(0.0)
    assert log_permeability_rel_l2(k_true * math.e, k_true) == pytest.approx(1.0 / math.log(100.0))


def test_observation_files_round_trip(truth, tmp_path):
    obs = synthesize_observations(truth, BOTH, seed=7)
    for name in ("o.nc", "o.zarr", "new/dir/o.nc"):  # parent directories are made
        back = load_observations(save_observations(obs, tmp_path / name))
        xr.testing.assert_allclose(back[["well_saturation", "snapshot_saturation"]],
                                   obs[["well_saturation", "snapshot_saturation"]])  # fmt: skip
        assert back["well_name"].values.tolist() == obs["well_name"].values.tolist()
    csv = tmp_path / "logs.csv"
    rows = ["well,x_m,depth_m,time_days,saturation"]
    rows += [f"MW{i % 2},{300 + 300 * (i % 2)},{30.0 + 60 * i},{100.0 * (1 + i)},{0.1 * i}" for i in range(5)]
    csv.write_text("\n".join(rows) + "\n")
    site = {
        "grid": read_store_grid(truth),
        "rate_m3_per_day": 90.0,
        "injector_zx": (8, 0),
        "producer_zx": (8, 15),
        "noise_std": 0.03,
    }
    logs = load_observations(csv, **site)
    assert logs["well_saturation"].values.tolist() == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    assert logs["well_name"].values.tolist() == ["MW0", "MW1", "MW0", "MW1", "MW0"]
    assert float(logs["well_noise_std"]) == 0.03


def read_store_grid(truth):
    from ccs_fno.inversion.observations import observation_grid

    return observation_grid(truth)


def test_bad_input_names_the_value_and_what_is_allowed(tiny, truth, tmp_path):
    store, surrogate, prior = tiny
    with pytest.raises(
        ObservationsError, match=r"well_x_m = 2000 m .* outside the grid: allowed \[0, 960\) m"
    ):
        synthesize_observations(truth, ObservationDesign(wells=MonitoringWells(x_m=(2000.0,))), seed=0)
    obs = synthesize_observations(truth, WELLS, seed=0)
    late = obs.assign_coords(well_time_days=obs["well_time_days"] + 900.0)
    with pytest.raises(ObservationsError, match=r"time 1100 days lies outside .* allowed \[0, 1000\] days"):
        invert(surrogate, late, prior)
    for noise in (-0.02, float("nan")):
        with pytest.raises(
            ObservationsError, match=rf"noise_std must be a finite standard deviation > 0.*{noise}"
        ):
            ObservationDesign(wells=MonitoringWells(), noise_std=noise)
    nan = obs.copy(deep=True)
    nan["well_saturation"][3] = np.nan
    with pytest.raises(ObservationsError, match=r"well_saturation holds nan at index \(3,\)"):
        validate_observations(nan)
    with pytest.raises(ValueError, match=r"bounds must be finite and > 0 mD, got \(0.0, 100.0\)"):
        InversionConfig("cellwise", bounds_md=(0.0, 100.0))
    with pytest.raises(
        ValueError, match=r"bounds_md \(10.0, 100.0\) applies to the cellwise parameterisation"
    ):
        InversionConfig("pca", bounds_md=(10, 100))
    with pytest.raises(
        ObservationsError, match=r"is not an observations file: attrs\['schema'\] is 'ccs-fno-store'"
    ):
        load_observations(_copy_as_nc(store, tmp_path))
    with pytest.raises(ObservationsError, match=r"allowed file types are .nc, .zarr and .csv"):
        load_observations(_touch(tmp_path / "o.txt"))
    csv = _touch(tmp_path / "bad.csv", "well,x,z\nA,1,2\n")
    with pytest.raises(
        ObservationsError, match=r"header is \['well', 'x', 'z'\]; well logs need the columns"
    ):
        load_observations(csv, grid=surrogate.grid, rate_m3_per_day=1.0, injector_zx=(0, 0),
                          producer_zx=(1, 1), noise_std=0.1)  # fmt: skip
    other = truth_dataset(
        np.full((8, 8), 50.0), np.full((8, 8), 0.25), np.zeros((2, 8, 8)), (0.0, 1000.0),
        default_space("channel", resolution=8).grid, 100.0, (4, 0), (4, 7), {},
    )  # fmt: skip
    coarse = synthesize_observations(other, ObservationDesign(snapshots=Snapshots()), seed=0)
    with pytest.raises(
        ObservationsError, match=r"on a 8x8 grid of 120 m x 120 m cells; the surrogate was trained on 16x16"
    ):
        invert(surrogate, coarse, prior)


def _copy_as_nc(store, tmp_path):
    path = tmp_path / "store.nc"
    with xr.open_zarr(store, consolidated=False) as ds:
        ds[["rate_m3_per_day"]].assign_attrs(schema="ccs-fno-store").to_netcdf(path)
    assert read_store(store).grid.nz == N
    return path


def _touch(path, text=""):
    path.write_text(text)
    return path


def test_invert_notebook_runs_headless(tiny, tmp_path):
    """Notebook 04 with papermill on the tiny run: a truth from its store, wells + snapshots,
    a short inversion, simulator verification, the result exported and the figures saved."""
    from notebook_runs import notebook_outputs, run_notebook

    store, surrogate, _ = tiny
    run_dir = store.parent / "run"
    notebook = run_notebook(
        "04_invert_permeability.ipynb", tmp_path, run_dir=str(run_dir), truth_store=str(store),
        truth_index=1, iterations=20, prior_samples=30, n_modes=8, export=str(tmp_path / "result.nc"),
        figures_dir=str(tmp_path / "figures"),
    )  # fmt: skip
    text, mimes = notebook_outputs(notebook)
    assert "completed in" in text and "permeability SNR:" in text
    assert "1000-day plume, simulator, inverted: relative L2 vs truth" in text
    assert "application/vnd.holoviews_exec.v0+json" in mimes and "image/png" in mimes
    result = xr.load_dataset(tmp_path / "result.nc")
    assert result.attrs["schema"] == "ccs-fno-inversion" and result.sizes["iteration"] == 21
    assert validate_observations(load_observations(tmp_path / "observations.nc"))
    for name in ("04_permeability", "04_misfit_and_data", "04_forecast"):
        assert (tmp_path / "figures" / f"{name}.html").is_file()
        assert (tmp_path / "figures" / f"{name}.png").stat().st_size > 10_000
