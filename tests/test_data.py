"""Training data: lazy Dataset over a real store, split, normalisers, input encoding, bad stores."""

from __future__ import annotations

import pickle
import shutil

import numpy as np
import pytest
import torch
from stores import build_store
from torch.utils.data import DataLoader

from ccs_fno.data import (
    INPUT_CHANNELS,
    Normalisers,
    Standardiser,
    ZarrSaturationDataset,
    fit_normalisers,
    read_store,
    split_samples,
)
from data_gen.pipeline import FAIL_SAMPLES_ENV
from data_gen.scenarios import default_space
from data_gen.store import create_store, open_dataset

TIMES = (0.0, 500.0, 1000.0)
FAILED = 5  # a sample whose simulation "fails": not done in the store


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """12 channel samples on 16x16 cells, sample FAILED left not done."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(FAIL_SAMPLES_ENV, str(FAILED))
        return build_store(tmp_path_factory.mktemp("data") / "s.zarr", 12, 3, TIMES, retries=0)


def test_split_is_deterministic_disjoint_and_complete():
    done = np.delete(np.arange(20), [3, 7])
    split = split_samples(done, 0.1, 0.2, seed=4)
    assert {k: v.size for k, v in split.items()} == {"train": 12, "val": 2, "test": 4}
    assert np.array_equal(np.sort(np.concatenate(list(split.values()))), done)
    again = split_samples(done, 0.1, 0.2, seed=4)
    assert all(np.array_equal(split[k], again[k]) for k in split)
    other = split_samples(done, 0.1, 0.2, seed=5)
    assert not all(np.array_equal(split[k], other[k]) for k in split)
    tiny = split_samples([0, 1, 2], 0.01, 0.0, seed=0)  # a fraction > 0 never gives an empty set
    assert (tiny["val"].size, tiny["test"].size, tiny["train"].size) == (1, 0, 2)
    with pytest.raises(ValueError, match=r"2 done sample\(s\) cannot be split"):
        split_samples([0, 1], 0.3, 0.3, seed=0)
    with pytest.raises(ValueError, match="val_fraction must be a number in \\[0, 1\\), got 1.5"):
        split_samples(done, 1.5, 0.1, seed=0)


def test_store_summary_lists_only_done_samples(store):
    summary = read_store(store)
    assert summary.done_indices.tolist() == [i for i in range(12) if i != FAILED]
    assert summary.grid.shape == (16, 16) and summary.times_days.tolist() == list(TIMES)
    assert summary.max_saturation == 1.0  # default fluids: no residual brine
    with pytest.raises(ValueError, match=rf"samples \[{FAILED}\] .* are not done samples"):
        ZarrSaturationDataset(summary, [0, FAILED], fit_normalisers(summary, [0, 1]))
    with pytest.raises(ValueError, match=r"samples \[12\]"):
        summary.check_done([12])


def test_items_are_the_stored_sample_encoded(store):
    summary = read_store(store)
    train = [0, 1, 2, 4, 6, 7]
    norm = fit_normalisers(summary, train)
    dataset = ZarrSaturationDataset(summary, [9, 0], norm)
    x, y = dataset[0]
    assert x.dtype == y.dtype == torch.float32
    assert x.shape == (len(INPUT_CHANNELS), 16, 16) and y.shape == (len(TIMES), 16, 16)
    with open_dataset(store) as ds:
        sample = ds.isel(sample=9).compute()
    np.testing.assert_array_equal(y.numpy(), sample.saturation.values)
    log_k = np.log(sample.permeability.values.astype(np.float64))
    np.testing.assert_allclose(
        x[0].numpy(), (log_k - norm.log_permeability.mean) / norm.log_permeability.std, rtol=1e-5
    )
    rate = (float(sample.rate_m3_per_day) - norm.rate.mean) / norm.rate.std
    np.testing.assert_allclose(x[2].numpy(), rate, rtol=1e-6)
    # well maps: Gaussian bumps in metres around the well cells' centres, peak 1 at the cell
    z_m, x_m = sample.z.values, sample.x.values
    for channel, well in ((3, "injector"), (4, "producer")):
        cz, cx = int(sample[f"{well}_z"]), int(sample[f"{well}_x"])
        r2 = (z_m[:, None] - z_m[cz]) ** 2 + (x_m[None, :] - x_m[cx]) ** 2
        expected = np.exp(-r2 / (2 * norm.well_sigma_m**2))
        np.testing.assert_allclose(x[channel].numpy(), expected, rtol=1e-6, atol=1e-7)
        assert x[channel, cz, cx] == 1.0
    assert norm.well_sigma_m == 1.5 * 60.0  # 1.5 cells of the 960 m / 16 grid, fixed in metres


def test_normalisers_are_fitted_on_training_samples_only(store):
    summary = read_store(store)
    train = np.array([0, 2, 3, 8])
    norm = fit_normalisers(summary, train)
    with open_dataset(store) as ds:
        rates = ds.rate_m3_per_day.values
        log_k = np.log(ds.permeability.values[train].astype(np.float64))
    assert norm.rate.mean == pytest.approx(rates[train].mean(), rel=1e-12)
    assert norm.rate.mean != pytest.approx(rates[summary.done_indices].mean(), rel=1e-6)
    assert norm.rate.std == pytest.approx(rates[train].std(), rel=1e-12)
    assert norm.log_permeability.mean == pytest.approx(log_k.mean(), rel=1e-12)
    assert norm.log_permeability.std == pytest.approx(log_k.std(), rel=1e-12)
    # porosity is constant (0.25) in this ensemble: centred, not divided by a zero std
    assert (norm.porosity.mean, norm.porosity.std) == (pytest.approx(0.25), 1.0)
    assert Normalisers.from_dict(norm.to_dict()) == norm


def test_normaliser_dict_errors_name_the_entry():
    norm = Normalisers(Standardiser(1.0, 2.0), Standardiser(0.2, 1.0), Standardiser(100, 30), 90.0)
    data = norm.to_dict()
    del data["rate"]
    with pytest.raises(ValueError, match=r"normalisers \['rate'\] are missing"):
        Normalisers.from_dict(data)
    with pytest.raises(ValueError, match="finite std > 0, got mean=1.0, std=0.0"):
        Normalisers.from_dict(norm.to_dict() | {"log_permeability": {"mean": 1.0, "std": 0.0}})
    with pytest.raises(ValueError, match="well_sigma_m must be a finite length > 0 m, got -1"):
        Normalisers.from_dict(norm.to_dict() | {"well_sigma_m": -1})


def test_dataloader_workers_read_the_same_batches(store):
    summary = read_store(store)
    dataset = ZarrSaturationDataset(summary, summary.done_indices, fit_normalisers(summary, [0, 1]))
    dataset[0]  # opens a handle in this process ...
    assert pickle.loads(pickle.dumps(dataset))._handle is None  # ... which workers do not inherit
    serial = list(DataLoader(dataset, batch_size=4))
    parallel = list(DataLoader(dataset, batch_size=4, num_workers=2))
    assert len(serial) == len(parallel) == 3
    for (xs, ys), (xp, yp) in zip(serial, parallel, strict=True):
        assert torch.equal(xs, xp) and torch.equal(ys, yp)


def test_bad_stores_are_refused_with_the_reason(store, tmp_path):
    with pytest.raises(FileNotFoundError, match="no ccs-fno store"):
        read_store(tmp_path / "missing.zarr")
    broken = tmp_path / "broken.zarr"
    shutil.copytree(store, broken)
    shutil.rmtree(broken / "saturation")
    with pytest.raises(ValueError, match="variable 'saturation' is missing"):
        read_store(broken)
    empty = tmp_path / "empty.zarr"
    create_store(empty, default_space("channel", resolution=16, report_times_days=TIMES), 0, 4)
    with pytest.raises(ValueError, match="has no done samples"):
        read_store(empty)
