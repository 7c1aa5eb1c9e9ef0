"""dask.distributed generation: real LocalClusters, failures, retries, resume, samples alone."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import xarray as xr
from dask.distributed import LocalCluster

from data_gen.integrity import ledger
from data_gen.pipeline import FAIL_SAMPLES_ENV, generate
from data_gen.scenarios import default_space, run_scenario, sample_scenario, sample_seed
from data_gen.store import create_store, open_dataset

SPACE = default_space("gaussian", resolution=16, report_times_days=(0.0, 100.0, 200.0, 300.0))


def test_failure_is_reported_then_resume_completes_the_store(tmp_path, monkeypatch, capsys):
    path = tmp_path / "ens.zarr"
    monkeypatch.setenv(FAIL_SAMPLES_ENV, "3")
    # An external scheduler, as a cluster deployment would provide (workers inherit the env var).
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        report = generate(
            path,
            SPACE,
            n_samples=6,
            master_seed=21,
            scheduler_address=cluster.scheduler_address,
            samples_per_chunk=2,
            with_pressure=True,
            retries=2,
            progress=False,
        )
    assert "dask dashboard: http" in capsys.readouterr().out
    assert not report.ok
    assert (report.n_done, report.n_generated) == (5, 5)
    [failure] = report.failures
    assert (failure.index, failure.seed, failure.attempts) == (3, sample_seed(21, 3), 3)
    assert "injected failure" in failure.error
    assert f"sample 3 (seed {sample_seed(21, 3)}) failed after 3 attempt(s)" in str(failure)
    ds = open_dataset(path)
    np.testing.assert_array_equal(ds.done, [True, True, True, False, True, True])
    assert np.isnan(ds.saturation[3].values).all() and int(ds.seed[3]) == failure.seed
    assert not np.isnan(ds.saturation[2].values).any()  # the failed sample's chunk partner

    monkeypatch.delenv(FAIL_SAMPLES_ENV)
    with pytest.raises(FileExistsError, match="already holds this ensemble .5 of 6 samples done"):
        generate(path, SPACE, 6, 21, samples_per_chunk=2, with_pressure=True, progress=False)
    report = generate(
        path, SPACE, 6, 21, workers=1, resume=True, samples_per_chunk=2, with_pressure=True, progress=False
    )
    assert report.ok and (report.n_done, report.n_generated) == (6, 2)  # only chunk 1 again
    assert report.simulate_s > 0 and report.write_s > 0 and report.cpu_s > 0

    ds = open_dataset(path, require_complete=True).load()
    for i in range(6):  # every stored sample equals the scenario simulated alone, bit for bit
        scenario = sample_scenario(SPACE, 21, i)
        k, phi, result = run_scenario(scenario, record_pressure=True)
        np.testing.assert_array_equal(ds.permeability[i], k.astype(np.float32))
        np.testing.assert_array_equal(ds.saturation[i], result.saturation.astype(np.float32))
        np.testing.assert_array_equal(ds.pressure[i], result.pressure_pa.astype(np.float32))
        assert float(ds.rate_m3_per_day[i]) == scenario.rate_m3_per_day
        assert (int(ds.injector_z[i]), int(ds.injector_x[i])) == scenario.injector_zx
        assert (int(ds.producer_z[i]), int(ds.producer_x[i])) == scenario.producer_zx
        assert float(ds.geology_angle_deg[i]) == scenario.geology_params.angle_deg
        assert int(ds.seed[i]) == scenario.seed
    assert len(np.unique(ds.seed)) == 6
    assert not any(np.array_equal(ds.saturation[0], ds.saturation[i]) for i in range(1, 6))

    # a complete store resumes to a no-op, without starting a cluster
    capsys.readouterr()
    report = generate(path, SPACE, 6, 21, resume=True, samples_per_chunk=2, with_pressure=True)
    assert report.ok and report.n_generated == 0 and "dask dashboard" not in capsys.readouterr().out


def test_generate_refuses_bad_arguments_before_writing(tmp_path):
    path = tmp_path / "ens.zarr"
    cases = [
        ({"workers": 2, "scheduler_address": "tcp://127.0.0.1:1"}, "either workers"),
        ({"workers": 0}, "workers must be an integer >= 1"),
        ({"retries": -1}, "retries must be an integer >= 0"),
        ({"resume": True, "overwrite": True}, "resume and overwrite exclude each other"),
        ({"samples_per_chunk": 0}, "samples_per_chunk must be an integer >= 1"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            generate(path, SPACE, 4, 0, progress=False, **kwargs)
    assert not path.exists()

    create_store(path, SPACE, master_seed=0, n_samples=4)
    with pytest.raises(ValueError, match="master_seed: stored 0, requested 1"):
        generate(path, SPACE, 4, 1, resume=True, progress=False)
    assert not ledger(path).any()


def test_data_gen_never_imports_torch():
    code = (
        "import sys, data_gen.pipeline, data_gen.cli, data_gen.store;"
        "assert 'torch' not in sys.modules and 'ccs_fno' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_generated_store_opens_as_plain_xarray(tmp_path):
    """Consumers without data_gen can read a store with xarray alone."""
    path = tmp_path / "ens.zarr"
    create_store(path, SPACE, master_seed=0, n_samples=2)
    ds = xr.open_zarr(path, consolidated=False)
    assert ds.attrs["schema"] == "ccs-fno-store" and ds.time.dtype == np.float64
