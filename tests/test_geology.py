"""Tests of data_gen.geology: reproducibility, ensemble statistics, orientation and validation."""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
from dataclasses import replace

import gstools as gs
import numpy as np
import pytest

from data_gen import geology as geo
from data_gen.grid import Grid

# A 480 m x 480 m section at 30 m cells keeps GSTools fast; the default grid is checked elsewhere.
COARSE = Grid(nz=16, nx=16, dx_m=30.0, dz_m=30.0)
N_SIGMA = 4.0  # tolerance in standard errors: a two-sided 6e-5 false-alarm rate per check


def _log_fields(grid: Grid, params: geo.GaussianParams, seeds: range) -> np.ndarray:
    """Y = ln(k / geometric_mean) for each seed, shape (seed, z, x)."""
    return np.stack(
        [np.log(geo.gaussian_permeability(grid, params, s) / params.geometric_mean_md) for s in seeds]
    )


def _cell_covariance(grid: Grid, params: geo.GaussianParams) -> np.ndarray:
    """Model covariance between all pairs of cell centres, (N, N)."""
    x, z = np.meshgrid(grid.x_m, grid.z_m)
    pos = np.stack([x.ravel(), z.ravel()])
    lag = pos[:, :, None] - pos[:, None, :]
    return geo.covariance_model(params).cov_spatial(lag.reshape(2, -1)).reshape(lag.shape[1:])


def _lag_correlation(y: np.ndarray, dz: int, dx: int) -> float:
    """Ensemble correlation of zero-mean fields (seed, z, x) at lag (dz >= 0, dx) cells."""
    nz, nx = y.shape[1:]
    x0, x1 = max(0, -dx), nx - max(0, dx)
    a, b = y[:, : nz - dz, x0:x1], y[:, dz:, x0 + dx : x1 + dx]
    return float((a * b).mean() / (y**2).mean())


def _phase_roundoff_bound(grid: Grid, model, seed: int) -> float:
    """Bound on |separable sum - GSTools' sum| of one RandMeth field, in units of the field.

    The two sums differ only in how each phase k_i . iso(x, z) is rounded: GSTools rounds the
    isometrised position and then the dot product, the separable sum rounds a_i, b_i, the split
    of x or z and the angle sums. Each rounding is within eps of Psi_i = sum |k_di| |M_de| max
    |pos_e| (M the isometrisation); 8 eps (1 + Psi_i) per phase covers them and the absolute eps
    of cos, sin and their products. Mode i moves by at most sqrt(var (z_1i^2 + z_2i^2) / N) per
    radian of phase. Measured differences are 0.4 % to 11 % of this bound (heavy-tailed
    exponential spectra at the top, where one mode with a phase of ~1e4 rad dominates).
    """
    z_1, z_2, k = geo._randmeth_modes(model, geo._gstools_seed(seed))
    iso = np.abs(model.isometrize(np.eye(2)))
    psi = np.abs(k).T @ iso @ np.array([grid.x_m[-1], grid.z_m[-1]])
    rate = np.sqrt(model.var * (z_1**2 + z_2**2) / z_1.size)
    return 8.0 * np.finfo(np.float64).eps * float(np.sum(rate * (1.0 + psi)))


# --- reproducibility -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "params"),
    [
        ("channel", geo.default_params("channel", Grid(nz=24, nx=40))),
        ("gaussian", geo.GaussianParams()),
        ("gaussian", geo.GaussianParams(model="matern", nu=0.8, angle_deg=30.0)),
    ],
)
def test_same_seed_identical_other_seed_different(kind, params):
    grid = Grid(nz=24, nx=40)
    first = geo.permeability(kind, grid, params, 11)
    geo.permeability(kind, grid, params, 3)  # no hidden state between calls
    again = geo.permeability(kind, grid, params, 11)
    assert first.shape == (24, 40) and first.dtype == np.float64
    assert first.tobytes() == again.tobytes()
    assert not np.array_equal(first, geo.permeability(kind, grid, params, 12))


def test_bit_for_bit_across_processes():
    code = (
        "import hashlib; from data_gen import geology as g; from data_gen.grid import Grid; "
        "print(' '.join(hashlib.sha256(g.permeability(k, Grid(), g.default_params(k), 2**40 + 7)"
        ".tobytes()).hexdigest() for k in g.GEOLOGY_KINDS))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    here = [
        hashlib.sha256(geo.permeability(k, Grid(), geo.default_params(k), 2**40 + 7).tobytes()).hexdigest()
        for k in geo.GEOLOGY_KINDS
    ]
    assert out.stdout.split() == here


# --- Gaussian random fields ----------------------------------------------------------------------


@pytest.mark.parametrize("model", geo.GAUSSIAN_MODELS)
def test_gaussian_ensemble_mean_and_variance_of_log_k(model):
    """Mean of ln k is ln(geometric mean) and its variance is log_variance, within 4 SE;
    the correlation at a 60 m lag along x and along z matches the model within 0.05.

    With n seeds and N cells of model covariance C, the pooled mean of Y has variance
    sum(C) / (N^2 n) and the pooled mean of Y^2 (an unbiased variance estimate, mean known) has
    variance 2 sum(C^2) / (N^2 n) for a Gaussian field; both SEs are computed from the model.
    The lag correlations scatter by about 0.01 between batches of 200 seeds.
    """
    params = geo.GaussianParams(model=model, log_variance=0.8, geometric_mean_md=35.0)
    n = 200
    y = _log_fields(COARSE, params, range(n))
    cov = _cell_covariance(COARSE, params)
    n_cells = cov.shape[0]
    se_mean = math.sqrt(cov.sum() / n_cells**2 / n)
    se_var = math.sqrt(2.0 * (cov**2).sum() / n_cells**2 / n)
    mean, var = y.mean(), (y**2).mean()
    assert abs(mean) < N_SIGMA * se_mean, (mean, se_mean)
    assert abs(var - 0.8) < N_SIGMA * se_var, (var, se_var)
    assert se_var < 0.05  # the check is tight enough to catch a wrong variance
    model = geo.covariance_model(params)
    for lag_cells, lag_m in (((0, 2), [[60.0], [0.0]]), ((2, 0), [[0.0], [60.0]])):
        expected = model.cor_spatial(np.array(lag_m))[0]
        assert _lag_correlation(y, *lag_cells) == pytest.approx(expected, abs=0.05)


@pytest.mark.parametrize("nu", [0.5, 1.5, 4.0])
def test_matern_spectral_quantile_inverts_gstools_density(nu):
    """Our closed-form quantile against numerical integration of GSTools' radial density."""
    model = geo.covariance_model(geo.GaussianParams(model="matern", nu=nu, len_scale_m=100.0))
    r = np.linspace(0.0, 2.0, 400_001)
    pdf = model.spectral_rad_pdf(r)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (pdf[1:] + pdf[:-1]) * np.diff(r))])
    u = np.array([0.05, 0.3, 0.5, 0.8, 0.95])
    np.testing.assert_allclose(model.spectral_rad_ppf(u), np.interp(u, cdf, r), rtol=1e-4)


@pytest.mark.parametrize(
    "structure",
    [
        geo.GaussianParams(),
        geo.GaussianParams(model="exponential", len_scale_m=100.0, anisotropy=0.5, angle_deg=-20.0),
        geo.GaussianParams(model="matern", nu=0.8, angle_deg=30.0),
    ],
)
def test_cached_gaussian_field_rescales_to_a_fresh_generation(structure):
    """Changing only the geometric mean or the variance rescales the cached unit field; the
    result equals GSTools' own generation of that field to round-off.

    The unit field is summed separably, so ln k differs from GSTools' by at most
    sqrt(log_variance) times the phase round-off bound of the unit field (8e-13 to 5e-12 here,
    measured 6e-15 to 5e-14), which is the relative difference of k; 1e-14 more covers rescaling.
    """
    geo._unit_log_field.cache_clear()
    unit_bound = _phase_roundoff_bound(COARSE, geo.covariance_model(structure), 11)
    assert unit_bound < 1e-11
    for mean_md, variance in ((50.0, 1.0), (7.5, 0.3), (400.0, 2.7), (20.0, 0.0)):
        params = replace(structure, geometric_mean_md=mean_md, log_variance=variance)
        fresh = geo.gaussian_permeability(COARSE, params, 11)
        rescaled = geo.gaussian_permeability(COARSE, params, 11, cached=True)
        assert rescaled.dtype == np.float64 and rescaled.shape == COARSE.shape
        rtol = 1e-14 + math.sqrt(variance) * unit_bound
        np.testing.assert_allclose(rescaled, fresh, rtol=rtol, atol=0)
        np.testing.assert_array_equal(geo.permeability("gaussian", COARSE, params, 11, cached=True), rescaled)
    info = geo._unit_log_field.cache_info()
    assert (info.misses, info.hits) == (1, 7)  # generated once, rescaled for every other call
    unit = geo.unit_log_field(COARSE, structure, 11)
    assert not unit.flags.writeable
    # another seed or structure is another field
    assert not np.allclose(geo.unit_log_field(COARSE, structure, 12), unit)
    other = replace(structure, len_scale_m=structure.len_scale_m / 2)
    assert not np.allclose(geo.unit_log_field(COARSE, other, 11), unit)


# A non-square grid with dx != dz and sizes that are not perfect squares (the cos/sin split).
_SECTIONS = (Grid(nz=24, nx=40, dx_m=12.0, dz_m=7.5), Grid(nz=7, nx=50, dx_m=20.0, dz_m=3.0))


@pytest.mark.parametrize("grid", _SECTIONS, ids=["24x40", "7x50"])
@pytest.mark.parametrize(
    "structure",
    [
        geo.GaussianParams(model="gaussian", len_scale_m=150.0, anisotropy=0.3, angle_deg=-20.0),
        geo.GaussianParams(model="gaussian", len_scale_m=60.0, anisotropy=0.1, angle_deg=75.0),
        geo.GaussianParams(model="exponential", len_scale_m=100.0, anisotropy=0.5, angle_deg=30.0),
        geo.GaussianParams(model="exponential", len_scale_m=40.0, anisotropy=0.2, angle_deg=-20.0),
        geo.GaussianParams(model="matern", nu=0.8, len_scale_m=200.0, anisotropy=0.25, angle_deg=75.0),
        geo.GaussianParams(model="matern", nu=2.5, len_scale_m=80.0, anisotropy=0.5, angle_deg=30.0),
    ],
    ids=lambda p: f"{p.model}-{p.len_scale_m:g}m-{p.angle_deg:g}deg",
)
def test_separable_unit_field_equals_gstools_srf(grid, structure):
    """The cached unit field is GSTools' own RandMeth field (same modes, summed separably),
    within the phase round-off bound of ``_phase_roundoff_bound`` (8e-13 to 5e-10 here)."""
    model = geo.covariance_model(structure)  # unit variance
    # isometrize is linear, so the phases split into a x + b z
    pos = np.random.default_rng(0).uniform(-1e3, 1e3, (2, 50))
    np.testing.assert_allclose(model.isometrize(pos), model.isometrize(np.eye(2)) @ pos, rtol=1e-14)
    assert geo._has_separable_sum(model)
    for seed in (0, 11, 2**40 + 7):
        gs_seed = int(np.random.SeedSequence(seed).generate_state(1)[0])
        srf = gs.SRF(model, generator="RandMeth", mode_no=1000, seed=gs_seed)
        reference = srf((grid.x_m, grid.z_m), mesh_type="structured").T
        geo._unit_log_field.cache_clear()
        unit = geo.unit_log_field(grid, structure, seed)
        assert unit.shape == grid.shape and unit.dtype == np.float64
        bound = _phase_roundoff_bound(grid, model, seed)
        assert bound < 1e-9  # round-off, not a different field (whose values are O(1))
        np.testing.assert_allclose(unit, reference, rtol=0, atol=bound)


def test_models_without_a_separable_sum_fall_back_to_gstools(monkeypatch):
    assert all(
        geo._has_separable_sum(geo.covariance_model(geo.GaussianParams(model=m))) for m in geo.GAUSSIAN_MODELS
    )
    assert not geo._has_separable_sum(gs.Matern(dim=2, nu=1.5))  # no ppf: GSTools samples by MCMC
    assert not geo._has_separable_sum(gs.Gaussian(dim=2, nugget=0.1))
    assert not geo._has_separable_sum(gs.Gaussian(dim=2, var=0.0))
    monkeypatch.setattr(geo, "_has_separable_sum", lambda model: False)
    geo._unit_log_field.cache_clear()
    unit = geo.unit_log_field(COARSE, geo.GaussianParams(), 4)
    geo._unit_log_field.cache_clear()
    np.testing.assert_array_equal(unit, geo._log_field(COARSE, geo.GaussianParams(), 4))


def test_unit_log_field_has_unit_variance_over_an_ensemble():
    y = np.stack([geo.unit_log_field(COARSE, geo.GaussianParams(log_variance=2.5), s) for s in range(200)])
    se = math.sqrt(2.0 / y[:, 0, 0].size)  # standard error of a unit variance estimate
    assert abs(y[:, ::5, ::5].var(axis=0).mean() - 1.0) < N_SIGMA * se


def test_gaussian_zero_log_variance_is_constant():
    k = geo.gaussian_permeability(COARSE, geo.GaussianParams(log_variance=0.0), 5)
    assert np.all(k == 50.0)


@pytest.mark.parametrize(
    ("angle_deg", "lag_long", "lag_short"),
    [(0.0, (0, 2), (2, 0)), (90.0, (2, 0), (0, 2)), (45.0, (2, 2), (2, -2))],
)
def test_gaussian_orientation(angle_deg, lag_long, lag_short):
    """Correlation is long along the main axis (x at 0 deg, z at 90 deg, down-right at 45 deg).

    Reference: GSTools' Gaussian model, rho = exp(-pi/4 ((r_main / 240)^2 + (r_across / 60)^2)).
    A non-square grid catches a transposed [z, x] array. Tolerance 0.08 covers the sampling error
    of 150 seeds (measured spread about 0.02).
    """
    grid = Grid(nz=14, nx=20, dx_m=30.0, dz_m=30.0)
    params = geo.GaussianParams(len_scale_m=240.0, anisotropy=0.25, angle_deg=angle_deg)
    y = _log_fields(grid, params, range(150))
    main = np.array([math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))])

    def reference(lag_cells):
        lag = np.array([lag_cells[1] * grid.dx_m, lag_cells[0] * grid.dz_m])  # (x, z) in m
        along, across = lag @ main, lag @ np.array([-main[1], main[0]])
        return math.exp(-math.pi / 4 * ((along / 240.0) ** 2 + (across / 60.0) ** 2))

    rho_long, rho_short = _lag_correlation(y, *lag_long), _lag_correlation(y, *lag_short)
    assert rho_long > rho_short + 0.3
    assert rho_long == pytest.approx(reference(lag_long), abs=0.08)
    assert rho_short == pytest.approx(reference(lag_short), abs=0.08)


# --- channels ------------------------------------------------------------------------------------


def _column_runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column: number of channel cells and number of separate channel runs."""
    starts = mask[0].astype(int) + np.sum(mask[1:] & ~mask[:-1], axis=0)
    return mask.sum(axis=0), starts


def test_channel_ensemble_on_default_grid():
    """Two values only; one contiguous run per column >= min thickness; fraction ~ 120 / 960.

    The fraction is unbiased (boundary GPs have zero mean and cell centres sample the interval
    uniformly), so the ensemble mean must lie within 4 SE, SE = ensemble std / sqrt(n).
    """
    grid, params = Grid(), geo.ChannelParams()
    n = 300
    masks = np.stack([geo.channel_mask(grid, params, s) for s in range(n)])
    k = geo.channel_permeability(grid, params, 0)
    assert set(np.unique(k)) == {120.0, 20.0}
    np.testing.assert_array_equal(k == 120.0, masks[0])
    for mask in masks:
        count, runs = _column_runs(mask)
        assert np.all(runs == 1) and np.all(count * grid.dz_m >= params.min_thickness_m)
    fractions = masks.mean(axis=(1, 2))
    se = fractions.std(ddof=1) / math.sqrt(n)
    assert abs(fractions.mean() - 120.0 / 960.0) < N_SIGMA * se, (fractions.mean(), se)


def test_channel_boundary_gaussian_process_statistics():
    """Thickness T = bottom - top = h + gp_bottom - gp_top: mean h, variance 2 std^2 and
    correlation exp(-d^2 / (2 l^2)) at lag d. With 1000 seeds: variance within 15 % (relative SE
    <= sqrt(2 / 1000) = 4.5 % even if all columns were fully correlated), correlation within 0.05.
    """
    grid, params = Grid(), geo.ChannelParams(boundary_std_m=12.0, boundary_len_scale_m=150.0)
    t = np.stack([np.subtract(*geo.channel_boundaries(grid, params, s)[::-1]) for s in range(1000)])
    d = t - params.thickness_m
    assert abs(d.mean()) < N_SIGMA * math.sqrt(2.0) * 12.0 / math.sqrt(1000)
    assert (d**2).mean() == pytest.approx(2.0 * 12.0**2, rel=0.15)
    rho = (d[:, :-10] * d[:, 10:]).mean() / (d**2).mean()  # lag 10 cells = 150 m
    assert rho == pytest.approx(math.exp(-0.5), abs=0.05)


@pytest.mark.parametrize("min_thickness_m", [40.0, 45.0])
def test_channel_min_thickness_is_enforced_in_whole_cells(min_thickness_m):
    """Rough thin channels hit the floor: ceil(min / dz) cells, never fewer."""
    grid = Grid()
    params = geo.ChannelParams(thickness_m=60.0, boundary_std_m=40.0, min_thickness_m=min_thickness_m)
    counts = np.stack([_column_runs(geo.channel_mask(grid, params, s))[0] for s in range(100)])
    floor_cells = math.ceil(min_thickness_m / grid.dz_m)
    assert counts.min() == floor_cells  # the floor binds somewhere and is met exactly
    assert np.mean(counts == floor_cells) > 0.05


def test_channel_at_the_top_is_shifted_not_clipped():
    grid = Grid()
    params = geo.ChannelParams(centre_depth_range_m=(0.0, 0.0), amplitude_range_m=(0.0, 0.0))
    for seed in range(20):
        top, bottom = geo.channel_boundaries(grid, params, seed)
        assert np.all(top >= 0.0) and np.all(bottom <= 960.0)
        assert np.all(bottom - top >= params.min_thickness_m)
        assert np.isclose(top.min(), 0.0)  # pushed against the top
        assert np.mean(bottom - top) > 0.8 * params.thickness_m  # kept its thickness


# --- dispatcher, defaults and serialisation ------------------------------------------------------


@pytest.mark.parametrize("kind", geo.GEOLOGY_KINDS)
def test_default_params_scale_with_grid(kind):
    assert geo.default_params(kind, Grid()) == geo.default_params(kind)
    small = Grid(nz=16, nx=24)  # 240 m deep, 360 m wide
    params = geo.default_params(kind, small)
    k = geo.permeability(kind, small, params, 1)
    assert k.shape == (16, 24) and np.all(k > 0)
    if kind == "channel":
        assert params.thickness_m == 30.0 and params.wavelength_range_m == (180.0, 540.0)
        assert np.all(geo.channel_mask(small, params, 1).sum(axis=0) >= 1)
    else:
        assert params.len_scale_m == 90.0


@pytest.mark.parametrize(
    "params",
    [
        geo.ChannelParams(channel_md=80.0, centre_depth_range_m=[400, 500]),
        geo.GaussianParams(model="matern", nu=2.5, angle_deg=-20.0),
    ],
)
def test_params_dict_round_trip_through_json(params):
    d = geo.params_to_dict(params)
    kind = "channel" if isinstance(params, geo.ChannelParams) else "gaussian"
    assert geo.params_from_dict(kind, json.loads(json.dumps(d))) == params
    assert all(type(v) in (float, str, list) for v in d.values())


def test_params_from_dict_uses_defaults_and_rejects_unknown_keys():
    assert geo.params_from_dict("gaussian", {"log_variance": 2.0}).len_scale_m == 240.0
    with pytest.raises(ValueError, match=r"unknown GaussianParams keys \['len_scale'\]"):
        geo.params_from_dict("gaussian", {"len_scale": 3.0})
    with pytest.raises(TypeError, match="must be a mapping"):
        geo.params_from_dict("gaussian", [("log_variance", 2.0)])


# --- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: geo.ChannelParams(channel_md=-5.0), r"channel_md must be a finite number > 0"),
        (lambda: geo.ChannelParams(background_md=0.0), r"background_md .* > 0, got 0.0"),
        (lambda: geo.ChannelParams(channel_md=float("nan")), r"channel_md .* got nan"),
        (lambda: geo.GaussianParams(geometric_mean_md=-1.0), r"geometric_mean_md .* > 0"),
        (lambda: geo.GaussianParams(geometric_mean_md=math.inf), r"geometric_mean_md .* inf"),
        (lambda: geo.GaussianParams(log_variance=-0.1), r"log_variance .* >= 0, got -0.1"),
        (lambda: geo.GaussianParams(model="spherical"), r"'spherical' is unknown; allowed"),
        (lambda: geo.GaussianParams(len_scale_m=0.0), r"len_scale_m .* > 0"),
        (lambda: geo.GaussianParams(nu=0.1), r"nu must be in \[0.2, 30\], got 0.1"),
        (
            lambda: geo.ChannelParams(amplitude_range_m=(90.0, 15.0)),
            r"amplitude_range_m must be ordered \(low <= high\), got \(90.0, 15.0\)",
        ),
        (lambda: geo.ChannelParams(wavelength_range_m=(0.0, 10.0)), r"wavelength_range_m\[0\]"),
        (lambda: geo.ChannelParams(centre_depth_range_m=300.0), r"must be a \(low, high\) pair"),
        (lambda: geo.ChannelParams(min_thickness_m=200.0), r"must not exceed thickness_m"),
        (
            lambda: geo.channel_mask(Grid(nz=8), geo.ChannelParams(), 0),
            r"do not fit a section 120 m deep",
        ),
        (
            lambda: geo.permeability("fluvial", Grid(), geo.ChannelParams(), 0),
            r"'fluvial'.*allowed",
        ),
        (lambda: geo.default_params("fluvial"), r"unknown geology kind 'fluvial'"),
        (lambda: geo.gaussian_permeability(COARSE, geo.GaussianParams(), -1), r"non-negative"),
    ],
)
def test_bad_values_raise_value_error(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: geo.permeability("gaussian", COARSE, geo.ChannelParams(), 0), "GaussianParams"),
        (lambda: geo.channel_mask(COARSE, geo.GaussianParams(), 0), "expected ChannelParams"),
        (lambda: geo.params_to_dict({"model": "gaussian"}), "got dict"),
        (lambda: geo.ChannelParams(thickness_m="thick"), r"thickness_m must be a real number"),
        (lambda: geo.channel_permeability(COARSE, geo.ChannelParams(), 1.5), "seed"),
        (lambda: geo.channel_permeability(COARSE, geo.ChannelParams(), True), "seed"),
    ],
)
def test_wrong_types_raise_type_error(make, match):
    with pytest.raises(TypeError, match=match):
        make()
