"""`ccs-fno generate` in real subprocesses: SIGKILL + resume, failures, refusal of bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from ccs_fno.cli import main
from data_gen.cli import GEOLOGY_CHOICES
from data_gen.geology import GEOLOGY_KINDS
from data_gen.integrity import ledger
from data_gen.pipeline import FAIL_SAMPLES_ENV
from data_gen.scenarios import default_space, sample_seed
from data_gen.store import create_store, is_store, open_dataset, read_config

SMALL = ["--resolution", "16", "--workers", "1", "--no-progress"]


def cli(*args: str, env: dict[str, str] | None = None, **kwargs) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "ccs_fno.cli", "generate", *args]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=120, env=env or os.environ.copy(), **kwargs
    )


def _chunk_files(path: Path) -> dict[str, bytes]:
    """Every finished Zarr chunk of the store (not temporary files of interrupted writes)."""
    return {
        str(f.relative_to(path)): f.read_bytes()
        for f in path.rglob("*")
        if f.is_file() and f.name != "zarr.json" and "/c/" in f.as_posix() and f.name.isdigit()
    }


def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path):
    n = 16
    args = ["--samples", str(n), "--geology", "channel", "--seed", "5", "--samples-per-chunk", "2", *SMALL]
    out = tmp_path / "interrupted.zarr"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ccs_fno.cli", "generate", str(out), *args],
        start_new_session=True,  # its own process group: the dask workers die with it
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    try:
        while True:
            assert time.monotonic() < deadline, "generation never got under way"
            assert proc.poll() is None, "generation finished before it could be interrupted"
            if is_store(out) and 0 < ledger(out).sum() < n:
                break
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    n_before = int(ledger(out).sum())
    assert 0 < n_before < n

    resumed = cli(str(out), *args, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert f"{n}/{n} samples done ({n - n_before} generated now" in resumed.stdout

    reference = tmp_path / "reference.zarr"
    plain = cli(str(reference), *args)
    assert plain.returncode == 0, plain.stderr

    a = open_dataset(out, require_complete=True).load()
    b = open_dataset(reference, require_complete=True).load()
    np.testing.assert_array_equal(a.sample, np.arange(n))
    np.testing.assert_array_equal(a.seed, [sample_seed(5, i) for i in range(n)])
    xr.testing.assert_identical(a, b)
    assert a.attrs == b.attrs
    files = _chunk_files(reference)
    assert len(files) > 3 * (n // 2)
    assert {k: v for k, v in _chunk_files(out).items() if k in files} == files


def test_failing_sample_is_reported_and_exit_code_is_one(tmp_path):
    out = tmp_path / "ens.zarr"
    env = os.environ | {FAIL_SAMPLES_ENV: "2"}
    result = cli(
        str(out), "--samples", "3", "--geology", "gaussian", "--seed", "8", "--retries", "0", *SMALL, env=env
    )
    assert result.returncode == 1, result.stderr
    assert f"sample 2 (seed {sample_seed(8, 2)}) failed after 1 attempt(s)" in result.stderr
    assert "injected failure" in result.stderr
    assert "2/3 samples done" in result.stdout and "dask dashboard: http" in result.stdout
    np.testing.assert_array_equal(ledger(out), [True, True, False])


def run_main(*args: str) -> int:
    """``ccs-fno generate ARGS`` in this process: argparse exits, validation returns the code."""
    try:
        return main(["generate", *args])
    except SystemExit as exit_:
        return exit_.code


def test_different_config_is_refused_unless_overwrite(tmp_path, capsys):
    out = tmp_path / "ens.zarr"
    create_store(out, default_space("channel", 16), master_seed=1, n_samples=2)
    before = _chunk_files(out) | {"zarr.json": (out / "zarr.json").read_bytes()}
    args = [str(out), "--samples", "2", "--geology", "channel", "--seed", "2", *SMALL]
    for extra in ([], ["--resume"]):
        assert run_main(*args, *extra) == 2
        err = capsys.readouterr().err
        assert "different configuration" in err and "master_seed: stored 1, requested 2" in err
        assert _chunk_files(out) | {"zarr.json": (out / "zarr.json").read_bytes()} == before

    assert run_main(*args, "--overwrite") == 0
    assert read_config(out).master_seed == 2 and ledger(out).all()

    assert run_main(*args) == 2  # same config again, neither --resume nor --overwrite
    assert "already holds this ensemble (2 of 2" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--samples", "0", "--geology", "channel"], "argument --samples: must be an integer >= 1, got '0'"),
        (["--samples", "x", "--geology", "channel"], "argument --samples: must be an integer >= 1"),
        (["--samples", "2", "--geology", "karst"], "argument --geology: invalid choice: 'karst'"),
        (["--samples", "2", "--geology", "channel", "--rate-range", "150", "50"], "rate_m3_per_day_range"),
        (["--samples", "2", "--geology", "channel", "--rate-range", "-5", "50"], "must lie above 0"),
        (["--samples", "2", "--geology", "channel", "--resolution", "1"], "argument --resolution"),
        (["--samples", "2", "--geology", "channel", "--samples-per-chunk", "0"], "--samples-per-chunk"),
        (["--samples", "2", "--geology", "channel", "--resume", "--overwrite"], "not allowed with"),
        (["--samples", "2", "--geology", "channel", "--workers", "2", "--scheduler", "x"], "not allowed"),
        (["--geology", "channel"], "give both --samples and --geology"),
        (["--geology", "channel", "--resume"], "give both --samples and --geology"),
        (["--resume"], "no ccs-fno store at"),
        (["--repair", "--seed", "3"], "['--seed'] given without --samples and --geology"),
        (["--samples", "2", "--geology", "channel", "--rate-range", "1e9", "1e9"], "pore volumes per day"),
        (["--samples", "2", "--geology", "channel", "--max-steps", "0"], "argument --max-steps"),
        (["--samples", "2", "--geology", "channel", "--spatial-chunks", "0"], "argument --spatial-chunks"),
        (
            ["--samples", "2", "--geology", "channel", "--resolution", "8", "--spatial-chunks", "9"],
            "spatial_chunks must be an integer in [1, 8]",
        ),
        (
            ["--samples", "2", "--geology", "channel", "--resolution", "10", "--spatial-chunks", "6"],
            "allowed for nz=10: [1, 2, 3, 4, 5, 10]",
        ),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, args, message):
    assert run_main(str(tmp_path / "ens.zarr"), *args) == 2
    assert message in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_help_and_choices():
    assert GEOLOGY_CHOICES == GEOLOGY_KINDS
    result = subprocess.run(
        [sys.executable, "-m", "ccs_fno.cli", "--help"], capture_output=True, text=True, check=True
    )
    assert "generate" in result.stdout
