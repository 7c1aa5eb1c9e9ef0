"""Scenario sampler: reproducibility, independence of samples, well placement, validation."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from data_gen.geology import ChannelParams, GaussianParams, channel_mask
from data_gen.scenarios import (
    ScenarioSpace,
    default_space,
    run_scenario,
    sample_scenario,
    sample_seed,
    section_grid,
)


def test_sample_is_reproducible_alone_and_independent_of_order():
    space = default_space("gaussian", resolution=16)
    forward = [sample_scenario(space, 11, i) for i in range(6)]
    backward = [sample_scenario(space, 11, i) for i in reversed(range(6))][::-1]
    assert forward == backward
    k_a, k_b = forward[4].permeability_md(), sample_scenario(space, 11, 4).permeability_md()
    assert np.array_equal(k_a, k_b)


def test_different_indices_and_master_seeds_differ():
    space = default_space("gaussian", resolution=16)
    scenarios = [sample_scenario(space, 3, i) for i in range(8)]
    assert len({s.seed for s in scenarios}) == 8
    assert len({s.rate_m3_per_day for s in scenarios}) == 8
    assert len({s.geology_params for s in scenarios}) == 8
    assert not np.array_equal(scenarios[0].permeability_md(), scenarios[1].permeability_md())
    assert sample_scenario(space, 4, 0).seed != scenarios[0].seed
    assert sample_seed(3, 5) == scenarios[5].seed


def test_draws_lie_in_their_ranges():
    space = default_space(
        "gaussian", resolution=32, rate_m3_per_day_range=(80.0, 90.0), well_depth_range_m=(300, 600)
    )
    for i in range(20):
        s = sample_scenario(space, 0, i)
        assert 80.0 <= s.rate_m3_per_day <= 90.0
        for name, low, high in space.geology_ranges:
            assert low <= getattr(s.geology_params, name) <= high
        for z, _ in (s.injector_zx, s.producer_zx):
            # the cell holding a depth in [300, 600) m, 30 m cells
            assert 10 <= z <= 20
        assert s.injector_zx[1] == 1 and s.producer_zx[1] == 31  # 52.5 m and 937.5 m
        assert s.config.injector_zx == s.injector_zx and s.config.rate_m3_per_day == s.rate_m3_per_day


@pytest.mark.parametrize("resolution", [16, 64])
def test_channel_wells_are_completed_inside_the_channel(resolution):
    space = default_space("channel", resolution=resolution)
    relative_depths = []
    for i in range(12):
        s = sample_scenario(space, 2, i)
        mask = channel_mask(space.grid, s.geology_params, s.seed)
        assert mask[s.injector_zx] and mask[s.producer_zx]
        assert np.array_equal(s.permeability_md() == 120.0, mask)
        cells = np.flatnonzero(mask[:, s.injector_zx[1]])
        relative_depths.append((s.injector_zx[0] - cells[0]) / max(cells.size - 1, 1))
    if resolution == 64:  # several channel cells per column: wells are not all at the top
        assert min(relative_depths) < 0.5 < max(relative_depths)


def test_same_physical_scenario_on_a_finer_grid():
    coarse = default_space("gaussian", resolution=64)
    fine = default_space("gaussian", resolution=128)
    for i in range(10):
        a, b = sample_scenario(coarse, 9, i), sample_scenario(fine, 9, i)
        assert (a.seed, a.rate_m3_per_day, a.geology_params) == (
            b.seed,
            b.rate_m3_per_day,
            b.geology_params,
        )
        for cell_a, cell_b in ((a.injector_zx, b.injector_zx), (a.producer_zx, b.producer_zx)):
            assert (
                cell_b[0] // 2,
                cell_b[1] // 2,
            ) == cell_a  # the fine cell lies in the coarse one


def test_run_scenario_returns_rock_and_simulation():
    space = default_space("channel", resolution=16, report_times_days=(0.0, 50.0, 100.0))
    k, phi, result = run_scenario(sample_scenario(space, 0, 0))
    assert k.shape == phi.shape == (16, 16)
    assert np.all(phi == 0.25)
    assert result.saturation.shape == (3, 16, 16)
    assert result.saturation[0].max() == 0.0 < result.saturation[-1].max()


def test_space_round_trips_through_json():
    space = default_space("gaussian", resolution=32, geology_ranges={"log_variance": (0.5, 2.0)})
    text = json.dumps(space.to_dict())
    assert ScenarioSpace.from_dict(json.loads(text)) == space
    channel = default_space("channel", resolution=16)
    assert ScenarioSpace.from_dict(json.loads(json.dumps(channel.to_dict()))) == channel


def test_space_defaults():
    space = ScenarioSpace()
    assert space.grid == section_grid(64)
    assert space.geology_params == ChannelParams()
    assert space.simulation.injector_zx is None and space.simulation.producer_zx is None
    assert (space.injector_column, space.producer_column) == (3, 62)
    gaussian = ScenarioSpace(geology="gaussian")
    assert gaussian.well_depth_range_m == (0.0, 960.0)
    assert gaussian.drawn_geology_names == ("angle_deg", "geometric_mean_md", "len_scale_m")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"geology": "karst"}, "unknown geology 'karst'"),
        (
            {"rate_m3_per_day_range": (150.0, 50.0)},
            "rate_m3_per_day_range must be finite and ordered",
        ),
        ({"rate_m3_per_day_range": (-5.0, 50.0)}, "rate_m3_per_day_range must lie above 0"),
        ({"rate_m3_per_day_range": (1.0,)}, "rate_m3_per_day_range must be a (low, high) pair"),
        ({"geology_ranges": {"colour": (1, 2)}}, "'colour' is not a numeric ChannelParams"),
        ({"well_depth_range_m": (100.0, 200.0)}, "gaussian geology only"),
        ({"injector_x_m": 940.0}, "the same grid column 62"),
        ({"producer_x_m": 2000.0}, r"producer_x_m must lie in [0, 960)"),
        ({"porosity": 0.0}, "porosity must lie in (0, 1]"),
        ({"geology_params": GaussianParams()}, "must be ChannelParams"),
    ],
)
def test_invalid_space_is_refused(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=re.escape(message)):
        ScenarioSpace(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"geology_ranges": {"geometric_mean_md": (-1.0, 5.0)}},
            "geometric_mean_md must be a finite",
        ),
        ({"well_depth_range_m": (0.0, 2000.0)}, "within the section [0, 960] m"),
    ],
)
def test_invalid_gaussian_space_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        ScenarioSpace(geology="gaussian", **kwargs)


def test_invalid_seed_and_index_are_refused():
    space = ScenarioSpace()
    with pytest.raises(ValueError, match="master_seed must be a non-negative integer"):
        sample_scenario(space, -1, 0)
    with pytest.raises(TypeError, match="index must be a non-negative integer"):
        sample_scenario(space, 0, 1.5)
    with pytest.raises(TypeError, match="space must be a ScenarioSpace"):
        sample_scenario("space", 0, 0)
