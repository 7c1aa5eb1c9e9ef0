"""A run is bound to its data and its own files; kills and full disks leave it resumable."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest
from stores import build_store

from ccs_fno.run_dir import CHECKPOINT_FILE, MODEL_FILE, RunDir, RunDirFull
from ccs_fno.surrogate import evaluate, load_surrogate
from ccs_fno.train import ModelConfig, TrainConfig, Trainer
from ccs_fno.train_cli import main as cli_main

TIMES = (0.0, 500.0, 1000.0)
TINY = ModelConfig(width=4, modes=3, n_layers=1, projection_width=8)


@pytest.fixture(scope="module")
def stores(tmp_path_factory, torch_one_thread):
    """Two stores with the same configuration but other master seeds (8 samples, 8x8)."""
    base = tmp_path_factory.mktemp("bound")
    return [build_store(base / f"seed{seed}.zarr", 8, seed, TIMES, resolution=8) for seed in (1, 2)]


def _config(**overrides) -> TrainConfig:
    options = {"epochs": 2, "batch_size": 2, "val_fraction": 0.25, "test_fraction": 0.25, "device": "cpu"}
    return TrainConfig(**(options | overrides))


def _train(store, run_dir, **overrides) -> Trainer:
    trainer = Trainer.start(store, run_dir, _config(**overrides), TINY)
    trainer.fit(progress=False)
    return trainer


def test_a_swapped_store_is_refused_on_resume_and_evaluate(stores, tmp_path, capsys):
    store = tmp_path / "data.zarr"
    shutil.copytree(stores[0], store)
    run = tmp_path / "run"
    _train(store, run, epochs=1)
    config = json.loads((run / "config.json").read_text())
    assert set(config["fingerprint"]) >= {"config_sha256", "master_seed", "n_samples", "split_sha256"}
    shutil.rmtree(store)
    shutil.copytree(stores[1], store)  # another seed's store at the same path
    with pytest.raises(
        ValueError, match="is not the store the run in .* was trained on: .*master_seed: run 1, store 2"
    ):
        Trainer.resume(run)
    assert cli_main(["train", str(store), "--run-dir", str(run), "--resume", "--no-progress"]) == 2
    assert "Restore the original store at that path" in capsys.readouterr().err
    surrogate = load_surrogate(run)
    with pytest.raises(ValueError, match="split='test' names the surrogate's training-store samples"):
        evaluate(surrogate, store, split="test")
    assert evaluate(surrogate, store, split="all")["n_samples"] == 8  # any store, all samples
    assert cli_main(["evaluate", str(run), str(store)]) == 2
    capsys.readouterr()


def test_files_from_another_run_are_refused(stores, tmp_path):
    first, second = _train(stores[0], tmp_path / "a", epochs=1), _train(stores[0], tmp_path / "b", epochs=1)
    shutil.copy(second.run_dir / MODEL_FILE, first.run_dir / MODEL_FILE)
    with pytest.raises(
        ValueError, match="model.pt belongs to another training run .*copied in from elsewhere"
    ):
        load_surrogate(first.run_dir)
    shutil.copy(second.run_dir / CHECKPOINT_FILE, first.run_dir / CHECKPOINT_FILE)
    with pytest.raises(ValueError, match="checkpoint.pt belongs to another training run"):
        Trainer.resume(first.run_dir)
    assert load_surrogate(second.run_dir / MODEL_FILE).split is not None  # a model file alone loads


def test_litter_of_a_killed_write_is_removed_and_the_run_resumes(stores, tmp_path):
    run = tmp_path / "run"
    _train(stores[0], run, epochs=1)
    litter = [run / ".checkpoint.pt.tmp-0123abcd", run / ".model.pt.tmp-4567ef01"]
    for path in litter:
        path.write_bytes(os.urandom(4096))  # what a SIGKILL mid-write leaves
    trainer = Trainer.resume(run)
    assert not any(p.exists() for p in litter)
    assert trainer.epoch == 1
    # killed before its first checkpoint: config.json and litter only; a new run starts cleanly
    fresh = tmp_path / "fresh"
    Trainer.start(stores[0], fresh, _config(), TINY)
    (fresh / ".checkpoint.pt.tmp-89abcdef").write_bytes(b"x" * 100)
    Trainer.start(stores[0], fresh, _config(), TINY).fit(progress=False)
    assert sorted(p.name for p in fresh.iterdir()) == [
        "checkpoint.pt",
        "config.json",
        "metrics.jsonl",
        "model.pt",
    ]


class FillDisk:
    """Trainer hook: after epoch 1, fill the file system of the run up to ``leave`` bytes."""

    def __init__(self, leave: int) -> None:
        self.leave = leave

    def on_epoch_end(self, trainer: Trainer, record: dict) -> None:
        if record["epoch"] == 1:
            free = shutil.disk_usage(trainer.run_dir).free
            (trainer.run_dir.parent / "filler").write_bytes(b"\0" * max(free - self.leave, 0))


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root (CI runs as root)")
def test_a_full_disk_ends_in_a_clear_message_and_the_run_stays_resumable(stores, tmp_path, capsys):
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)], check=True)
    try:
        run = disk / "run"
        trainer = Trainer.start(stores[0], run, _config(epochs=3), TINY, hooks=[FillDisk(4096)])
        with pytest.raises(RunDirFull, match="the disk is full: .*checkpoint.pt could not be written"):
            trainer.fit(progress=False)
        assert RunDir(run).load_checkpoint()["epoch"] == 1  # the previous checkpoint is intact
        assert not [p.name for p in run.iterdir() if p.name.startswith(".")]  # no litter
        resume = ["train", str(stores[0]), "--run-dir", str(run), "--resume", "--no-progress"]
        assert cli_main(resume) == 1  # still full: a clear message, no traceback
        err = capsys.readouterr().err
        assert "ccs-fno train: error: the disk is full" in err and "--resume" in err
        (disk / "filler").unlink()
        assert cli_main(resume) == 0
        capsys.readouterr()
        epochs = [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()]
        assert epochs == [1, 2, 3]
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_sigkill_during_the_first_checkpoint_leaves_nothing_the_next_run_refuses(stores, tmp_path):
    run = tmp_path / "run"
    # a wide model: its ~95 MB checkpoint takes long enough to write that the kill lands mid-write
    command = [sys.executable, "-m", "ccs_fno.train_cli", "train", str(stores[0]), "--run-dir", str(run)]
    command += "--epochs 1 --batch-size 2 --width 256 --modes 3 --layers 4 --device cpu --no-progress".split()
    command += "--val-fraction 0.25 --test-fraction 0.25".split()
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline, litter = time.monotonic() + 120, []
    while time.monotonic() < deadline and proc.poll() is None and not litter:
        litter = list(run.glob(".checkpoint.pt.tmp-*"))
        time.sleep(0.001)
    proc.kill()
    _, stderr = proc.communicate()
    assert litter and proc.returncode == -9, stderr.decode()[-2000:]
    assert litter[0].exists() and not (run / CHECKPOINT_FILE).exists()  # what a kill leaves
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]  # the same command starts over cleanly
    assert sorted(p.name for p in run.iterdir()) == [
        "checkpoint.pt",
        "config.json",
        "metrics.jsonl",
        "model.pt",
    ]
