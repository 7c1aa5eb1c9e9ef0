"""Data integrity (issue 8): damaged stores are detected, reported and repaired bit for bit; reads of
damaged samples fail clearly; one writer per store; no litter; one sample's work is bounded.

Real stores on disk, real ``ccs-fno`` subprocesses, real SIGKILL; tiny grids (8 x 8, 3 report times).
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
import zarr
from stores import build_store

from ccs_fno.cli import main
from data_gen.integrity import (
    StoreDamagedError,
    ledger,
    samples_digest,
    store_fingerprint,
    verify_store,
)
from data_gen.lock import StoreLockedError, lock_path, read_owner, store_lock
from data_gen.physics import SimulationConfig, StepBudgetExceeded, simulate
from data_gen.pipeline import run_chunk
from data_gen.scenarios import MAX_RATE_PORE_VOLUMES_PER_DAY, default_space, sample_seed
from data_gen.store import (
    StoreConfig,
    create_store,
    is_store,
    open_dataset,
    read_config,
)

TIMES = (0.0, 500.0, 1000.0)
SEED = 4


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ccs_fno.cli", *args], capture_output=True, text=True, timeout=timeout
    )


def _store_bytes(path: Path) -> dict[str, bytes]:
    """Every file of a store (metadata and chunks) by relative path."""
    return {str(f.relative_to(path)): f.read_bytes() for f in sorted(path.rglob("*")) if f.is_file()}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """12 channel samples at 8 x 8 cells in 3 chunks of 4, written by an uninterrupted run."""
    return build_store(tmp_path_factory.mktemp("ref") / "ref.zarr", 12, SEED, TIMES, resolution=8)


def test_damage_is_reported_by_sample_and_seed_then_resume_and_repair_restore_it(reference, tmp_path, capsys):
    store = tmp_path / "damaged.zarr"
    shutil.copytree(reference, store)
    assert verify_store(store).ok
    # chunk 0: a saturation chunk file is deleted; chunk 1: a permeability chunk file truncated;
    # chunk 2: one value of sample 9 altered (re-encoded: the file decodes, the checksum differs).
    (store / "saturation/c/0/0/0/0").unlink()
    truncated = store / "permeability/c/1/0/0"
    truncated.write_bytes(truncated.read_bytes()[:10])
    zarr.open_array(store / "saturation", mode="r+")[9, -1, 0, 0] = 0.5

    with pytest.raises(
        StoreDamagedError, match=r"sample 0 \(seed \d+\): chunk file saturation/c/0/0/0/0 is missing"
    ):
        open_dataset(store)  # cheap check on open: a missing chunk of a done sample
    quick = verify_store(store, full=False)
    assert [d.index for d in quick.damaged] == [0, 1, 2, 3]

    assert main(["verify", str(store)]) == 1  # in-process: the dispatcher has `verify`
    text = capsys.readouterr().out
    assert "--repair" in text and f"sample 9 (seed {sample_seed(SEED, 9)}): checksum mismatch" in text
    code = cli("verify", str(store), "--json")  # a real process: exit code and JSON on stdout
    assert code.returncode == 1
    report = json.loads(code.stdout)
    damaged = {d["sample"]: d for d in report["damaged"]}
    assert sorted(damaged) == [0, 1, 2, 3, 4, 5, 6, 7, 9]
    assert all(d["seed"] == sample_seed(SEED, i) for i, d in damaged.items())
    assert "permeability/c/1/0/0 cannot be decoded" in damaged[5]["reason"]
    assert "checksum mismatch" in damaged[9]["reason"]

    # Plain --resume (the store's own configuration) regenerates what the cheap check sees.
    resumed = cli("generate", str(store), "--resume", "--workers", "1", "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert "4 damaged sample(s) regenerated" in resumed.stdout
    assert [d.index for d in verify_store(store).damaged] == [4, 5, 6, 7, 9]

    repaired = cli("generate", str(store), "--repair", "--workers", "1", "--no-progress")
    assert repaired.returncode == 0, repaired.stderr
    assert f"regenerated damaged sample 9 (seed {sample_seed(SEED, 9)}): checksum mismatch" in repaired.stdout
    assert verify_store(store).ok
    assert _store_bytes(store) == _store_bytes(reference)  # bit for bit, metadata included


def test_reads_of_damaged_samples_name_the_sample_and_store(reference, tmp_path, torch_one_thread):
    from ccs_fno.data import ZarrSaturationDataset, fit_normalisers, read_saturation, read_store
    from ccs_fno.nn import FNO
    from ccs_fno.surrogate import Surrogate, evaluate

    store = tmp_path / "s.zarr"
    shutil.copytree(reference, store)
    summary = read_store(store)
    normalisers = fit_normalisers(summary, range(12))
    dataset = ZarrSaturationDataset(summary, range(12), normalisers)
    assert np.isfinite(dataset[5][1].numpy()).all()

    (store / "permeability/c/0/0/0").unlink()  # reads as NaN
    truncated = store / "saturation/c/1/0/0/0"
    truncated.write_bytes(truncated.read_bytes()[:20])
    with pytest.raises(
        StoreDamagedError,
        match=rf"{store}: samples \[2\] are marked done but their 'permeability' holds non-finite",
    ):
        dataset[2]
    with pytest.raises(
        StoreDamagedError, match=rf"{store}: variable 'saturation' of samples \[5\] cannot be read"
    ) as err:
        dataset[5]
    assert "Traceback" not in str(err.value) and err.value.samples == {5: "saturation cannot be read"}
    with pytest.raises(StoreDamagedError, match=r"samples \[4, 5\]"):
        read_saturation(summary, [4, 5])
    with pytest.raises(
        StoreDamagedError, match=r"sample 0 \(seed \d+\): chunk file permeability/c/0/0/0 is missing"
    ):
        read_store(store)  # training and evaluation start from read_store: refused up front

    # evaluate's result is JSON: a model that predicts NaN is an error, not "NaN" in the output.
    model = FNO(5, len(TIMES), modes=(2, 2), width=4, n_layers=1, projection_width=4)
    for parameter in model.parameters():
        parameter.data.fill_(float("nan"))
    surrogate = Surrogate(model, normalisers, summary.grid, TIMES, summary.max_saturation)
    with pytest.raises(ValueError, match="predicted non-finite saturation for samples"):
        evaluate(surrogate, reference, split="all")


def test_an_undecodable_ledger_chunk_counts_as_not_done(reference, tmp_path):
    store = tmp_path / "s.zarr"
    shutil.copytree(reference, store)
    ledger_chunk = store / "done/c/1"
    ledger_chunk.write_bytes(ledger_chunk.read_bytes()[:5])
    assert ledger(store).tolist() == [True] * 4 + [False] * 4 + [True] * 4
    report = verify_store(store, full=False)
    assert [d.index for d in report.damaged] == [4, 5, 6, 7]
    assert "ledger chunk file done/c/1 cannot be decoded" in report.damaged[0].reason
    with pytest.raises(StoreDamagedError, match="regenerate with `ccs-fno generate .* --repair`"):
        open_dataset(store)


def test_verify_refuses_what_is_not_a_store(tmp_path, capsys):
    assert main(["verify", str(tmp_path / "nothing.zarr")]) == 2
    assert "no ccs-fno store at" in capsys.readouterr().err
    (tmp_path / "plain").mkdir()
    assert main(["verify", str(tmp_path / "plain")]) == 2
    assert "is not a ccs-fno store" in capsys.readouterr().err


def test_store_fingerprint_and_samples_digest(reference, tmp_path):
    fingerprint = store_fingerprint(reference, [3, 1, 2])
    assert fingerprint["master_seed"] == SEED and fingerprint["n_samples"] == 12
    assert fingerprint["samples_digest"] == samples_digest(reference, [1, 2, 3])
    assert samples_digest(reference, [1, 2]) != samples_digest(reference, [1, 3])
    other = build_store(tmp_path / "other.zarr", 4, SEED + 1, TIMES, resolution=8)
    assert store_fingerprint(other)["config_sha256"] != fingerprint["config_sha256"]
    assert samples_digest(other, [1, 2, 3]) != fingerprint["samples_digest"]
    json.dumps(fingerprint)


def _hold_lock(path: Path) -> subprocess.Popen:
    """A real process holding the store's write lock until killed."""
    code = (
        "import sys, time\n"
        "from data_gen.lock import store_lock\n"
        f"with store_lock({str(path)!r}):\n"
        "    print('locked', flush=True)\n"
        "    time.sleep(120)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_second_writer_is_refused_and_a_dead_writers_lock_is_taken_over(reference, tmp_path, capsys):
    store = tmp_path / "locked.zarr"
    shutil.copytree(reference, store)
    before = _store_bytes(store)
    holder = _hold_lock(store)
    try:
        owner = read_owner(store)
        assert owner["pid"] == holder.pid
        args = ["--samples", "12", "--geology", "channel", "--seed", str(SEED), "--resolution", "8"]
        for extra in (["--overwrite", *args], ["--resume", *args], ["--repair"]):
            assert main(["generate", str(store), "--workers", "1", "--no-progress", *extra]) == 2
            err = capsys.readouterr().err
            assert (
                f"store {store.absolute()} is being written by pid {holder.pid} on host {owner['host']} since"
                in err
            )
        with pytest.raises(StoreLockedError, match=f"pid {holder.pid}"):
            create_store(tmp_path / "locked.zarr", default_space("channel", 8), SEED, 12)
        assert _store_bytes(store) == before  # nothing replaced, nothing recomputed
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert read_owner(store)["pid"] == holder.pid  # the dead writer's lock file is still there...
    with store_lock(store) as file:  # ...and is taken over: the kernel released its flock
        assert read_owner(store)["pid"] == os.getpid() and file == lock_path(store)
    assert not lock_path(store).exists()


def test_a_lock_file_of_another_host_is_refused_with_its_owner(tmp_path):
    store = tmp_path / "shared.zarr"
    lock_path(store).write_text(json.dumps({"pid": 1234, "host": "node-17", "created": 0.0, "command": "x"}))
    with pytest.raises(
        StoreLockedError, match="pid 1234 on host node-17 since .*remove the lock file by hand"
    ):
        create_store(store, default_space("channel", 8), 0, 4)
    assert not store.exists()


def test_two_concurrent_generate_runs_on_one_new_path(tmp_path):
    store = tmp_path / "new.zarr"
    args = [
        sys.executable,
        "-m",
        "ccs_fno.cli",
        "generate",
        str(store),
        "--samples",
        "4",
        "--geology",
        "channel",
        "--resolution",
        "8",
        "--workers",
        "1",
        "--no-progress",
        "--seed",
        str(SEED),
    ]
    procs = [
        subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, _, err in results if code == 2)
    assert f"store {store} is being written by pid" in loser and "creating-" not in loser
    assert ledger(store).all() and verify_store(store).ok
    assert sorted(os.listdir(tmp_path)) == ["new.zarr"]  # no lock file, no staging litter


def test_staging_litter_of_a_killed_creation_is_removed(tmp_path):
    store = tmp_path / "big.zarr"
    code = (
        "from data_gen.scenarios import default_space\n"
        "from data_gen.store import create_store\n"
        f"create_store({str(store)!r}, default_space('channel', 2), 0, 3000, samples_per_chunk=1)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".big.zarr.creating-*")):
        assert proc.poll() is None and time.monotonic() < deadline, "creation ended before it was killed"
        time.sleep(0.01)
    time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert list(tmp_path.glob(".big.zarr.creating-*")) and not store.exists()
    assert create_store(store, default_space("channel", 8), 0, 4)  # the next creation cleans up
    assert sorted(os.listdir(tmp_path)) == ["big.zarr"] and is_store(store)


def test_an_untouched_store_left_by_an_unreachable_scheduler_is_reused(tmp_path, capsys):
    import dask

    store = tmp_path / "ens.zarr"
    args = [str(store), "--samples", "2", "--geology", "channel", "--resolution", "8", "--no-progress"]
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        assert main(["generate", *args, "--scheduler", "tcp://127.0.0.1:9"]) == 1
    assert "127.0.0.1:9" in capsys.readouterr().err
    assert main(["generate", *args, "--workers", "1"]) == 0  # not refused as "0 of 2 done"
    assert ledger(store).all() and sorted(os.listdir(tmp_path)) == ["ens.zarr"]


def test_one_sample_has_a_bounded_amount_of_work(tmp_path):
    space = default_space(
        "channel", 8, rate_m3_per_day_range=(3000.0, 3400.0), report_times_days=TIMES, max_steps=5
    )
    path = tmp_path / "budget.zarr"
    create_store(path, space, SEED, 2, samples_per_chunk=2)
    outcome = run_chunk(str(path), read_config(path), 0, retries=3)
    assert outcome.n_done == 0
    assert [(f.index, f.seed, f.attempts) for f in outcome.failures] == [
        (0, sample_seed(SEED, 0), 1),
        (1, sample_seed(SEED, 1), 1),
    ]
    assert (
        "StepBudgetExceeded: the simulation used its step budget (max_steps = 5)" in outcome.failures[0].error
    )
    assert not ledger(path).any()

    config = SimulationConfig(
        grid=space.grid, injector_zx=(4, 0), producer_zx=(4, 7), rate_m3_per_day=1e6, max_steps=50
    )
    started = time.perf_counter()
    with pytest.raises(StepBudgetExceeded, match="lower the injection rate or raise max_steps"):
        simulate(np.full((8, 8), 100.0), 0.25, config)
    assert time.perf_counter() - started < 5

    canonical = default_space("channel", 64)
    most = MAX_RATE_PORE_VOLUMES_PER_DAY * canonical.pore_volume_m3
    assert most == pytest.approx(3456.0)
    with pytest.raises(
        ValueError,
        match=r"reaches 289 pore volumes per day .* up to 0.001 pore volumes per day = 3456 m\^3/day",
    ):
        default_space("channel", 8, rate_m3_per_day_range=(1e9, 1e9))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"injector_zx": (4.5, 0)},
            ValueError,
            r"injector_zx must be two integer cell indices \(z, x\), got \(4.5, 0\)",
        ),
        ({"producer_zx": (4, "7")}, ValueError, "producer_zx must be two integer cell indices"),
        ({"rate_m3_per_day": "100"}, TypeError, "rate_m3_per_day must be a number .*got str '100'"),
        ({"max_steps": 2.5}, TypeError, "max_steps must be an integer"),
    ],
)
def test_simulation_config_refuses_what_it_would_truncate(kwargs, error, message):
    base = {"grid": default_space("channel", 8).grid, "injector_zx": (4, 0), "producer_zx": (4, 7)}
    with pytest.raises(error, match=message):
        SimulationConfig(**{**base, **kwargs})
    assert SimulationConfig(**{**base, "injector_zx": (4.0, 0)}).injector_zx == (4, 0)  # integral: fine


def test_rock_errors_name_the_value_and_what_is_allowed():
    config = SimulationConfig(grid=default_space("channel", 8).grid, injector_zx=(4, 0), producer_zx=(4, 7))
    k = np.full((8, 8), 100.0)
    with pytest.raises(
        ValueError, match=r"porosity has shape \(3,\); allowed: one number or a field .* \(8, 8\)"
    ):
        simulate(k, np.full(3, 0.25), config)
    with pytest.raises(TypeError, match="porosity must be numeric .*got str"):
        simulate(k, "0.25", config)
    with pytest.raises(TypeError, match="permeability_md must be numeric"):
        simulate(np.full((8, 8), "100"), 0.25, config)


def test_path_errors_name_the_users_path(tmp_path):
    store = tmp_path / ("s" * 240 + ".zarr")  # a valid name whose staging sibling's name is too long
    with pytest.raises(OSError) as err:
        create_store(store, default_space("channel", 8), 0, 4)
    assert str(store) in str(err.value) and "creating-" not in str(err.value)
    assert os.listdir(tmp_path) == []


def test_store_config_roundtrips_the_step_budget(tmp_path):
    space = default_space("channel", 8, max_steps=123)
    config = StoreConfig(space, 0, 2)
    create_store(tmp_path / "s.zarr", space, 0, 2)
    assert read_config(tmp_path / "s.zarr") == config
