"""CO2 mass accounting (ccs_fno/co2_mass.py): analytic masses, unit conversions, and the real
simulator's stored mass against the injected mass (volume conservation before breakthrough)."""

from __future__ import annotations

import numpy as np
import pytest

from ccs_fno.co2_mass import (
    format_mass_t,
    injected_mass_t,
    mass_rate_t_per_day,
    mt_per_year,
    stored_mass_t,
)
from data_gen.grid import Grid
from data_gen.scenarios import default_space, sample_scenario


def test_stored_mass_of_a_uniform_saturation_block_is_analytic():
    grid = Grid(nz=8, nx=10, dx_m=15.0, dz_m=10.0, dy_m=20.0)
    saturation = np.zeros((2, 8, 10))
    saturation[1, 2:5, 3:7] = 0.4  # 3 x 4 cells
    mass = stored_mass_t(saturation, 0.25, grid, 700.0)
    # 12 cells x 3000 m^3 x 0.25 x 0.4 x 700 kg/m^3 = 2 520 000 kg
    np.testing.assert_allclose(mass, [0.0, 2520.0])
    porosity = np.full(grid.shape, 0.25)
    porosity[2, 3] = 0.5  # one cell holds twice the pore volume
    np.testing.assert_allclose(stored_mass_t(saturation[1], porosity, grid, 700.0), 2520.0 + 210.0)


def test_rates_in_engineering_units():
    assert mass_rate_t_per_day(100.0, 700.0) == pytest.approx(70.0)
    assert mt_per_year(70.0) == pytest.approx(70.0 * 365.25 / 1e6)
    np.testing.assert_allclose(injected_mass_t([0.0, 20.0, 1000.0], 100.0, 700.0), [0.0, 1400.0, 70000.0])
    assert [format_mass_t(m) for m in (512.0, 70000.0, 2.5e6, float("nan"))] == [
        "512 t",
        "70 kt",
        "2.5 Mt",
        "n/a",
    ]


def test_bad_input_is_refused_with_the_value_seen():
    grid = Grid(nz=4, nx=4)
    with pytest.raises(ValueError, match=r"co2_density_kg_m3 must be a finite number > 0, got -1"):
        mass_rate_t_per_day(100.0, -1.0)
    with pytest.raises(ValueError, match=r"rate_m3_per_day must be a finite number >= 0, got nan"):
        mass_rate_t_per_day(float("nan"), 700.0)
    with pytest.raises(ValueError, match=r"\(z, x\) = \(4, 4\) dims, got shape \(3, 4\)"):
        stored_mass_t(np.zeros((3, 4)), 0.25, grid, 700.0)
    with pytest.raises(ValueError, match=r"porosity must be a number or a \(z, x\) = \(4, 4\) field"):
        stored_mass_t(np.zeros((4, 4)), np.ones(3), grid, 700.0)
    with pytest.raises(ValueError, match=r"porosity must lie in \(0, 1\], got values from 0 to 0"):
        stored_mass_t(np.zeros((4, 4)), 0.0, grid, 700.0)
    with pytest.raises(ValueError, match="times_days must be 1-D, finite and >= 0"):
        injected_mass_t([-1.0], 100.0, 700.0)


def test_the_simulators_stored_mass_equals_the_injected_mass_before_breakthrough():
    space = default_space("channel", 16, report_times_days=(0.0, 50.0, 100.0, 200.0))
    scenario = sample_scenario(space, 0, 0)
    from data_gen.physics import simulate

    result = simulate(scenario.permeability_md(), scenario.porosity(), scenario.config)
    density = space.simulation.fluids.co2_density_kg_m3
    stored = stored_mass_t(result.saturation, space.porosity, space.grid, density)
    injected = injected_mass_t(
        np.asarray(space.simulation.report_times_days), scenario.rate_m3_per_day, density
    )
    producer = result.saturation[:, scenario.producer_zx[0], scenario.producer_zx[1]]
    assert (producer == 0).all()  # no CO2 at the producer yet: everything injected is in place
    np.testing.assert_allclose(stored, injected, rtol=1e-9, atol=1e-9)
    assert stored[-1] > 0
