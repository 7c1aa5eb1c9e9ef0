"""Data-parallel training on real torchrun processes (gloo, CPU) against serial runs.

Every distributed result is compared with the same run on one process: losses, parameters and
gradients (float64 to 1e-10, float32 to 1e-5), with and without synchronised batch norm; the
chunks each rank reads; the skip decision; resume across world sizes; a killed rank restarted by
torchrun; a rank that raises; bad input refused before any process starts.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from stores import build_store
from torchrun import torchrun

from ccs_fno.distributed import ProcessContext, get_context, process_grid, shard_range
from ccs_fno.run_dir import CHECKPOINT_FILE, METRICS_FILE, MODEL_FILE
from ccs_fno.surrogate import load_surrogate
from ccs_fno.train import ModelConfig, TrainConfig, Trainer
from ccs_fno.train_cli import main as cli_main
from ccs_fno.training_data import GlobalBatchSampler

WORKER = Path(__file__).with_name("dist_worker.py")
TIMES = (0.0, 250.0, 500.0, 750.0, 1000.0)
MODEL = {"width": 8, "modes": 4, "n_layers": 2, "projection_width": 16}
TIMEOUT_S = 240  # a hung rank fails the test, never the CI
ENV = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parent)}


@pytest.fixture(scope="module", autouse=True)
def one_thread(torch_one_thread):
    """One torch thread (the test machine's cores are shared) for the whole module."""


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """16 samples on 16x16 cells, one sample and 8 z rows per chunk: train 12, val 2, test 2."""
    path = tmp_path_factory.mktemp("dist") / "s.zarr"
    return build_store(path, 16, 3, TIMES, samples_per_chunk=1, spatial_chunks=2)


def _config(**overrides) -> dict:
    base = {
        "epochs": 4,
        "batch_size": 4,
        "lr": 1e-2,
        "val_fraction": 0.125,
        "test_fraction": 0.125,
        "device": "cpu",
        "deterministic": True,
    }
    return base | overrides


def _torchrun(nproc: int, *args: str, timeout: float = TIMEOUT_S) -> subprocess.CompletedProcess:
    return torchrun(nproc, *args, env=ENV, timeout=timeout)


def _run_worker(nproc: int, spec: dict, out: Path) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    spec = {"out": str(out), "model": MODEL} | spec
    (out / "spec.json").write_text(json.dumps(spec))
    done = _torchrun(nproc, str(WORKER), str(out / "spec.json"))
    assert done.returncode == 0, done.stderr[-4000:]
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(nproc)]


def _serial(store: Path, run_dir: Path, hooks=(), model=MODEL, **config) -> Trainer:
    model = ModelConfig(**model)
    trainer = Trainer.start(store, run_dir, TrainConfig(**_config(**config)), model, hooks=hooks)
    trainer.fit(progress=False)
    return trainer


def _assert_same_run(distributed: dict, serial: Trainer, tol: float, weight_tol: float | None = None) -> None:
    """Losses and metrics to ``tol``; weights and gradients to ``weight_tol`` (default ``tol``)."""
    keys = ("train_loss", "val_rel_l2", "lr", "skipped_steps")
    for d, s in zip(distributed["history"], serial.history, strict=True):
        for key in keys:
            assert d[key] == pytest.approx(s[key], rel=tol, abs=tol), (key, d, s)
    tol = tol if weight_tol is None else weight_tol
    for name, value in serial.model.state_dict().items():
        torch.testing.assert_close(
            distributed["params"][name],
            value.cpu(),
            rtol=tol,
            atol=tol,
            msg=lambda m, name=name: f"{name}: {m}",
        )
    grads = {k: p.grad for k, p in serial.model.named_parameters()}
    assert set(distributed["grads"]) == set(grads)
    for name, grad in grads.items():
        torch.testing.assert_close(distributed["grads"][name], grad, rtol=tol, atol=tol, msg=name)
    assert distributed["test_rel_l2"] == pytest.approx(serial.evaluate("test"), rel=tol)


def test_process_context_is_serial_without_torchrun():
    context = get_context()
    assert (context.rank, context.world_size, context.size("data"), context.size("spatial")) == (0, 1, 1, 1)
    assert context.is_main and not context.distributed and context.group("data") is None
    value = torch.tensor([3.0])
    assert context.all_reduce_sum(value).item() == 3.0 and context.all_reduce_sum(value, None).item() == 3.0
    assert process_grid(4, 2) == {"data": [(0, 2), (1, 3)], "spatial": [(0, 1), (2, 3)]}
    with pytest.raises(ValueError, match="world size 6 is not divisible by the spatial parallel size 4"):
        process_grid(6, 4)
    with pytest.raises(ValueError, match="process group must be one of \\('data', 'spatial'\\), got 'model'"):
        ProcessContext().group("model")
    assert [shard_range(7, 3, i) for i in range(3)] == [(0, 3), (3, 5), (5, 7)]


def test_global_batches_do_not_depend_on_the_number_of_processes():
    dataset = list(range(11))  # 11 samples, global batch 4: 2 full batches, 3 unused per epoch
    for epoch in (0, 1):
        batches = {}
        for p in (1, 2, 4):
            ranks = []
            for r in range(p):
                sampler = GlobalBatchSampler(dataset, 4, p, r, seed=5)
                sampler.set_epoch(epoch)
                ranks.append(list(sampler))
            assert len({len(x) for x in ranks}) == 1  # equal shares: every rank takes the same steps
            per = 4 // p
            batches[p] = [sorted(i for x in ranks for i in x[k * per : (k + 1) * per]) for k in range(2)]
        assert batches[1] == batches[2] == batches[4]
        used = [i for b in batches[1] for i in b]
        assert len(used) == len(set(used)) == 8  # no padding duplicates
    with pytest.raises(ValueError, match="global batch size 6 is not divisible by the 4"):
        GlobalBatchSampler(dataset, 6, 4, 0, seed=0)


CASES = {  # name: (train options, model options, tolerance)
    "float64": ({"dtype": "float64"}, {}, 1e-10),
    "float64-batchnorm": ({"dtype": "float64"}, {"norm": "batch"}, 1e-10),
    "float32": ({"dtype": "float32"}, {}, 1e-5),
    "float32-batchnorm": ({"dtype": "float32"}, {"norm": "batch"}, 1e-5),
}
# autocast (bfloat16 on CPU) for half the epochs, then full: losses equal the serial run's up to
# bfloat16 rounding of per-rank (batch 2) vs whole-batch (4) sums (measured 1.6e-4 relative; 1e-3
# allowed); weights to 2 lr: Adam turns the rounding of near-zero gradients into up to one step
# (a few of 3584 spectral weights moved 1e-2 apart).
HALF_CASE = ({"precision_schedule": "half:0.5,full"}, {}, 1e-3, 2e-2)


def test_data_parallel_training_equals_serial(store, tmp_path):
    out = tmp_path / "p2"
    cases = CASES | {"half-then-full": HALF_CASE[:3]}
    configs = {name: {"train": _config(**t), "model": MODEL | m} for name, (t, m, _) in cases.items()}
    configs["float32-fp16-grads"] = {"train": _config(grad_compression="fp16"), "model": MODEL}
    configs["float64-soap"] = {"train": _config(dtype="float64", optimizer="soap"), "model": MODEL}
    spec = {"case": "train", "store": str(store), "configs": configs, "snapshot_epoch": 2}
    ranks = _run_worker(2, spec, out)  # 2 processes, per-rank batch 2, global batch 4

    for name, (train, model, tol) in cases.items():
        serial = _serial(store, tmp_path / f"serial-{name}", model=MODEL | model, **train)
        weight_tol = HALF_CASE[3] if name == "half-then-full" else None
        for r in (0, 1):  # both ranks hold the same model
            _assert_same_run(ranks[r][name], serial, tol, weight_tol)
        # checkpoints hold the unwrapped model: model.pt of the 2-process run loads as usual
        saved = torch.load(out / name / MODEL_FILE, weights_only=True)["state_dict"]
        assert set(saved) == set(serial.model.state_dict())
        # sharded reading: each rank opened only the chunks of its own samples (1 sample and
        # 2 z chunks per sample: chunk keys sample/time/z/x)
        opened = [set(ranks[r][name]["opened_chunks"]) for r in (0, 1)]
        samples = [ranks[r][name]["epoch0_samples"] for r in (0, 1)]
        for r in (0, 1):
            assert {f"{s}/0/{z}/0" for s in samples[r] for z in (0, 1)} == opened[r], (r, opened[r])
        assert not opened[0] & opened[1] and len(opened[0] | opened[1]) == 24

    # half-precision gradients: half the bytes on the wire, nearly the same run
    full, half = ranks[0]["float32"]["history"], ranks[0]["float32-fp16-grads"]["history"]
    assert all(
        h["grad_bytes_per_rank"] * 2 == f["grad_bytes_per_rank"] > 0 for f, h in zip(full, half, strict=True)
    )
    assert half[-1]["train_loss"] == pytest.approx(full[-1]["train_loss"], rel=1e-2)

    # SOAP under DDP: the ranks stay identical (same averaged gradient, same preconditioner). It
    # is not compared with serial to 1e-10: its eigenbases of nearly degenerate Gram matrices
    # turn round-off differences of the gradient sum into different (equally valid) bases.
    soap = [ranks[r]["float64-soap"] for r in (0, 1)]
    assert all(torch.equal(soap[0]["params"][k], soap[1]["params"][k]) for k in soap[0]["params"])
    serial = _serial(store, tmp_path / "serial-soap", dtype="float64", optimizer="soap")
    assert soap[0]["history"][-1]["train_loss"] == pytest.approx(serial.history[-1]["train_loss"], rel=0.1)
    assert soap[0]["history"][-1]["train_loss"] < soap[0]["history"][0]["train_loss"]
    resumed = Trainer.resume(out / "float64-soap-snapshot")  # SOAP state resumes on 1 process
    assert type(resumed.optimizer).__name__ == "SOAP" and resumed.optimizer.state
    resumed.fit(progress=False)
    assert resumed.history[-1]["train_loss"] == pytest.approx(soap[0]["history"][-1]["train_loss"], rel=0.1)

    # resume across world sizes: the 2-process snapshot after epoch 2 continues on 1 process
    resumed = Trainer.resume(out / "float64-snapshot")
    assert resumed.epoch == 2
    resumed.fit(progress=False)
    serial = Trainer.resume(tmp_path / "serial-float64")  # the finished serial run, epoch 4
    for name, value in serial.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[name], value, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("nproc", [2, 4], ids=["1x2", "2x2"])
def test_spatially_sharded_training_equals_serial(store, tmp_path, nproc):
    """data x spatial process grids 1 x 2 and 2 x 2: the grid of every sample split in z slabs."""
    cases = {
        "float64": ({"dtype": "float64"}, {}),
        "float64-batchnorm": ({"dtype": "float64"}, {"norm": "batch"}),
    }
    if nproc == 4:  # one case on the oversubscribed 4-process grid keeps the test short
        cases.pop("float64-batchnorm")
    configs = {name: {"train": _config(**t), "model": MODEL | m} for name, (t, m) in cases.items()}
    spec = {"case": "train", "store": str(store), "configs": configs, "snapshot_epoch": 2, "spatial": 2}
    out = tmp_path / "sharded"
    ranks = _run_worker(nproc, spec, out)
    for name, (train, model) in cases.items():
        serial = _serial(store, tmp_path / f"serial-{name}", model=MODEL | model, **train)
        for r in range(nproc):
            _assert_same_run(ranks[r][name], serial, 1e-10)
            # each rank of a spatial group read only its z chunk (rows 0-7 or 8-15) of its samples
            z, samples = r % 2, ranks[r][name]["epoch0_samples"]
            assert set(ranks[r][name]["opened_chunks"]) == {f"{s}/0/{z}/0" for s in samples}
        # the sharded run's files are serial ones: model.pt loads on one process as usual
        surrogate = load_surrogate(out / name)  # a float32 model: the float64 weights, rounded
        for key, value in serial.model.state_dict().items():
            torch.testing.assert_close(surrogate.model.state_dict()[key], value.float())
    # and its checkpoint (gathered Adam moments included) resumes on one process
    resumed = Trainer.resume(out / "float64-snapshot")
    resumed.fit(progress=False)
    serial = Trainer.resume(tmp_path / "serial-float64")
    for key, value in serial.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("spatial", [1, 2], ids=["data-parallel", "spatial"])
def test_serial_checkpoint_resumes_on_two_processes(store, tmp_path, spatial):
    class Snapshot:
        def on_epoch_end(self, trainer, record):
            if record["epoch"] == 2:
                shutil.copytree(trainer.run_dir, tmp_path / "snapshot")

    serial = _serial(store, tmp_path / "serial", hooks=[Snapshot()], dtype="float64")
    spec = {"case": "resume", "run_dir": str(tmp_path / "snapshot"), "spatial": spatial}
    got = _run_worker(2, spec, tmp_path / "p2")
    for r in (0, 1):
        assert [h["epoch"] for h in got[r]["resumed"]["history"]] == [1, 2, 3, 4]
        assert got[r]["resumed"]["history"][-1]["processes"] == 2
        assert got[r]["resumed"]["history"][-1].get("spatial_parallel", 1) == spatial
        for name, value in serial.model.state_dict().items():
            torch.testing.assert_close(got[r]["resumed"]["params"][name], value, rtol=1e-10, atol=1e-10)


def test_a_step_non_finite_on_one_rank_is_skipped_on_all(store, tmp_path):
    got = _run_worker(2, {"case": "skip", "store": str(store), "config": _config()}, tmp_path / "skip")
    for r in (0, 1):
        skip = got[r]["skip"]
        assert skip["first"] is None and skip["unchanged"] and skip["skipped"] == 1
        assert skip["second"] is not None and np.isfinite(skip["second"])
    assert got[0]["skip"]["second"] == got[1]["skip"]["second"]  # the global loss


def test_a_rank_that_raises_stops_the_job(store, tmp_path):
    spec = {
        "case": "raise",
        "store": str(store),
        "config": _config(),
        "raise_rank": 1,
        "out": str(tmp_path),
        "model": MODEL,
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    start = time.monotonic()
    done = _torchrun(2, str(WORKER), str(tmp_path / "spec.json"), timeout=120)
    assert done.returncode != 0
    assert "injected failure on rank 1 at step 1" in done.stderr
    assert time.monotonic() - start < 100  # stopped, not waiting for a collective timeout


def _launch_args(store: Path, run_dir: Path, *extra: str) -> list[str]:
    options = "--epochs 12 --batch-size 4 --lr 1e-2 --width 8 --modes 4 --layers 2 --device cpu "
    options += "--deterministic --dtype float64 --val-fraction 0.125 --test-fraction 0.125 --no-progress"
    return ["train", str(store), "--run-dir", str(run_dir), *options.split(), *extra]


def test_killed_rank_is_restarted_from_the_checkpoint(store, tmp_path):
    import psutil

    run = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "ccs_fno.train_cli",
        *_launch_args(store, run, "--nproc", "2", "--max-restarts", "1"),
    ]
    proc = subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics, deadline = run / METRICS_FILE, time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline and proc.poll() is None:
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= 2:
            break
        time.sleep(0.01)
    workers = [
        p
        for p in psutil.Process(proc.pid).children(recursive=True)
        if "ccs_fno.train_cli" in " ".join(p.cmdline())
    ]
    workers = [p for p in workers if p.ppid() != proc.pid]  # torchrun's children, not torchrun
    assert len(workers) == 2, [p.cmdline() for p in workers]
    workers[-1].send_signal(signal.SIGKILL)
    epochs_at_kill = len(metrics.read_text().splitlines())
    assert 2 <= epochs_at_kill < 12, epochs_at_kill  # killed mid-run
    try:
        stdout, stderr = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode == 0, stderr[-4000:]
    assert "restarted by torchrun; continuing from the checkpoint of epoch" in stderr
    assert [json.loads(line)["epoch"] for line in metrics.read_text().splitlines()] == list(range(1, 13))
    cli_model = MODEL | {"projection_width": ModelConfig().projection_width}  # the CLI's default
    serial = _serial(store, tmp_path / "serial", model=cli_model, epochs=12, dtype="float64")
    final = torch.load(run / MODEL_FILE, weights_only=True)["state_dict"]
    for name, value in serial.model.state_dict().items():
        torch.testing.assert_close(final[name], value, rtol=1e-10, atol=1e-10, msg=name)
    assert json.loads(stdout.strip().splitlines()[-1])["epochs"] == 12


def test_bad_launches_are_refused_before_any_process_starts(store, tmp_path, capsys):
    run = tmp_path / "run"
    assert cli_main(_launch_args(store, run, "--nproc", "13")) == 2
    assert "13 data-parallel processes for 12 training samples" in capsys.readouterr().err
    assert cli_main(_launch_args(store, run, "--nproc", "3")) == 2
    assert "global batch size 4 is not divisible by the 3 data-parallel processes" in capsys.readouterr().err
    assert cli_main(_launch_args(tmp_path / "missing.zarr", run, "--nproc", "2")) == 2
    assert "no ccs-fno store" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(_launch_args(store, run, "--nproc", "0"))
    assert "must be an integer >= 1, got '0'" in capsys.readouterr().err
    for extra, message in (
        (["--spatial-parallel", "2"], "--spatial-parallel 2 needs that many processes: add --nproc 2"),
        (["--nproc", "3", "--spatial-parallel", "2"], "--nproc 3 is not divisible by --spatial-parallel 2"),
        (["--nproc", "2", "--spatial-parallel", "2", "--modes", "1"], "exceeds the 1 retained modes along x"),
    ):
        assert cli_main(_launch_args(store, run, *extra)) == 2
        assert message in capsys.readouterr().err
    assert not run.exists()  # nothing half-written
    Trainer.start(store, run, TrainConfig(**_config(epochs=1)), ModelConfig(**MODEL)).fit(progress=False)
    for changed in (["--optimizer", "soap"], ["--width", "16"], ["--nproc", "2", "--layers", "3"]):
        assert cli_main(["train", str(store), "--run-dir", str(run), "--resume", *changed]) == 2
        assert (
            "were given with --resume; a resumed run keeps its saved configuration" in capsys.readouterr().err
        )
    assert CHECKPOINT_FILE == "checkpoint.pt"
