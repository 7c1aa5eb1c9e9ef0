"""The shipped default surrogate and the training-distribution check (real model, real simulator)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from ccs_fno.domain import OutOfDomainWarning, TrainingDomain
from ccs_fno.metrics import relative_l2
from ccs_fno.run_dir import load_model_file
from ccs_fno.surrogate import DEFAULT_SURROGATE, load_surrogate
from ccs_fno.uq import Calibration
from data_gen.geology import channel_mask
from data_gen.scenarios import default_space, run_scenario, sample_scenario

HELD_OUT_SEED = 31337  # a master seed the default surrogate was never trained on (it used 2024)


@pytest.fixture(scope="module")
def default():
    return load_surrogate("default")


@pytest.fixture(scope="module")
def scenario():
    return sample_scenario(default_space("channel"), HELD_OUT_SEED, 0)


def _check(surrogate, k, scenario, **change):
    args = {
        "rate_m3_per_day": scenario.rate_m3_per_day,
        "injector_zx": scenario.injector_zx,
        "producer_zx": scenario.producer_zx,
    } | change
    return surrogate.check_domain(k, **args)


def test_the_default_surrogate_ships_with_its_provenance_and_matches_the_simulator(default, scenario):
    provenance = default.provenance
    assert "ccs-fno generate" in provenance["commands"]["generate"]
    assert "ccs-fno train" in provenance["commands"]["train"]
    assert provenance["seeds"]["data_master_seed"] == 2024
    assert provenance["errors"]["test_split_rel_l2"]["n_samples"] >= 100
    assert (default.grid.nz, default.grid.nx) == (64, 64) and default.domain.space.geology == "channel"
    calibration = Calibration.load(DEFAULT_SURROGATE)  # fitted on held-out simulations (seed 9001)
    assert calibration.fits(default.grid, default.times_days)
    assert provenance["calibration"]["source"]["store"].endswith("heldout_channel.zarr")
    text = repr(default)
    assert "test relative L2 error" in text and "ccs-fno train" in text and "channel geology" in text
    # A scenario it never saw, through the real simulator: the stated test error is of this order.
    k, phi, result = run_scenario(scenario)
    report = _check(default, k, scenario)
    assert report.ok, report.reasons
    with warnings.catch_warnings():
        warnings.simplefilter("error", OutOfDomainWarning)
        pred = default.predict(
            k,
            rate_m3_per_day=scenario.rate_m3_per_day,
            injector_zx=scenario.injector_zx,
            producer_zx=scenario.producer_zx,
            porosity=phi,
        )
    assert pred.attrs["out_of_domain"] == ""
    error = float(
        relative_l2(torch.from_numpy(pred.values[None]), torch.from_numpy(result.saturation[None]).float())
    )
    assert error < 3 * provenance["errors"]["test_split_rel_l2"]["rel_l2_mean"], error


def test_scenarios_outside_the_training_distribution_are_named(default, scenario):
    k = scenario.permeability_md()
    space = default.domain.space
    mask = channel_mask(space.grid, scenario.geology_params, scenario.seed)
    column = scenario.injector_zx[1]
    above = int(np.flatnonzero(mask[:, column])[0]) - 3  # three cells above the channel top
    cases = {
        "injector": dict(injector_zx=(above, column)),
        "300 m^3/day": dict(rate_m3_per_day=300.0),
        "porosity": dict(porosity=0.1),
        "the producer is at x": dict(producer_zx=(scenario.producer_zx[0], 40)),
    }
    for words, change in cases.items():
        report = _check(default, k, scenario, **change)
        assert not report.ok and any(words in r for r in report.reasons), (words, report.reasons)
    assert "outside the channel" in " ".join(_check(default, k, scenario, **cases["injector"]).reasons)

    gaussian = sample_scenario(default_space("gaussian"), HELD_OUT_SEED, 0)
    report = _check(default, gaussian.permeability_md(), gaussian)
    assert "not channel geology" in report.reasons[0]

    fine = np.kron(k, np.ones((2, 2)))  # the same rock at 128x128: a zero-shot resolution change
    injector = tuple(2 * i for i in scenario.injector_zx)
    producer = tuple(2 * i for i in scenario.producer_zx)
    report = _check(default, fine, scenario, injector_zx=injector, producer_zx=producer)
    assert report.reasons == [
        "the field has 128x128 cells; the model was trained at 64x64 (a zero-shot resolution change)"
    ]

    # predict warns (never silent), and says which samples of a batch are outside.
    batch = np.stack([k, gaussian.permeability_md()])
    with pytest.warns(OutOfDomainWarning, match="not channel geology"):
        pred = default.predict(
            batch,
            rate_m3_per_day=scenario.rate_m3_per_day,
            injector_zx=scenario.injector_zx,
            producer_zx=scenario.producer_zx,
        )
    assert pred["in_training_domain"].values.tolist() == [True, False]
    assert pred.attrs["out_of_domain"].startswith("the permeability is not channel geology")
    assert pred.attrs["out_of_domain"].endswith(": 1 of 2 samples (1)")


def test_a_batch_groups_its_reasons_by_kind_and_keeps_each_samples_own(default):
    """Many samples sharing a reason: one line per kind, most samples first, indices shortened."""
    n = 20
    gaussian = [1, 4, 5, 7, 9, 11, 12, 15, 18, 19]  # 10 samples: more than the indices shown
    fast = [2, 4, 13]  # a rate above the trained range (sample 4: both reasons)
    channel = [sample_scenario(default_space("channel"), HELD_OUT_SEED, i) for i in range(n)]
    k = np.stack(
        [
            sample_scenario(default_space("gaussian"), HELD_OUT_SEED, i).permeability_md()
            if i in gaussian
            else s.permeability_md()
            for i, s in enumerate(channel)
        ]
    )
    rate = np.array([300.0 if i in fast else s.rate_m3_per_day for i, s in enumerate(channel)])
    wells = {
        "injector_zx": np.array([s.injector_zx for s in channel]),
        "producer_zx": np.array([s.producer_zx for s in channel]),
    }
    report = default.check_domain(k, rate_m3_per_day=rate, **wells)

    low, high = default.domain.space.rate_m3_per_day_range
    rate_kind = f"injection rate outside the trained range {low:g}-{high:g} m^3/day"
    assert list(report.samples_by_reason.values()) == [tuple(gaussian), tuple(fast)]
    assert list(report.samples_by_reason)[1] == rate_kind
    not_channel, too_fast = report.reasons  # each kind once, the most frequent first
    assert not_channel.startswith("the permeability is not channel geology (")
    assert not_channel.endswith(": 10 of 20 samples (1, 4, 5, 7, 9, 11, 12, ..., 19)")
    assert too_fast == f"{rate_kind}: 3 of 20 samples (2, 4, 13)"
    assert str(report) == "outside the training distribution in 12 of 20 samples: " + "; ".join(
        report.reasons
    )

    # Each sample's own reasons, in full, as a single-scenario check words them.
    inside = [i for i in range(n) if i not in gaussian + fast]
    assert report.inside.tolist() == [i in inside for i in range(n)]
    for i in range(n):
        alone = default.check_domain(k[i], rate_m3_per_day=rate[i], **{w: c[i] for w, c in wells.items()})
        assert report.per_sample[i] == tuple(alone.reasons)
    assert len(report.per_sample[4]) == 2 and "300 m^3/day" in report.per_sample[4][0]
    assert "not channel geology: only" in report.per_sample[1][0]

    # A reason every sample shares says so instead of listing them.
    everyone = default.check_domain(
        k[:3], rate_m3_per_day=rate[:3], porosity=0.1, **{w: c[:3] for w, c in wells.items()}
    )
    assert everyone.reasons[0].endswith(": all 3 samples")


def test_training_records_the_distribution_in_the_model_file(tiny_run_dir):
    run_dir = tiny_run_dir
    state = load_model_file(run_dir)
    domain = TrainingDomain.from_dict(state["domain"])
    assert domain == TrainingDomain.from_store(run_dir.parent / "store.zarr")
    assert json.loads(json.dumps(domain.to_dict())) == domain.to_dict()  # plain JSON data
    surrogate = load_surrogate(run_dir)
    assert surrogate.domain == domain and surrogate.provenance == {}
    assert "channel geology on a 16x16 grid" in domain.describe()
