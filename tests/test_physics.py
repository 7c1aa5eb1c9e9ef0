"""Reference tests of the two-phase simulator: analytic solutions, conservation, equilibrium."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from data_gen.analytic import buckley_leverett_profile, front_saturation
from data_gen.fluids import FluidProperties
from data_gen.grid import Grid
from data_gen.physics import (
    MD_TO_M2,
    SECONDS_PER_DAY,
    SimulationConfig,
    hydrostatic_pressure_pa,
    simulate,
)

RESIDUAL_FLUIDS = FluidProperties(residual_brine_saturation=0.2, residual_co2_saturation=0.05)


def horizontal_bl(n_cells: int, fluids: FluidProperties, t_days: float = 140.0):
    """1-D horizontal core, 200 m long, 100 m^2 cross-section, 0.1 m/day Darcy flux."""
    grid = Grid(nz=1, nx=n_cells, dx_m=200.0 / n_cells, dz_m=10.0, dy_m=10.0)
    config = SimulationConfig(
        grid=grid,
        fluids=fluids,
        rate_m3_per_day=10.0,
        injector_zx=(0, 0),
        producer_zx=(0, n_cells - 1),
        report_times_days=(0.0, t_days),
    )
    result = simulate(np.full(grid.shape, 100.0), 0.25, config)
    u = 10.0 / SECONDS_PER_DAY / 100.0
    exact = buckley_leverett_profile(grid.x_m, t_days * SECONDS_PER_DAY, u, 0.25, fluids)
    return result, exact


@pytest.mark.parametrize("fluids", [FluidProperties(), RESIDUAL_FLUIDS], ids=["no-residual", "residual"])
def test_buckley_leverett_matches_welge_solution_and_converges(fluids):
    errors = []
    for n in (50, 100, 200):
        result, exact = horizontal_bl(n, fluids)
        errors.append(np.abs(result.saturation[-1, 0] - exact).mean())
    assert errors[-1] <= 0.02, errors
    assert errors[0] > errors[1] > errors[2], errors
    # The front really moved: 60 % of the core is invaded at 140 days.
    result, exact = horizontal_bl(200, fluids)
    assert 0.5 < (exact > 0).mean() < 0.7
    assert result.saturation[-1, 0, -1] == 0.0


def test_volume_balance_bounds_and_finiteness():
    rng = np.random.default_rng(3)
    grid = Grid(nz=32, nx=32, dx_m=15.0, dz_m=15.0, dy_m=15.0)
    k = np.exp(rng.normal(np.log(50.0), 1.0, grid.shape))
    config = SimulationConfig(
        grid=grid,
        fluids=RESIDUAL_FLUIDS,
        rate_m3_per_day=40.0,
        injector_zx=(20, 2),
        producer_zx=(16, 29),
        report_times_days=tuple(np.arange(0.0, 401.0, 40.0)),
    )
    result = simulate(k, 0.2, config)
    assert np.isfinite(result.saturation).all() and np.isfinite(result.pressure_pa).all()
    in_place = result.saturation.sum(axis=(1, 2)) * 0.2 * grid.cell_volume_m3
    before = result.produced_co2_m3 == 0.0
    assert before[-3:].all(), "test setup: no CO2 breakthrough expected"
    inj = result.injected_co2_m3[1:]
    assert np.all(np.abs(inj - in_place[1:]) / inj <= 1e-3)
    assert np.all(np.abs(inj - in_place[1:]) / inj <= 1e-10)  # to round-off, in fact
    assert result.saturation.min() >= 0.0
    assert result.saturation.max() <= 1.0 - 0.2
    assert result.max_bound_violation <= 1e-12
    assert result.saturation[-1].max() > 0.5  # the bound is reached near the injector region


def test_volume_balance_after_breakthrough_counts_produced_co2():
    result, _ = horizontal_bl(100, FluidProperties(), t_days=400.0)
    in_place = result.saturation[-1].sum() * 0.25 * 2.0 * 100.0
    assert result.produced_co2_m3[-1] > 0
    balance = result.injected_co2_m3[-1] - result.produced_co2_m3[-1] - in_place
    assert abs(balance) / result.injected_co2_m3[-1] <= 1e-10


def test_hydrostatic_equilibrium_nothing_moves():
    """Segregated CO2 cap over brine, no wells: a gravity sign error would make the cap sink."""
    rng = np.random.default_rng(0)
    grid = Grid(nz=24, nx=12)
    k = np.exp(rng.normal(np.log(80.0), 1.0, grid.shape))
    fluids = RESIDUAL_FLUIDS
    s0 = np.zeros(grid.shape)
    s0[:8] = fluids.max_co2_saturation
    config = SimulationConfig(
        grid=grid,
        fluids=fluids,
        injector_zx=None,
        producer_zx=None,
        report_times_days=(0.0, 500.0, 1000.0),
    )
    result = simulate(k, 0.25, config, initial_saturation=s0)
    assert np.abs(result.saturation - s0).max() <= 1e-9  # solver round-off only
    g = fluids.gravity_m_s2
    dpdz = np.diff(result.pressure_pa[-1], axis=0) / grid.dz_m
    np.testing.assert_allclose(dpdz[:7], fluids.co2_density_kg_m3 * g, rtol=1e-6)
    np.testing.assert_allclose(dpdz[8:], fluids.brine_density_kg_m3 * g, rtol=1e-6)


def test_brine_only_pressure_is_hydrostatic_and_increases_downward():
    config = SimulationConfig(grid=Grid(nz=16, nx=8), injector_zx=None, producer_zx=(8, 7))
    config = dataclasses.replace(config, report_times_days=(0.0, 100.0))
    result = simulate(np.full((16, 8), 30.0), 0.3, config)
    expected = hydrostatic_pressure_pa(config)
    np.testing.assert_allclose(result.pressure_pa[-1], expected, rtol=1e-12)
    assert np.all(np.diff(expected[:, 0]) > 0)
    assert result.saturation.max() == 0.0


def gravity_column(n_cells: int, fluids: FluidProperties, t_days: float):
    """200 m vertical column, CO2 injected at the bottom at 0.05 m/day, producer at the top."""
    grid = Grid(nz=n_cells, nx=1, dx_m=10.0, dz_m=200.0 / n_cells, dy_m=10.0)
    config = SimulationConfig(
        grid=grid,
        fluids=fluids,
        rate_m3_per_day=5.0,
        injector_zx=(n_cells - 1, 0),
        producer_zx=(0, 0),
        report_times_days=(0.0, t_days / 2, t_days),
    )
    k_md = 100.0
    result = simulate(np.full(grid.shape, k_md), 0.25, config)
    u = 5.0 / SECONDS_PER_DAY / 100.0
    gravity_number = k_md * MD_TO_M2 * fluids.density_difference_kg_m3 * fluids.gravity_m_s2 / u
    height = grid.z_m[::-1]  # above the bottom, for cells in array order
    return result, height, u, gravity_number


def test_buoyant_co2_rises_with_the_gravity_segregation_front_saturation():
    fluids = FluidProperties()
    result, height, u, n_g = gravity_column(200, fluids, t_days=220.0)
    s = result.saturation[:, :, 0]
    centre = [(s[k] * height).sum() / s[k].sum() for k in (1, 2)]
    assert centre[1] > centre[0] > 0
    exact = buckley_leverett_profile(height, 220.0 * SECONDS_PER_DAY, u, 0.25, fluids, n_g)
    without_gravity = buckley_leverett_profile(height, 220.0 * SECONDS_PER_DAY, u, 0.25, fluids)
    err = np.abs(s[2] - exact).mean()
    assert err <= 0.02
    # The test tells gravity from no gravity (or a sign error): those profiles are far off.
    assert np.abs(s[2] - without_gravity).mean() > 3 * err
    # Saturation just behind the buoyant front: the analytic Welge value with gravity.
    s_front = front_saturation(fluids, n_g)
    assert abs(s_front - front_saturation(fluids)) > 0.02
    front = height[exact > 0].max()
    behind = (height < front - 8.0) & (height > front - 20.0)
    np.testing.assert_allclose(s[2][behind].mean(), exact[behind].mean(), atol=0.01)
    assert abs(s[2][behind].mean() - s_front) < 0.05


def test_canonical_channel_plume_follows_the_channel():
    from data_gen.geology import ChannelParams, channel_mask, channel_permeability

    grid, params = Grid(), ChannelParams()
    seed = next(
        s
        for s in range(100)
        if channel_mask(grid, params, s)[32, 3] and channel_mask(grid, params, s)[32, 62]
    )
    mask = channel_mask(grid, params, seed)
    result = simulate(channel_permeability(grid, params, seed), 0.25, SimulationConfig())
    volume = result.saturation[-1]
    inside = volume[mask].sum() / volume.sum()
    # Buoyant CO2 also leaks upward through the 20 mD background, but most of it stays in the channel,
    # which holds an eighth of the section.
    assert inside > 0.5, f"only {inside:.2f} of the CO2 volume lies in channel cells"
    assert inside > 4 * mask.mean()
    # The plume spreads along the channel, far beyond the injector at x = 3.
    reach = np.flatnonzero((mask & (volume > 0.05)).any(axis=0)).max()
    assert reach >= 16, f"plume reaches x = {reach} in the channel"
    # The default rate fills about a quarter of the channel's pore volume in 1000 days.
    channel_pv = mask.sum() * grid.cell_volume_m3 * 0.25
    assert 0.15 < result.injected_co2_m3[-1] / channel_pv < 0.35


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("perm", -1.0, "permeability must be finite and > 0"),
        ("perm", 0.0, "permeability must be finite and > 0"),
        ("perm", np.nan, "permeability must be finite and > 0"),
        ("poro", 0.0, r"porosity must lie in \(0, 1\]"),
        ("poro", 1.5, r"porosity must lie in \(0, 1\]"),
        ("poro", np.nan, r"porosity must lie in \(0, 1\]"),
    ],
)
def test_bad_rock_is_rejected_naming_the_cell(field, value, match):
    grid = Grid(nz=8, nx=8)
    k, phi = np.full(grid.shape, 50.0), np.full(grid.shape, 0.2)
    (k if field == "perm" else phi)[3, 5] = value
    config = SimulationConfig(grid=grid, injector_zx=(4, 0), producer_zx=(4, 7))
    with pytest.raises(ValueError, match=match) as err:
        simulate(k, phi, config)
    assert "(z=3, x=5)" in str(err.value)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"injector_zx": (8, 0)}, r"injector_zx \(z=8, x=0\) lies outside the grid"),
        ({"producer_zx": (0, -1)}, r"producer_zx \(z=0, x=-1\) lies outside the grid"),
        ({"injector_zx": (4, 7)}, "same cell"),
        ({"rate_m3_per_day": 0.0}, "rate_m3_per_day must be a finite rate > 0, got 0.0"),
        ({"rate_m3_per_day": -5.0}, "rate_m3_per_day must be a finite rate > 0"),
        ({"report_times_days": (0.0, 20.0, 20.0)}, "strictly increasing"),
        ({"report_times_days": (-1.0, 20.0)}, "strictly increasing"),
        ({"producer_zx": None}, "an injector needs a producer"),
    ],
)
def test_bad_configuration_is_rejected(kwargs, match):
    base = {"grid": Grid(nz=8, nx=8), "injector_zx": (4, 0), "producer_zx": (4, 7)}
    with pytest.raises(ValueError, match=match):
        SimulationConfig(**{**base, **kwargs})


def test_grid_must_match_permeability_shape():
    config = SimulationConfig(grid=Grid(nz=8, nx=8), injector_zx=(4, 0), producer_zx=(4, 7))
    with pytest.raises(
        ValueError, match=r"permeability has shape \(8, 9\) but the grid is \(nz, nx\) = \(8, 8\)"
    ):
        simulate(np.ones((8, 9)), 0.25, config)


def test_config_round_trips_through_json():
    import json

    config = SimulationConfig(fluids=RESIDUAL_FLUIDS, rate_m3_per_day=75.0)
    again = SimulationConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config


def test_recording_pressure_does_not_change_the_saturation():
    rng = np.random.default_rng(5)
    grid = Grid(nz=16, nx=16)
    k = np.exp(rng.normal(np.log(50.0), 1.0, grid.shape))
    config = SimulationConfig(grid=grid, injector_zx=(10, 1), producer_zx=(8, 14), rate_m3_per_day=20.0)
    with_p = simulate(k, 0.25, config, record_pressure=True)
    without = simulate(k, 0.25, config, record_pressure=False)
    np.testing.assert_array_equal(with_p.saturation, without.saturation)
    assert without.pressure_pa is None and with_p.pressure_pa.shape == with_p.saturation.shape
