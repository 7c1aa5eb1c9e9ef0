"""Trainer: precision schedule, losses, skipped non-finite steps, run files, resume after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from stores import build_store

from ccs_fno.data import INPUT_CHANNELS
from ccs_fno.train import (
    CHECKPOINT_FILE,
    METRICS_FILE,
    MODEL_FILE,
    ModelConfig,
    TrainConfig,
    Trainer,
    relative_h1_seminorm,
    relative_l2,
)
from ccs_fno.train_cli import main as cli_main
from ccs_fno.train_config import parse_precision_schedule, precision_at

DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
TIMES = (0.0, 250.0, 500.0, 750.0, 1000.0)
TINY = ModelConfig(width=8, modes=4, n_layers=2, projection_width=16)
# One thread: the test machine's cores are shared, and the subprocesses run with one too.
ENV = os.environ | {"OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module", autouse=True)
def one_thread(torch_one_thread):
    """One torch thread (the test machine's cores are shared) for the whole module."""


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """16 channel samples on 16x16 cells, 5 report times: train 12, val 2, test 2."""
    return build_store(tmp_path_factory.mktemp("train") / "s.zarr", 16, 1, TIMES)


def _config(**overrides) -> TrainConfig:
    options = {
        "epochs": 4,
        "batch_size": 4,
        "lr": 1e-2,
        "val_fraction": 0.125,
        "test_fraction": 0.125,
        "device": "cpu",
    }
    return TrainConfig(**(options | overrides))


def test_precision_schedule():
    assert parse_precision_schedule("half:0.7,full") == (("half", 0.7), ("full", 1.0))
    assert parse_precision_schedule("mixed") == (("mixed", 1.0),)
    phases = parse_precision_schedule("half:0.3,mixed:0.7,full")
    assert [precision_at(phases, e, 10) for e in range(10)] == ["half"] * 3 + ["mixed"] * 4 + ["full"] * 3
    for bad, message in (
        ("half:0.7", "every phase but the last needs ':fraction'"),
        ("full,half", "every phase but the last needs ':fraction'"),
        ("quarter:0.5,full", "'quarter' is not a precision; allowed: \\('full', 'half', 'mixed'\\)"),
        ("half:0.7,mixed:0.5,full", "phase ends must increase within \\(0, 1\\), got '0.5'"),
        ("half:x,full", "got 'x'"),
    ):
        with pytest.raises(ValueError, match=message):
            parse_precision_schedule(bad)
    with pytest.raises(ValueError, match="precision schedule 'half:1.0,full': phase ends"):
        TrainConfig(precision_schedule="half:1.0,full")


def test_config_errors_name_the_value():
    with pytest.raises(ValueError, match=r"scheduler must be one of \('cosine', 'step'\), got 'linear'"):
        TrainConfig(scheduler="linear")
    with pytest.raises(ValueError, match="lr must be a finite float > 0, got 0"):
        TrainConfig(lr=0)
    with pytest.raises(ValueError, match="epochs must be a finite int >= 1, got 2.5"):
        TrainConfig(epochs=2.5)
    with pytest.raises(ValueError, match="device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got 'tpu'"):
        TrainConfig(device="tpu")
    with pytest.raises(ValueError, match=r"unknown TrainConfig fields \['momentum'\]"):
        TrainConfig.from_dict({"momentum": 0.9})
    with pytest.raises(ValueError, match=r"modes must be an int or a \(z, x\) pair, got \(4, 4, 4\)"):
        ModelConfig(modes=(4, 4, 4))


def test_relative_losses_against_hand_values():
    z, x = torch.meshgrid(torch.arange(6.0), torch.arange(8.0), indexing="ij")
    target = torch.stack([1.0 + x + 2 * z, 3.0 + 0 * x]).unsqueeze(0).repeat(2, 1, 1, 1)
    pred = target.clone()
    pred[1] *= 1.25  # sample 1 is off by 25 % everywhere
    torch.testing.assert_close(relative_l2(pred, target), torch.tensor([0.0, 0.25]))
    # gradients of pred[1]: 1.25x those of the target -> relative H1 seminorm error 0.25
    torch.testing.assert_close(relative_h1_seminorm(pred, target), torch.tensor([0.0, 0.25]))
    shifted = target + 7.0  # a constant shift has no gradient: H1 seminorm error 0
    torch.testing.assert_close(relative_h1_seminorm(shifted, target), torch.zeros(2))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("scale", [1e20, 1e38])  # on CPU: inf loss / NaN gradients
def test_step_with_non_finite_loss_or_gradients_is_skipped(store, tmp_path, scale, device):
    # on CUDA in half precision: float16 overflow, with the GradScaler enabled
    schedule = "half" if device == "cuda" else "full"
    trainer = Trainer.start(
        store, tmp_path / "run", _config(device=device, precision_schedule=schedule), TINY
    )
    x, y = next(iter(trainer.train_loader))
    assert trainer.train_step(x, y) is not None  # a normal step: optimiser state now exists
    assert trainer.skipped_steps == 0
    weights = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    moments = [{k: v.clone() for k, v in state.items()} for state in trainer.optimizer.state.values()]
    assert trainer.train_step(x * scale, y) is None
    assert trainer.skipped_steps == 1
    for name, value in trainer.model.state_dict().items():
        assert torch.equal(value, weights[name]), name
    for before, state in zip(moments, trainer.optimizer.state.values(), strict=True):
        assert all(torch.equal(state[k], before[k]) for k in before)
    assert trainer.train_step(x, y) is not None and trainer.skipped_steps == 1
    assert not torch.equal(trainer.model.lifting.weight, weights["lifting.weight"])


@pytest.mark.parametrize("device", DEVICES)
def test_fit_writes_run_files_and_follows_the_schedules(store, tmp_path, device):
    run = tmp_path / "run"
    config = _config(
        precision_schedule="half:0.5,full", scheduler="step", step_size=1, gamma=0.5, device=device
    )
    trainer = Trainer.start(store, run, config, TINY)
    # float16 on CUDA needs loss scaling; bfloat16 on CPU does not (the scaler is a pass-through)
    assert trainer.scaler.is_enabled() is (device == "cuda")
    history = trainer.fit(progress=False)
    assert [r["epoch"] for r in history] == [1, 2, 3, 4]
    assert [r["precision"] for r in history] == ["half", "half", "full", "full"]
    assert [r["lr"] for r in history] == pytest.approx([1e-2, 5e-3, 2.5e-3, 1.25e-3])
    assert all(r["skipped_steps"] == 0 and r["epoch_time_s"] > 0 for r in history)
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    lines = [json.loads(line) for line in (run / METRICS_FILE).read_text().splitlines()]
    assert lines == history
    saved = json.loads((run / "config.json").read_text())
    assert saved["train_config"] == config.to_dict()
    assert saved["model_config"]["width"] == 8 and saved["model_config"]["modes"] == [4, 4]
    assert saved["grid"]["nx"] == 16 and saved["times_days"] == list(TIMES)
    assert saved["store"] == str(store.resolve()) and saved["input_channels"] == list(INPUT_CHANNELS)
    assert {k: len(v) for k, v in saved["split"].items()} == {"train": 12, "val": 2, "test": 2}
    assert set(saved["normalisers"]) == {"log_permeability", "porosity", "rate", "well_sigma_m"}
    checkpoint = torch.load(run / CHECKPOINT_FILE, weights_only=True)
    assert checkpoint["epoch"] == 4 and checkpoint["history"] == history
    assert {"python", "numpy", "torch", "cuda"} == set(checkpoint["rng"])
    assert (run / MODEL_FILE).is_file()
    assert not [p.name for p in run.iterdir() if p.name.startswith(".")]  # no temp files left


def _train_args(store, run_dir, *extra):
    return [
        "train",
        str(store),
        "--run-dir",
        str(run_dir),
        "--no-progress",
        *extra,
    ]


RESUME_OPTIONS = (
    "--epochs 10 --batch-size 4 --lr 1e-2 --width 8 --modes 4 --layers 2 --device cpu "
    "--deterministic --precision-schedule half:0.5,full --val-fraction 0.125 --test-fraction 0.125"
).split()


def test_resume_after_sigkill_reproduces_the_uninterrupted_run(store, tmp_path):
    # uninterrupted reference, in this process (the API), with the options the CLI gets
    reference = Trainer.start(
        store,
        tmp_path / "reference",
        _config(epochs=10, precision_schedule="half:0.5,full", deterministic=True),
        ModelConfig(width=8, modes=4, n_layers=2),
    )
    expected = reference.fit(progress=False)

    run = tmp_path / "killed"
    command = [sys.executable, "-m", "ccs_fno.train_cli", *_train_args(store, run, *RESUME_OPTIONS)]
    proc = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    metrics, deadline = run / METRICS_FILE, time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= 3:
            break  # epoch 3 is checkpointed (metrics lines follow the checkpoint)
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    _, stderr = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, stderr.decode()
    done_before_kill = json.loads(metrics.read_text().splitlines()[-1])["epoch"]
    assert 3 <= done_before_kill < 10  # killed mid-run, after epoch 3 was checkpointed

    resumed = subprocess.run(
        [sys.executable, "-m", "ccs_fno.train_cli", *_train_args(store, run, "--resume")],
        env=ENV,
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stderr
    lines = [json.loads(line) for line in metrics.read_text().splitlines()]

    def curve(records):
        return [{k: v for k, v in r.items() if k not in ("epoch_time_s", "samples_per_s")} for r in records]

    assert curve(lines) == curve(expected)  # exact: same batches, same arithmetic
    final = torch.load(run / MODEL_FILE, weights_only=True)["state_dict"]
    for name, value in reference.model.state_dict().items():
        assert torch.equal(final[name], value), name


def test_existing_runs_and_bad_checkpoints_are_refused(store, tmp_path, capsys):
    run = tmp_path / "run"
    Trainer.start(store, run, _config(epochs=1), TINY).fit(progress=False)
    with pytest.raises(FileExistsError, match="already holds a training run"):
        Trainer.start(store, run, _config(), TINY)
    assert cli_main(_train_args(store, run, "--resume", "--epochs", "5")) == 2
    assert "options ['epochs'] were given with --resume" in capsys.readouterr().err
    assert cli_main(_train_args(tmp_path / "nowhere.zarr", tmp_path / "r2")) == 2
    assert "no ccs-fno store" in capsys.readouterr().err

    path = run / CHECKPOINT_FILE
    good = path.read_bytes()
    state = torch.load(path, weights_only=True)

    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="not a readable ccs-fno-checkpoint file \\(truncated or"):
        Trainer.resume(run)
    torch.save(state | {"model_config": state["model_config"] | {"width": 12}}, path)
    with pytest.raises(ValueError, match="saved model weights does not match its configuration"):
        Trainer.resume(run)
    normalisers = dict(state["normalisers"])
    del normalisers["porosity"]
    torch.save(state | {"normalisers": normalisers}, path)
    with pytest.raises(ValueError, match=r"normalisers \['porosity'\] are missing"):
        Trainer.resume(run)
    del state["optimizer"]
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"incomplete ccs-fno-checkpoint file: \['optimizer'\]"):
        Trainer.resume(run)
    path.write_bytes(good)
    assert Trainer.resume(run).epoch == 1
    assert np.isfinite(Trainer.resume(run).history[0]["val_rel_l2"])
