"""The Zarr store schema: layout, attributes, chunking, ledger, refusal of bad input."""

from __future__ import annotations

import json
import os
import shutil
from importlib.metadata import version

import dask.array as da
import numpy as np
import pytest
import xarray as xr
import zarr

from data_gen.integrity import ledger, pending_chunks
from data_gen.pipeline import run_chunk
from data_gen.scenarios import default_space, run_scenario, sample_scenario
from data_gen.store import (
    SCHEMA_NAME,
    SCHEMA_VERSION,
    StoreConfig,
    create_store,
    new_chunk_arrays,
    open_dataset,
    read_config,
    write_chunk,
)

TIMES = (0.0, 100.0, 200.0)


@pytest.fixture
def space():
    return default_space("gaussian", resolution=16, report_times_days=TIMES)


def test_schema_of_a_written_store(tmp_path, space):
    path = tmp_path / "s.zarr"
    assert create_store(path, space, master_seed=5, n_samples=5, samples_per_chunk=2, with_pressure=True)
    config = read_config(path)
    for chunk in range(config.n_chunks):
        run_chunk(str(path), config, chunk)
    ds = open_dataset(path, require_complete=True)

    assert dict(ds.sizes) == {"sample": 5, "time": 3, "z": 16, "x": 16}
    np.testing.assert_array_equal(ds.time, TIMES)
    np.testing.assert_array_equal(ds.x, (np.arange(16) + 0.5) * 60.0)
    np.testing.assert_array_equal(ds.z, (np.arange(16) + 0.5) * 60.0)
    np.testing.assert_array_equal(ds.sample, np.arange(5))
    assert ds.permeability.dims == ("sample", "z", "x") and ds.permeability.dtype == np.float32
    assert ds.saturation.dims == ("sample", "time", "z", "x") and ds.saturation.dtype == np.float32
    assert ds.pressure.dims == ("sample", "time", "z", "x")
    assert ds.done.dtype == bool
    units = {name: ds[name].attrs.get("units") for name in ds.variables}
    assert None not in units.values(), units
    assert units["permeability"] == "mD" and units["pressure"] == "Pa" and units["time"] == "d"
    assert units["x"] == units["z"] == "m" and units["geology_len_scale_m"] == "m"
    params = {"rate_m3_per_day", "injector_z", "injector_x", "producer_z", "producer_x", "seed"}
    assert params | {"geology_angle_deg", "geology_geometric_mean_md"} <= set(ds.data_vars)

    assert ds.attrs["schema"] == SCHEMA_NAME and ds.attrs["schema_version"] == SCHEMA_VERSION
    assert ds.attrs["ccs_fno_version"] == version("ccs-fno")
    assert ds.attrs["master_seed"] == 5
    generator = json.loads(ds.attrs["generator_config"])
    assert generator["scenario_space"]["geology"] == "gaussian"
    assert generator["scenario_space"]["simulation"]["report_times_days"] == list(TIMES)
    assert StoreConfig.from_attrs(ds.attrs) == StoreConfig(space, 5, 5, 2, True)

    for name, var in ds.data_vars.items():  # lazy, and chunked alike along sample
        assert isinstance(var.data, da.Array), name
        assert var.chunks[0] == (2, 2, 1), name
        assert all(len(c) == 1 for c in var.chunks[1:]), name
        array = zarr.open_array(path / name, mode="r")
        assert array.metadata.zarr_format == 3
        assert "zstd" in [codec.to_dict()["name"] for codec in array.metadata.codecs], name

    # the stored sample equals the scenario simulated alone (float32 on disk)
    k, phi, result = run_scenario(sample_scenario(space, 5, 3), record_pressure=True)
    np.testing.assert_array_equal(ds.permeability[3], k.astype(np.float32))
    np.testing.assert_array_equal(ds.saturation[3], result.saturation.astype(np.float32))
    np.testing.assert_array_equal(ds.pressure[3], result.pressure_pa.astype(np.float32))


def test_ledger_tracks_chunks_and_is_written_after_the_data(tmp_path, space):
    path = tmp_path / "s.zarr"
    create_store(path, space, master_seed=1, n_samples=6, samples_per_chunk=2)
    assert not ledger(path).any()
    assert pending_chunks(path) == [0, 1, 2]
    ds = open_dataset(path)
    assert np.isnan(ds.saturation.values).all() and (ds.injector_z.values == -1).all()

    config = read_config(path)
    arrays = new_chunk_arrays(config, 1)
    write_chunk(path, 1, arrays, done=[True, False])
    np.testing.assert_array_equal(ledger(path), [False, False, True, False, False, False])
    assert pending_chunks(path) == [0, 1, 2]
    run_chunk(str(path), config, 1)
    assert pending_chunks(path) == [0, 2]
    data_file = path / "saturation" / "c" / "1" / "0" / "0" / "0"
    done_file = path / "done" / "c" / "1"
    assert os.stat(data_file).st_mtime_ns <= os.stat(done_file).st_mtime_ns


def test_write_chunk_validates_before_writing(tmp_path, space):
    path = tmp_path / "s.zarr"
    create_store(path, space, master_seed=1, n_samples=3, samples_per_chunk=2)
    config = read_config(path)
    arrays = new_chunk_arrays(config, 1)
    assert arrays["saturation"].shape == (1, 3, 16, 16)  # the short last chunk
    with pytest.raises(ValueError, match="chunk_index must be an integer in"):
        write_chunk(path, 2, arrays)
    with pytest.raises(ValueError, match=r"missing \['seed'\]"):
        write_chunk(path, 1, {k: v for k, v in arrays.items() if k != "seed"})
    with pytest.raises(ValueError, match="'saturation' has shape"):
        write_chunk(path, 1, arrays | {"saturation": np.zeros((2, 3, 16, 16))})
    with pytest.raises(ValueError, match="done must have shape"):
        write_chunk(path, 1, arrays, done=[True, True])
    assert not ledger(path).any()
    assert not (path / "seed" / "c").exists()


def test_identical_config_is_reused_and_different_config_refused(tmp_path, space):
    path = tmp_path / "s.zarr"
    create_store(path, space, master_seed=1, n_samples=4, samples_per_chunk=2)
    run_chunk(str(path), read_config(path), 0)
    assert not create_store(path, space, master_seed=1, n_samples=4, samples_per_chunk=2)
    assert pending_chunks(path) == [1]  # reused: nothing lost

    with pytest.raises(ValueError) as info:
        create_store(path, space, master_seed=2, n_samples=5, samples_per_chunk=2)
    message = str(info.value)
    assert str(path) in message
    assert "master_seed: stored 1, requested 2" in message
    assert "n_samples: stored 4, requested 5" in message
    assert pending_chunks(path) == [1]

    other = default_space("gaussian", resolution=16, report_times_days=(0.0, 100.0))
    with pytest.raises(ValueError, match="scenario_space.simulation.report_times_days"):
        create_store(path, other, master_seed=1, n_samples=4, samples_per_chunk=2)

    assert create_store(path, space, master_seed=2, n_samples=5, samples_per_chunk=2, overwrite=True)
    assert read_config(path).master_seed == 2
    assert not ledger(path).any() and ledger(path).size == 5


def test_foreign_paths_are_never_overwritten(tmp_path, space):
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="is not a ccs-fno store; refusing"):
        create_store(foreign, space, 0, 2, overwrite=True)
    assert os.listdir(foreign) == ["keep.txt"]

    empty = tmp_path / "empty"
    empty.mkdir()
    assert create_store(empty, space, 0, 2)
    assert read_config(empty).n_samples == 2


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"n_samples": 0}, ValueError, "n_samples must be an integer >= 1, got 0"),
        ({"n_samples": 2.5}, TypeError, "n_samples must be an integer"),
        ({"samples_per_chunk": 0}, ValueError, "samples_per_chunk must be an integer >= 1"),
        ({"master_seed": -3}, ValueError, "master_seed must be an integer in [0, "),
        ({"space": "channel"}, TypeError, "space must be a ScenarioSpace"),
    ],
)
def test_bad_input_writes_nothing(tmp_path, space, kwargs, error, message):
    args = {"space": space, "master_seed": 0, "n_samples": 4, "samples_per_chunk": 2} | kwargs
    with pytest.raises(error, match=message.replace("[", r"\[")):
        create_store(tmp_path / "sub" / "s.zarr", **args)
    assert os.listdir(tmp_path) == []


def test_open_dataset_refuses_what_is_not_a_store(tmp_path, space):
    with pytest.raises(FileNotFoundError, match="no ccs-fno store at .*missing.zarr"):
        open_dataset(tmp_path / "missing.zarr")

    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(ValueError, match=r"plain is not a ccs-fno store: no readable Zarr format 3"):
        open_dataset(plain)

    other = tmp_path / "other.zarr"
    xr.Dataset({"a": ("x", np.arange(3))}).to_zarr(other, zarr_format=3, consolidated=False)
    with pytest.raises(ValueError, match="other.zarr is not a ccs-fno store: attribute 'schema'"):
        open_dataset(other)

    broken = tmp_path / "broken.zarr"
    create_store(broken, space, 0, 2)
    for name in ("saturation", "seed"):
        shutil.rmtree(broken / name)
    with pytest.raises(ValueError, match="variable 'saturation' is missing; variable 'seed' is"):
        open_dataset(broken)


def test_open_dataset_require_complete(tmp_path, space):
    path = tmp_path / "s.zarr"
    create_store(path, space, master_seed=0, n_samples=3, samples_per_chunk=2)
    run_chunk(str(path), read_config(path), 1)
    ds = open_dataset(path)
    np.testing.assert_array_equal(ds.done, [False, False, True])
    with pytest.raises(ValueError, match=r"incomplete: 2 of 3 samples are not done \(first: \[0, 1\]\)"):
        open_dataset(path, require_complete=True)
