"""ccs_fno.uq: conformal calibration (reference tests), streamed ensemble statistics against
in-memory ones, prior ensembles through a real tiny surrogate, the calibration split, bad input."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from stores import build_store
from tiny_run import TINY_TIMES_DAYS

from ccs_fno.data import heldout_split, read_saturation, read_store, split_samples
from ccs_fno.plume import plume_area_m2, plume_extent_m
from ccs_fno.surrogate import load_surrogate
from ccs_fno.training_data import TrainingData
from ccs_fno.uq import (
    Calibration,
    EnsembleStatistics,
    calibrate,
    conformal_quantile,
    conformal_rank,
    coverage,
    evaluate_calibration,
    field_rank,
    field_scores,
    min_calibration_samples,
    predict_store,
    prior_ensemble,
    store_ensemble,
)
from data_gen.scenarios import default_space, section_grid

# ---------------------------------------------------------------- conformal reference tests


@pytest.mark.parametrize("alpha", [0.05, 0.1, 0.2, 0.25, 1 / 3, 0.5, 0.9])
def test_conformal_rank_is_the_smallest_k_with_k_over_n_plus_1_at_least_1_minus_alpha(alpha):
    for n in range(1, 60):
        feasible = [k for k in range(1, n + 1) if k / (n + 1) >= 1 - alpha - 1e-12]
        if not feasible:
            with pytest.raises(
                ValueError, match=f"n >= ceil\\(1/alpha\\) - 1 = {math.ceil(1 / alpha - 1e-9) - 1}"
            ):
                conformal_rank(n, alpha)
            assert n < min_calibration_samples(alpha)
        else:
            assert conformal_rank(n, alpha) == feasible[0], (n, alpha)
            assert n >= min_calibration_samples(alpha)


def test_conformal_quantile_is_the_kth_smallest_score():
    rng = np.random.default_rng(0)
    scores = rng.exponential(size=(23, 5, 7))
    q = conformal_quantile(scores, 0.1)
    k = conformal_rank(23, 0.1)
    assert np.array_equal(q, np.sort(scores, axis=0)[k - 1])


def test_split_conformal_covers_exchangeable_residuals_and_the_naive_quantile_does_not():
    """Known distribution: residuals |N(0, 1)|, n = 10 calibration draws and one test draw per
    trial. The conformal band covers with probability exactly k / (n + 1) = 10/11 >= 0.9; the
    plain empirical 90 % quantile (k = 9) only 9/11."""
    rng = np.random.default_rng(1)
    trials, n, alpha = 40_000, 10, 0.1
    cal = np.abs(rng.normal(size=(n, trials)))
    test = np.abs(rng.normal(size=trials))
    band = conformal_quantile(cal, alpha)
    covered = (test <= band).mean()
    sigma = math.sqrt(0.9 * 0.1 / trials)
    assert covered >= 1 - alpha
    assert abs(covered - 10 / 11) < 4 * sigma
    naive = np.sort(cal, axis=0)[math.ceil(n * (1 - alpha)) - 1]
    assert (test <= naive).mean() < 1 - alpha - 4 * sigma


def test_field_rank_marginal_and_binomial_tail_against_brute_force():
    for n in (20, 57, 100):
        for delta in (0.1, 0.2):
            assert field_rank(n, delta) == conformal_rank(n, delta)
            for confidence in (0.8, 0.95):
                p = 1 - delta

                def tail(k, n=n, p=p):  # P(k-th order statistic of n uniforms >= p)
                    return sum(math.comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(k))

                expected = next((k for k in range(1, n + 1) if tail(k) >= confidence), None)
                if expected is None:
                    with pytest.raises(ValueError, match="it needs at least"):
                        field_rank(n, delta, confidence)
                else:
                    assert field_rank(n, delta, confidence) == expected


def test_sample_level_statement_holds_on_synthetic_fields():
    """Fields of 200 cells with heteroscedastic Gaussian errors; with lambda from 40 calibration
    fields, >= 1 - delta of test fields have >= 1 - alpha of their cells inside lambda."""
    rng = np.random.default_rng(2)
    alpha, delta, n, trials, cells = 0.1, 0.2, 40, 3000, 200
    spread = rng.uniform(0.5, 2.0, size=(trials, 1))  # per-field error scale: fields differ
    errors = rng.normal(size=(trials, n + 1, cells)) * spread[:, :, None]
    k = field_rank(n, delta)
    held = 0
    for t in range(trials):
        scores = field_scores(errors[t, :n], alpha)
        lam = np.sort(scores)[k - 1]
        frac = (np.abs(errors[t, n]) <= lam).mean()
        held += frac >= 1 - alpha
        # score <= lambda exactly when the field is covered on >= 1 - alpha of its cells
        assert (field_scores(errors[t, n : n + 1], alpha)[0] <= lam) == (frac >= 1 - alpha)
    assert held / trials >= 1 - delta - 3 * math.sqrt(delta * (1 - delta) / trials)


def test_calibration_fit_bands_save_load_and_coverage(tmp_path):
    rng = np.random.default_rng(3)
    grid = section_grid(8)
    n, times = 30, np.array([0.0, 50.0, 100.0])
    truth = rng.uniform(0.0, 0.6, size=(n, 3, 8, 8)).astype(np.float32)
    pred = truth + rng.normal(scale=0.05, size=truth.shape).astype(np.float32)
    cal = Calibration.fit(pred, truth, grid, (4, 0), times, levels=(0.9, 0.8), delta=0.2)
    assert cal.levels.tolist() == [0.8, 0.9]
    err = np.abs(pred - truth)
    for level in (0.8, 0.9):
        assert np.array_equal(cal.band(level).values, np.sort(err, axis=0)[conformal_rank(n, 1 - level) - 1])
    assert cal.band(0.9, time_days=48.0)["time"].item() == 50.0
    area_p = plume_area_m2(pred, grid, (4, 0))
    area_t = plume_area_m2(truth, grid, (4, 0))
    expected = np.sort(np.abs(area_p - area_t), axis=0)[conformal_rank(n, 0.1) - 1]
    np.testing.assert_allclose(cal.area_band(0.9).values, expected)
    # sample-level band: shape from the samples at even positions, lambda from the odd ones
    w = np.sort(err[0::2], axis=0)[conformal_rank(15, 0.1) - 1]
    w = np.maximum(w, w.max() * 1e-3)
    lam = np.sort(field_scores(err[1::2], 0.1, w))[field_rank(15, 0.2) - 1]
    np.testing.assert_allclose(cal.field_band(0.9).values, lam * w, rtol=1e-6)
    absolute = Calibration.fit(
        pred, truth, grid, (4, 0), times, levels=(0.9,), delta=0.2, field_shape="absolute"
    )
    lam = np.sort(field_scores(err, 0.1))[field_rank(n, 0.2) - 1]
    np.testing.assert_allclose(absolute.field_band(0.9).values, lam, rtol=1e-6)
    path = cal.save(tmp_path)
    assert path.name == "calibration.nc"
    again = Calibration.load(tmp_path)
    xr.testing.assert_allclose(again.data, cal.data)
    assert again.n_calibration == n
    assert again.grid == grid and again.fits(grid, times) and not again.fits(section_grid(16), times)
    assert not again.fits(grid, times[:2])
    interval = cal.interval(xr.DataArray(pred[0], dims=("time", "z", "x")), 0.9, max_saturation=0.8)
    assert float(interval["lower"].min()) >= 0 and float(interval["upper"].max()) <= 0.8
    cov = coverage(pred[:5], truth[:5], cal.band(0.9).values)
    assert cov.shape == (5,) and np.all((0 <= cov) & (cov <= 1))
    test_t = rng.uniform(0.0, 0.6, size=(12, 3, 8, 8)).astype(np.float32)
    test_p = test_t + rng.normal(scale=0.05, size=test_t.shape).astype(np.float32)
    table = evaluate_calibration(cal, test_p, test_t, grid, (4, 0))
    for level in (0.8, 0.9):
        row = table.sel(level=level)
        inside = np.abs(test_p - test_t) <= cal.band(level).values
        assert float(row["coverage"]) == pytest.approx(inside.mean())
        assert float(row["coverage_low"]) <= float(row["coverage"]) <= float(row["coverage_high"])
        frac = (np.abs(test_p - test_t) <= cal.field_band(level).values).reshape(12, -1).mean(axis=1)
        assert float(row["field_coverage"]) == pytest.approx((frac >= level).mean())
    with pytest.raises(ValueError, match=r"level 0.95 was not calibrated; calibrated levels: \[0.8, 0.9\]"):
        cal.band(0.95)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"levels": (1.0,)}, "level must lie strictly between 0 and 1, got 1.0"),
        ({"levels": (0.0,)}, "level must lie strictly between 0 and 1, got 0.0"),
        ({"delta": 0.0}, "delta must lie strictly between 0 and 1, got 0.0"),
        ({"delta": 1.5}, "delta must lie strictly between 0 and 1, got 1.5"),
        (
            {"levels": (0.99,)},
            r"5 calibration sample\(s\) cannot give a 0.99 coverage band.*n >= ceil\(1/alpha\) - 1 = 99",
        ),
        ({"delta": 0.1}, r"shape on 3 and lambda on 2 of the 5.*n >= ceil\(1/alpha\) - 1 = 9"),
        ({"delta": 0.1, "field_shape": "absolute"}, r"5 calibration sample\(s\).*ceil\(1/alpha\) - 1 = 9"),
        ({"field_shape": "cubic"}, r"field_shape must be one of \('pointwise', 'absolute'\), got 'cubic'"),
    ],
)
def test_calibration_refuses_bad_levels_and_too_few_samples(kwargs, match):
    grid = section_grid(4)
    fields = np.zeros((5, 2, 4, 4), np.float32)
    options = {"levels": (0.5,), "delta": 0.5, **kwargs}
    with pytest.raises(ValueError, match=match):
        Calibration.fit(fields, fields, grid, (1, 0), [0.0, 1.0], **options)


# ---------------------------------------------------------------- streamed statistics


def _blob_fields(rng, members, times, grid):
    """Random plume-like fields: a blob growing from the injector cell (z, 0)."""
    z = np.arange(grid.nz)[:, None]
    x = np.arange(grid.nx)[None, :]
    cells = np.stack([rng.integers(2, grid.nz - 2, members), np.zeros(members, int)], axis=1)
    radius = (
        rng.uniform(1, grid.nx / 2, size=(members, 1, 1, 1)) * np.linspace(0, 1, times)[None, :, None, None]
    )
    dist = np.sqrt((z - cells[:, 0, None, None]) ** 2 + x**2)[:, None]
    s = np.clip(0.7 * (1 - dist / np.maximum(radius, 1e-9)), 0, 0.7) + rng.uniform(
        0, 0.03, (members, times, *grid.shape)
    )
    return s.astype(np.float32), cells


def test_streamed_statistics_equal_the_in_memory_ones(tmp_path):
    rng = np.random.default_rng(4)
    grid = section_grid(12)
    times = np.array([0.0, 10.0, 20.0, 30.0])
    s, cells = _blob_fields(rng, 37, 4, grid)
    band = rng.uniform(0, 0.05, (4, *grid.shape)).astype(np.float32)
    stats = EnsembleStatistics(
        grid, times, thresholds=(0.05, 0.3), band=band, max_saturation=0.7, fields_path=tmp_path / "f.zarr"
    )
    for start, stop in ((0, 5), (5, 6), (6, 30), (30, 37)):  # uneven batches
        stats.add(s[start:stop], cells[start:stop])
    ds = stats.result()
    np.testing.assert_allclose(ds["mean_saturation"], s.astype(np.float64).mean(0), atol=1e-6)
    np.testing.assert_allclose(ds["std_saturation"], s.astype(np.float64).std(0), atol=1e-6)
    for j, thr in enumerate((0.05, 0.3)):  # brute force: count members above the threshold
        brute = np.zeros(s.shape[1:])
        for member in s:  # brute force: count the members above the threshold, cell by cell
            brute += member > thr
        brute /= len(s)
        np.testing.assert_allclose(ds["exceedance_probability"][j], brute, atol=1e-6)
        up = np.minimum(s + band, 0.7)
        np.testing.assert_allclose(
            ds["exceedance_probability_conservative"][j], (up > thr).mean(0), atol=1e-6
        )
    area = np.stack([plume_area_m2(s[m], grid, tuple(cells[m])) for m in range(37)])
    extent = np.stack([plume_extent_m(s[m], grid, tuple(cells[m])) for m in range(37)])
    np.testing.assert_array_equal(ds["plume_area_m2"], area)
    np.testing.assert_array_equal(ds["plume_extent_m"], extent)
    np.testing.assert_allclose(ds["plume_area_quantiles_m2"], np.quantile(area, [0.1, 0.5, 0.9], axis=0))
    np.testing.assert_allclose(ds["plume_extent_quantiles_m"], np.quantile(extent, [0.1, 0.5, 0.9], axis=0))
    assert ds["saturation"].chunks is not None  # dask-backed from the Zarr written batch by batch
    np.testing.assert_array_equal(ds["saturation"].values, s)
    ds.drop_vars("saturation").to_netcdf(tmp_path / "stats.nc", engine="scipy")  # exportable


def test_statistics_refuse_bad_thresholds_and_empty_ensembles():
    grid = section_grid(4)
    for bad in (-0.1, 1.5, [0.05, 2.0]):
        with pytest.raises(ValueError, match="a saturation threshold must lie in \\[0, 1\\], got"):
            EnsembleStatistics(grid, [0.0], thresholds=bad)
    with pytest.raises(ValueError, match="the ensemble is empty"):
        EnsembleStatistics(grid, [0.0]).result()


# ---------------------------------------------------------------- the split machinery


def test_calibration_split_leaves_existing_splits_bit_identical():
    """The shipped default surrogate recorded its split (1200 samples, fractions 0.0834, seed 0)
    before calibration splits existed; split_samples without one reproduces it exactly."""
    shipped = load_surrogate("default")
    split = split_samples(np.arange(1200), 0.0834, 0.0834, 0)
    assert sorted(split) == ["test", "train", "val"]
    for name in ("train", "val", "test"):
        assert np.array_equal(split[name], shipped.split[name])
    with_cal = split_samples(np.arange(1200), 0.0834, 0.0834, 0, calibration_fraction=0.1)
    assert np.array_equal(with_cal["val"], split["val"]) and np.array_equal(with_cal["test"], split["test"])
    assert with_cal["calibration"].size == 120 and with_cal["train"].size == 880
    parts = np.concatenate([with_cal[k] for k in ("train", "val", "test", "calibration")])
    assert np.array_equal(np.sort(parts), np.arange(1200))  # disjoint and complete
    held = heldout_split(np.arange(400), 0.5, 7)
    assert held["calibration"].size == 200 and np.intersect1d(held["calibration"], held["test"]).size == 0
    with pytest.raises(ValueError, match="calibration_fraction must be a number in \\[0, 1\\), got 1.0"):
        heldout_split(np.arange(10), 1.0, 0)
    with pytest.raises(
        ValueError, match="cannot be split into val \\(1\\), test \\(1\\), calibration \\(1\\)"
    ):
        split_samples(np.arange(3), 0.3, 0.3, 0, calibration_fraction=0.3)


# ---------------------------------------------------------------- a real tiny surrogate


@pytest.fixture(scope="module")
def tiny(tiny_run_dir, tmp_path_factory):
    """(surrogate, run dir, held-out store): the session's tiny run (shared: never written into)
    and 12 held-out simulations on its grid."""
    heldout = build_store(
        tmp_path_factory.mktemp("uq") / "heldout.zarr", 12, 9001, TINY_TIMES_DAYS, resolution=16
    )
    return load_surrogate(tiny_run_dir), tiny_run_dir, heldout


def test_calibrate_a_real_surrogate_on_a_heldout_store_and_save_it_next_to_it(tiny, tmp_path):
    surrogate, shared_run, heldout = tiny
    run_dir = shutil.copytree(shared_run, tmp_path / "run")  # the shared run stays as it is
    split = heldout_split(read_store(heldout).done_indices, 0.75, 0)
    cal = calibrate(surrogate, heldout, split["calibration"], levels=(0.8,), delta=0.25)
    pred, truth = predict_store(surrogate, heldout, split["calibration"])
    k = conformal_rank(9, 0.2)
    np.testing.assert_allclose(cal.band(0.8).values, np.sort(np.abs(pred - truth), axis=0)[k - 1])
    assert cal.source["samples"] == split["calibration"].tolist()
    cal.save(run_dir)
    assert Calibration.load(run_dir).band(0.8).shape == (len(TINY_TIMES_DAYS), 16, 16)
    with pytest.raises(ValueError, match=r"9 calibration sample\(s\) cannot give a 0.95 coverage band"):
        calibrate(surrogate, heldout, split["calibration"], levels=(0.95,))


def test_prior_ensemble_streams_what_the_surrogate_predicts_member_by_member(tiny, tmp_path):
    surrogate, _, heldout = tiny
    space = read_store_space(heldout)
    ds = prior_ensemble(
        surrogate,
        10,
        space,
        master_seed=9001,
        thresholds=(0.05, 0.2),
        batch_size=4,
        fields_path=tmp_path / "m.zarr",
    )
    # the first members of master seed 9001 are the held-out store's scenarios: same inputs
    summary = read_store(heldout)
    from ccs_fno.data import read_fields

    k, phi = read_fields(summary, range(10))
    pred = surrogate.predict(
        k,
        rate_m3_per_day=summary.rate_m3_per_day[:10],
        injector_zx=summary.injector_zx[:10],
        producer_zx=summary.producer_zx[:10],
        porosity=phi,
    ).values
    np.testing.assert_allclose(ds["saturation"].values, pred, atol=1e-6)
    np.testing.assert_allclose(ds["mean_saturation"], pred.mean(0), atol=1e-6)
    np.testing.assert_allclose(
        ds["exceedance_probability"].sel(threshold=0.2), (pred > 0.2).mean(0), atol=1e-6
    )
    np.testing.assert_allclose(ds["rate_m3_per_day"], summary.rate_m3_per_day[:10])
    mc = store_ensemble(heldout, range(10))
    truth = read_saturation(summary, range(10))
    np.testing.assert_allclose(
        mc["exceedance_probability"].sel(threshold=0.05), (truth > 0.05).mean(0), atol=1e-6
    )
    seen = []
    stopped = prior_ensemble(
        surrogate,
        10,
        space,
        batch_size=3,
        progress=lambda d, t: seen.append((d, t)),
        should_stop=lambda: len(seen) >= 2,
    )
    assert seen == [(3, 10), (6, 10)] and stopped.attrs["cancelled"] == 1 and stopped.sizes["member"] == 6


def read_store_space(path: Path):
    from data_gen.store import read_config

    return read_config(path).space


def test_prior_ensemble_conservative_variant_and_bad_input(tiny):
    surrogate, run_dir, heldout = tiny
    space = read_store_space(heldout)
    split = heldout_split(read_store(heldout).done_indices, 0.75, 0)
    cal = calibrate(surrogate, heldout, split["calibration"], levels=(0.8,), delta=0.25)
    ds = prior_ensemble(surrogate, 6, space, calibration=cal, level=0.8)
    cons, plain = ds["exceedance_probability_conservative"], ds["exceedance_probability"]
    assert bool((cons >= plain).all())  # raising every field can only add exceedances
    assert bool((ds["plume_area_conservative_quantiles_m2"] >= ds["plume_area_quantiles_m2"] - 1e-9).all())
    for bad in (0, -3):
        with pytest.raises(ValueError, match=f"n_members must be an int >= 1, got {bad}"):
            prior_ensemble(surrogate, bad, space)
    with pytest.raises(ValueError, match="a saturation threshold must lie in \\[0, 1\\], got 1.2"):
        prior_ensemble(surrogate, 2, space, thresholds=(1.2,))
    with pytest.raises(
        ValueError, match="the scenario space is on a 32x32 grid.*surrogate predicts on 16x16"
    ):
        prior_ensemble(surrogate, 2, default_space("channel", 32, report_times_days=TINY_TIMES_DAYS))


def test_surrogate_and_store_on_different_grids_are_refused(tiny, tmp_path):
    surrogate, _, _ = tiny
    other = build_store(tmp_path / "coarse.zarr", 2, 1, TINY_TIMES_DAYS, resolution=8, samples_per_chunk=2)
    with pytest.raises(
        ValueError, match="is on a 8x8 grid of 120 m x 120 m cells; the surrogate predicts on 16x16"
    ):
        calibrate(surrogate, other, [0, 1], levels=(0.5,), delta=0.5)
    with pytest.raises(ValueError, match="is on a 8x8 grid"):
        predict_store(surrogate, other, [0, 1])


def test_training_data_keeps_a_calibration_split_through_restore(tiny):
    _, run_dir, heldout = tiny
    data = TrainingData.prepare(heldout, 0.1, 0.1, 0, calibration_fraction=0.25)
    assert data.split["calibration"].size == 3
    again = TrainingData.restore(heldout, data.split_lists(), data.normalisers)
    assert again.fingerprint() == data.fingerprint()
    plain = TrainingData.prepare(heldout, 0.1, 0.1, 0)
    assert "calibration" not in plain.split and "calibration" not in plain.fingerprint()["split_sha256"]


def notebook_05_parameters(run_dir: Path, root: Path) -> dict:
    """Tiny papermill parameters of notebook 05 (also used by the browser test of the app):
    16 held-out simulations (8 calibrate), an 80 % band, an 8-member prior."""
    return {
        "run_dir": str(run_dir),
        "heldout_path": str(root / "heldout.zarr"),
        "n_heldout": 16,
        "levels": [0.8],
        "delta": 0.25,
        "n_members": 8,
        "batch_size": 4,
        "out_dir": str(root / "uq"),
        "figures_dir": str(root / "figures"),
    }


def test_notebook_05_runs_headless_on_the_tiny_surrogate(tiny, tmp_path):
    import nbformat
    import papermill

    _, run_dir, _ = tiny
    notebooks = Path(__file__).resolve().parents[1] / "notebooks"
    output = tmp_path / "05.ipynb"
    papermill.execute_notebook(
        notebooks / "05_uncertainty.ipynb",
        output,
        parameters=notebook_05_parameters(run_dir, tmp_path),
        cwd=str(notebooks),
        progress_bar=False,
        execution_timeout=300,
    )
    text = "".join(
        out.get("text", "") + out.get("data", {}).get("text/plain", "")
        for cell in nbformat.read(output, as_version=4).cells
        for out in cell.get("outputs", [])
    )
    assert "P10/P50/P90 plume area at the last time" in text
    assert Calibration.load(tmp_path / "uq").n_calibration == 8
    prior = xr.open_dataset(tmp_path / "uq" / "prior.nc", engine="scipy")
    assert prior.sizes["member"] == 8 and "exceedance_probability_conservative" in prior
    for name in ("uq_prior_maps", "uq_prior_plume_area"):  # offline figures: self-contained HTML + PNG
        assert (tmp_path / "figures" / f"{name}.html").stat().st_size > 0
        assert (tmp_path / "figures" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"


# ---------------------------------------------------------------- posterior (RML)


@pytest.fixture(scope="module")
def rml_case(tiny):
    from ccs_fno.inversion import (
        InversionConfig,
        MonitoringWells,
        ObservationDesign,
        draw_prior,
        synthesize_observations,
        truth_from_store,
    )

    surrogate, _, heldout = tiny
    truth = truth_from_store(heldout, 0)
    design = ObservationDesign(wells=MonitoringWells(times_days=(200.0, 400.0, 600.0)), noise_std=0.02)
    obs = synthesize_observations(truth, design, seed=1)
    prior = draw_prior(read_store_space(heldout), 12, master_seed=77)
    config = InversionConfig(parameterisation="pca", n_modes=4, iterations=3)
    return surrogate, obs, prior, config


def test_rml_members_are_inversions_of_perturbed_data_from_recentred_priors(rml_case):
    from ccs_fno.inversion import invert
    from ccs_fno.uq import perturb_observations, posterior_ensemble, recentred_prior

    surrogate, obs, prior, config = rml_case
    seen = []
    ds = posterior_ensemble(surrogate, obs, prior, 3, config, seed=5, progress=lambda d, t: seen.append(d))
    assert seen == [1, 2, 3] and ds.attrs["kind"] == "posterior"
    draws = np.random.default_rng(5).choice(12, size=3, replace=False)
    assert ds["prior_member"].values.tolist() == draws.tolist()
    forecasts = []
    for j, draw in enumerate(draws):  # the same members, one by one
        result = invert(
            surrogate,
            perturb_observations(obs, 6 + j),
            recentred_prior(prior, prior.log_permeability[draw]),
            config,
        )
        forecasts.append(result["forecast_saturation"].values)
        np.testing.assert_allclose(ds["log_permeability"][j], result["log_permeability"], atol=1e-6)
    forecasts = np.stack(forecasts)
    np.testing.assert_allclose(ds["mean_saturation"], forecasts.mean(0), atol=1e-6)
    np.testing.assert_allclose(
        ds["exceedance_probability"].sel(threshold=0.05), (forecasts > 0.05).mean(0), atol=1e-6
    )


def test_perturbed_observations_and_recentred_prior(rml_case):
    from ccs_fno.uq import perturb_observations, recentred_prior

    _, obs, prior, _ = rml_case
    noise = np.concatenate(
        [
            (perturb_observations(obs, s)["well_saturation"] - obs["well_saturation"]).values.ravel()
            for s in range(20)
        ]
    )
    assert abs(noise.mean()) < 4 * 0.02 / np.sqrt(noise.size)
    assert noise.std() == pytest.approx(0.02, rel=0.06)
    assert np.array_equal(perturb_observations(obs, 3)["well_saturation_clean"], obs["well_saturation_clean"])
    centre = prior.log_permeability[4]
    moved = recentred_prior(prior, centre)
    np.testing.assert_allclose(moved.mean(), centre, atol=1e-9)
    a, b = prior.modes(3), moved.modes(3)
    np.testing.assert_allclose(np.abs((a.basis * b.basis).sum(axis=(1, 2))), 1.0, atol=1e-6)  # same modes
    np.testing.assert_allclose(a.std, b.std, rtol=1e-9)


def test_posterior_bad_input(rml_case):
    from dataclasses import replace

    from ccs_fno.uq import posterior_ensemble

    surrogate, obs, prior, config = rml_case
    with pytest.raises(ValueError, match="a posterior needs observations"):
        posterior_ensemble(surrogate, None, prior, 3, config)
    with pytest.raises(ValueError, match="n_members must be an int >= 1, got 0"):
        posterior_ensemble(surrogate, obs, prior, 0, config)
    with pytest.raises(
        ValueError, match="13 RML members need at least as many prior draws; the prior has 12"
    ):
        posterior_ensemble(surrogate, obs, prior, 13, config)
    with pytest.raises(ValueError, match="use InversionConfig\\(restarts=1\\), got restarts=2"):
        posterior_ensemble(surrogate, obs, prior, 2, replace(config, restarts=2))
    empty = obs.drop_vars([v for v in obs.data_vars if v.startswith("well_saturation")])
    with pytest.raises(ValueError, match="hold no observed data"):
        posterior_ensemble(surrogate, empty, prior, 2, config)


def test_a_run_trained_with_a_calibration_split_never_trains_on_it(tiny, tmp_path):
    from ccs_fno.cli import main

    _, run_dir, _ = tiny
    store = run_dir.parent / "store.zarr"
    new = tmp_path / "run"
    options = ["--epochs", "1", "--batch-size", "4", "--device", "cpu", "--val-fraction", "0.125"]
    options += ["--test-fraction", "0.125", "--calibration-fraction", "0.25", "--width", "8", "--modes", "4"]
    assert main(["train", str(store), "--run-dir", str(new), *options]) in (0, None)
    surrogate = load_surrogate(new)
    split = surrogate.split
    assert split["calibration"].size == 2 and split["train"].size == 4
    assert (
        np.intersect1d(
            split["calibration"], np.concatenate([split[k] for k in ("train", "val", "test")])
        ).size
        == 0
    )
    expected = split_samples(np.arange(8), 0.125, 0.125, 0, calibration_fraction=0.25)
    assert all(np.array_equal(split[k], expected[k]) for k in expected)
    cal = calibrate(surrogate, store, split["calibration"], levels=(0.5,), delta=0.5, field_shape="absolute")
    assert cal.source["samples"] == split["calibration"].tolist()
    with pytest.raises(ValueError, match="trained or selected this surrogate"):
        calibrate(surrogate, store, split["train"][:2], levels=(0.5,), delta=0.5)
