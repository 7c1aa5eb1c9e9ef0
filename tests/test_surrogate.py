"""Surrogate: rebuilt from a real run, predictions as xarray, super-resolution, evaluation, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from stores import build_store

from ccs_fno.data import ZarrSaturationDataset, read_fields, read_saturation, read_store
from ccs_fno.surrogate import Surrogate, evaluate, load_surrogate
from ccs_fno.train import CHECKPOINT_FILE, MODEL_FILE, ModelConfig, TrainConfig, Trainer
from ccs_fno.train_cli import main as cli_main

TIMES = (0.0, 250.0, 500.0, 750.0, 1000.0)


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _store(path, resolution, n_samples):
    return build_store(path, n_samples, 2, TIMES, resolution=resolution)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny FNO trained for 12 epochs on 16 samples at 16x16: (store, run_dir)."""
    root = tmp_path_factory.mktemp("surrogate")
    store = _store(root / "s16.zarr", 16, 16)
    config = TrainConfig(
        epochs=12, batch_size=4, lr=1e-2, val_fraction=0.125, test_fraction=0.125, device="cpu"
    )
    model = ModelConfig(width=8, modes=4, n_layers=2, projection_width=16)
    Trainer.start(store, root / "run", config, model).fit(progress=False)
    return store, root / "run"


def _sample(store, index):
    summary = read_store(store)
    k, phi = read_fields(summary, [index])
    wells = {"injector_zx": summary.injector_zx[index], "producer_zx": summary.producer_zx[index]}
    return summary, k[0], phi[0], float(summary.rate_m3_per_day[index]), wells


def test_predict_returns_saturation_as_xarray(run):
    store, run_dir = run
    surrogate = load_surrogate(run_dir)
    summary, k, phi, rate, wells = _sample(store, 3)
    assert surrogate.grid == summary.grid
    np.testing.assert_array_equal(surrogate.times_days, TIMES)

    single = surrogate.predict(k, rate_m3_per_day=rate, porosity=0.25, **wells)
    assert single.name == "saturation" and single.dims == ("time", "z", "x")
    assert single.attrs["units"] == "1" and single.time.attrs["units"] == "d"
    assert single.x.attrs["units"] == single.z.attrs["units"] == "m"
    np.testing.assert_array_equal(single.time, TIMES)
    np.testing.assert_array_equal(single.x, summary.grid.x_m)
    np.testing.assert_array_equal(single.z, summary.grid.z_m)
    assert 0.0 <= float(single.min()) and float(single.max()) <= 1.0

    # a batch with per-sample rates and wells, predicted in batches of 2, equals the singles
    k2 = np.stack([k, k[::-1], k.T])
    rates = [rate, 2 * rate, 60.0]
    injectors = [wells["injector_zx"], (4, 1), (9, 0)]
    batch = surrogate.predict(
        k2, rate_m3_per_day=rates, injector_zx=injectors, producer_zx=wells["producer_zx"],
        batch_size=2,
    )  # fmt: skip
    assert batch.dims == ("sample", "time", "z", "x") and batch.sample.values.tolist() == [0, 1, 2]
    for i in range(3):
        alone = surrogate.predict(
            k2[i], rate_m3_per_day=rates[i], injector_zx=injectors[i], producer_zx=wells["producer_zx"]
        )
        np.testing.assert_allclose(batch[i].values, alone.values, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(batch[0].values, single.values, rtol=1e-5, atol=1e-6)


def test_predict_encodes_like_training_and_clips(run):
    store, run_dir = run
    surrogate = load_surrogate(run_dir)
    summary, k, phi, rate, wells = _sample(store, 5)
    x, _ = ZarrSaturationDataset(summary, [5], surrogate.normalisers)[0]
    with torch.no_grad():
        raw = surrogate.model(x[None])[0].numpy()
    assert raw.min() < 0  # an untrained-ish model overshoots: clipping is exercised
    pred = surrogate.predict(k, rate_m3_per_day=rate, porosity=phi, **wells)
    np.testing.assert_allclose(pred.values, np.clip(raw, 0.0, 1.0), rtol=1e-5, atol=1e-6)
    # the upper bound is the store's 1 - S_wr; here a surrogate with S_wr = 0.7
    capped = Surrogate(surrogate.model, surrogate.normalisers, surrogate.grid, TIMES, max_saturation=0.3)
    capped_pred = capped.predict(k, rate_m3_per_day=rate, **wells).values
    assert raw.max() > 0.3 and capped_pred.max() == pytest.approx(0.3)
    np.testing.assert_allclose(capped_pred, np.clip(raw, 0.0, 0.3), rtol=1e-5, atol=1e-6)


def test_zero_shot_super_resolution(run):
    store, run_dir = run
    surrogate = load_surrogate(run_dir)
    summary, k, phi, rate, wells = _sample(store, 7)
    coarse = surrogate.predict(k, rate_m3_per_day=rate, **wells)
    # the same rock on a 2x finer grid of the same section; wells in the fine cell nearest
    # (15 m off) the coarse cell centre
    fine_k = np.kron(k, np.ones((2, 2)))
    fine_wells = {name: 2 * np.asarray(cell) for name, cell in wells.items()}
    fine = surrogate.predict(fine_k, rate_m3_per_day=rate, **fine_wells)
    assert fine.shape == (len(TIMES), 32, 32)
    np.testing.assert_allclose(fine.x, (np.arange(32) + 0.5) * 30.0)  # 960 m section, 30 m cells
    np.testing.assert_allclose(fine.z, (np.arange(32) + 0.5) * 30.0)
    pooled = fine.values.reshape(len(TIMES), 16, 2, 16, 2).mean(axis=(2, 4))
    difference = np.linalg.norm(pooled - coarse.values) / np.linalg.norm(coarse.values)
    assert difference < 0.15, difference  # ~0.08; well maps sized in cells, not metres: ~0.35


def test_evaluate_on_the_test_split_and_at_a_finer_resolution(run, tmp_path, capsys):
    store, run_dir = run
    surrogate = load_surrogate(run_dir)
    result = evaluate(surrogate, store, split="test")
    test = json.loads((run_dir / "config.json").read_text())["split"]["test"]
    assert result["n_samples"] == 2 and sorted(map(int, result["per_sample"])) == test
    assert result["grid"] == [16, 16] and 0 < result["rel_l2_mean"] < 1.0
    # a hand-computed error for one test sample
    summary, k, phi, rate, wells = _sample(store, test[0])
    pred = surrogate.predict(k, rate_m3_per_day=rate, porosity=phi, **wells).values
    truth = read_saturation(summary, [test[0]])[0]
    expected = np.linalg.norm(pred - truth) / np.linalg.norm(truth)
    assert result["per_sample"][str(test[0])] == pytest.approx(expected, rel=1e-5)

    out = tmp_path / "eval.json"
    assert cli_main(["evaluate", str(run_dir), str(store), "--output", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(out.read_text())
    assert printed["rel_l2_mean"] == pytest.approx(result["rel_l2_mean"], rel=1e-6)

    # the same scenarios (same master seed) simulated on 32x32 cells: zero-shot evaluation
    fine = _store(tmp_path / "s32.zarr", 32, 4)
    fine_result = evaluate(surrogate, fine, split="all")
    coarse_result = evaluate(surrogate, store, split="all")
    assert fine_result["grid"] == [32, 32] and fine_result["n_samples"] == 4
    for i in map(str, range(4)):
        assert fine_result["per_sample"][i] < 1.5 * coarse_result["per_sample"][i] + 0.05


def test_bad_prediction_inputs_name_the_value(run):
    store, run_dir = run
    surrogate = load_surrogate(run_dir)
    _, k, _, rate, wells = _sample(store, 0)
    good = {"rate_m3_per_day": rate, **wells}
    cases = [
        (k * 9.869233e-16, good, "looks like m\\^2, not mD: its largest value is 1.1"),
        (-k, good, "must be > 0 mD everywhere, got -"),
        (np.where(np.eye(16) > 0, np.nan, k), good, "holds nan at index \\(0, 0\\); values must be finite"),
        (k[0], good, "must be a \\(z, x\\) field or a \\(sample, z, x\\) batch, got shape \\(16,\\)"),
        (k[:6, :6], good | {"injector_zx": (0, 0), "producer_zx": (5, 5)}, "grid 6x6 is too coarse"),
        (k, good | {"rate_m3_per_day": -5.0}, "rate_m3_per_day must be finite and > 0"),
        (k, good | {"rate_m3_per_day": [1.0, 2.0]}, "rate_m3_per_day must have shape \\(\\) or \\(1,\\)"),
        (k, good | {"injector_zx": (3, 16)}, "injector_zx \\(3, 16\\) lies outside the 16x16 grid"),
        (k, good | {"injector_zx": (1.5, 2)}, "injector_zx must be integer"),
        (k, good | {"producer_zx": wells["injector_zx"]}, "injector and producer share the cell"),
        (k, good | {"porosity": 1.5}, "porosity must lie in \\(0, 1\\], got values in \\[1.5, 1.5\\]"),
    ]
    for field, kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            surrogate.predict(field, **kwargs)
    with pytest.raises(TypeError, match="permeability_md must be numeric"):
        surrogate.predict(np.array([["a"]]), **good)


def test_damaged_model_files_are_refused(run, tmp_path):
    _, run_dir = run
    good = (run_dir / MODEL_FILE).read_bytes()
    state = torch.load(run_dir / MODEL_FILE, weights_only=True)
    path = tmp_path / MODEL_FILE
    with pytest.raises(FileNotFoundError, match="no ccs-fno-model file at"):
        load_surrogate(tmp_path)
    path.write_bytes(good[:1000])
    with pytest.raises(ValueError, match="not a readable ccs-fno-model file \\(truncated or corrupt"):
        load_surrogate(tmp_path)
    torch.save(state | {"model_config": state["model_config"] | {"width": 16}}, path)
    with pytest.raises(ValueError, match="saved model weights does not match its configuration"):
        load_surrogate(tmp_path)
    torch.save(state | {"model_config": state["model_config"] | {"width": 0}}, path)
    with pytest.raises(ValueError, match="invalid model_config"):
        load_surrogate(path)
    torch.save(state | {"normalisers": {"rate": {"mean": 1.0, "std": 1.0}}}, path)
    with pytest.raises(ValueError, match=r"normalisers \['log_permeability', 'porosity', 'well_sigma_m'\]"):
        load_surrogate(path)
    with pytest.raises(ValueError, match="is not a ccs-fno-model file \\(format 'ccs-fno-checkpoint'\\)"):
        load_surrogate(run_dir / CHECKPOINT_FILE)
    torch.save(state | {"times_days": [0.0, 1.0]}, path)
    with pytest.raises(ValueError, match="-> 2 outputs \\(one per report time\\)"):
        load_surrogate(path)
