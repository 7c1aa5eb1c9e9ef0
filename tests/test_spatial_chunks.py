"""Spatial chunking of the store (issue 10, reading): z-chunked stores hold the same values as plain
ones, verify and repair them bit for bit, and slab reads touch only the z chunks they overlap.

Real stores on disk (10 x 10 cells, so 4 z chunks are uneven: 3, 3, 3, 1 rows), a real
``ccs-fno generate --spatial-chunks`` run, and a real audit hook counting the chunk files opened.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
import zarr
from stores import build_store

from ccs_fno.cli import main
from ccs_fno.data import (
    ZarrSaturationDataset,
    fit_normalisers,
    read_fields,
    read_saturation,
    read_store,
)
from data_gen.integrity import StoreDamagedError, samples_digest, verify_store
from data_gen.scenarios import default_space, sample_seed
from data_gen.store import open_dataset, read_config

SEED = 6
N, PER_CHUNK, NZ = 6, 3, 10
TIMES = default_space("channel", NZ).simulation.report_times_days  # as `ccs-fno generate` writes
GENERATE = ["--samples", str(N), "--geology", "channel", "--seed", str(SEED), "--resolution", str(NZ)]
GENERATE += ["--samples-per-chunk", str(PER_CHUNK), "--workers", "1", "--no-progress"]
RANGES = [(0, NZ), (0, 3), (3, 6), (2, 7), (4, 9), (9, 10), (5, 10)]  # even and uneven in 3-row chunks


def _store_bytes(path: Path) -> dict[str, bytes]:
    return {str(f.relative_to(path)): f.read_bytes() for f in sorted(path.rglob("*")) if f.is_file()}


def _chunk_keys(path: Path, name: str) -> list[str]:
    return sorted(str(f.relative_to(path)) for f in (path / name / "c").rglob("*") if f.is_file())


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> dict[int, Path]:
    """The same ensemble with 1, 2 (through ``ccs-fno generate``) and 4 chunks along z."""
    base = tmp_path_factory.mktemp("chunks")
    out = {n: build_store(base / f"z{n}.zarr", N, SEED, TIMES, NZ, 1, PER_CHUNK, n) for n in (1, 4)}
    out[2] = base / "z2.zarr"
    assert main(["generate", str(out[2]), *GENERATE, "--spatial-chunks", "2"]) == 0
    return out


def test_z_chunked_stores_hold_the_plain_stores_values(stores):
    plain = open_dataset(stores[1], require_complete=True).load()
    for n in (2, 4):
        ds = open_dataset(stores[n], require_complete=True)
        rows = -(-NZ // n)
        assert ds.saturation.encoding["chunks"] == (PER_CHUNK, len(TIMES), rows, NZ)
        assert ds.permeability.encoding["chunks"] == (PER_CHUNK, rows, NZ)
        assert ds.rate_m3_per_day.encoding["chunks"] == (PER_CHUNK,)
        assert ds.saturation.data.chunks[2] == ((5, 5) if n == 2 else (3, 3, 3, 1))  # dask follows Zarr
        ds = ds.load()
        xr.testing.assert_equal(ds, plain)  # values, dims, coords; checksums included
        assert json.loads(ds.attrs["generator_config"])["spatial_chunks"] == n
        assert read_config(stores[n]).spatial_chunks == n
        assert samples_digest(stores[n], range(N)) == samples_digest(stores[1], range(N))
        expected = [f"c/{s}/0/{z}/0" for s in range(N // PER_CHUNK) for z in range(n)]
        assert _chunk_keys(stores[n], "saturation") == sorted(f"saturation/{k}" for k in expected)
        assert len(_chunk_keys(stores[n], "porosity")) == n * (N // PER_CHUNK)
    # the default layout is the layout of before: no new attribute, one chunk per sample chunk
    assert "spatial_chunks" not in json.loads(plain.attrs["generator_config"])
    assert _chunk_keys(stores[1], "saturation") == ["saturation/c/0/0/0/0", "saturation/c/1/0/0/0"]


def test_resume_keeps_the_stores_chunking_and_a_different_one_is_refused(stores, tmp_path, capsys):
    store = tmp_path / "z2.zarr"
    shutil.copytree(stores[2], store)
    before = _store_bytes(store)
    assert main(["generate", str(store), *GENERATE, "--resume"]) == 0  # the store's own: 2
    assert main(["generate", str(store), "--resume", "--no-progress"]) == 0
    capsys.readouterr()
    for extra in (["--resume", "--spatial-chunks", "4"], ["--spatial-chunks", "1"]):
        assert main(["generate", str(store), *GENERATE, *extra]) == 2
        assert "spatial_chunks: stored 2, requested " in capsys.readouterr().err
    assert main(["generate", str(store), "--resume", "--spatial-chunks", "2"]) == 2
    assert "['--spatial-chunks'] given without --samples and --geology" in capsys.readouterr().err
    assert _store_bytes(store) == before


def test_verify_names_a_missing_z_chunk_and_repair_restores_it_bit_for_bit(stores, tmp_path, capsys):
    store = tmp_path / "z4.zarr"
    shutil.copytree(stores[4], store)
    (store / "saturation/c/1/0/2/0").unlink()  # sample chunk 1 (samples 3-5), rows 6-8
    truncated = store / "permeability/c/0/3/0"  # sample chunk 0, row 9
    truncated.write_bytes(truncated.read_bytes()[:10])
    with pytest.raises(
        StoreDamagedError, match=r"sample 3 \(seed \d+\): chunk file saturation/c/1/0/2/0 is missing"
    ):
        open_dataset(store)
    assert [d.index for d in verify_store(store, full=False).damaged] == [3, 4, 5]
    report = verify_store(store)
    assert [d.index for d in report.damaged] == [0, 1, 2, 3, 4, 5]
    assert report.damaged[0].seed == sample_seed(SEED, 0)
    assert "chunk file permeability/c/0/3/0 cannot be decoded" in report.damaged[0].reason
    assert "chunk file saturation/c/1/0/2/0 is missing" in report.damaged[3].reason

    # reads of the damaged rows fail clearly; rows in intact z chunks still read
    summary = read_store(stores[4])  # read_store refuses the damaged store itself (cheap check)
    damaged = dataclasses.replace(summary, path=str(store))
    with pytest.raises(StoreDamagedError, match=r"samples \[4\] are marked done but their 'saturation'"):
        read_saturation(damaged, [4], z_range=(5, 7))
    np.testing.assert_array_equal(
        read_saturation(damaged, [4], z_range=(0, 6)), read_saturation(summary, [4], z_range=(0, 6))
    )
    with pytest.raises(StoreDamagedError, match=r"variable 'permeability' of samples \[1\] cannot be read"):
        read_fields(damaged, [1], z_range=(8, 10))

    assert main(["generate", str(store), "--repair", "--workers", "1", "--no-progress"]) == 0
    assert "regenerated damaged sample 3" in capsys.readouterr().out
    assert verify_store(store).ok
    assert _store_bytes(store) == _store_bytes(stores[4])


@pytest.mark.parametrize("n", [1, 4])
def test_slab_reads_equal_rows_of_full_reads(stores, n, torch_one_thread):
    summary = read_store(stores[n])
    normalisers = fit_normalisers(summary, range(N))
    full = ZarrSaturationDataset(summary, range(N), normalisers)
    k, phi = read_fields(summary, range(N))
    saturation = read_saturation(summary, range(N))
    for z0, z1 in RANGES:
        k_slab, phi_slab = read_fields(summary, [1, 4], z_range=(z0, z1))
        np.testing.assert_array_equal(k_slab, k[[1, 4], z0:z1])
        np.testing.assert_array_equal(phi_slab, phi[[1, 4], z0:z1])
        np.testing.assert_array_equal(
            read_saturation(summary, [1, 4], z_range=(z0, z1)), saturation[[1, 4], :, z0:z1]
        )
        slab = ZarrSaturationDataset(summary, range(N), normalisers, z_range=(z0, z1))
        for item in (0, 4):
            x, y = slab[item]
            x_full, y_full = full[item]
            assert x.shape == (5, z1 - z0, NZ) and y.shape == (len(TIMES), z1 - z0, NZ)
            assert torch.equal(x, x_full[:, z0:z1]) and torch.equal(y, y_full[:, z0:z1])  # exactly
    wells = full[0][0][3:]  # the well bumps reach into the slabs: global z coordinates matter
    assert all(float(w[z0:z1].max()) > 0 for w in wells for z0, z1 in [(2, 7)])


class _OpenedChunks:
    """Chunk files of ``root`` opened while ``recording`` (an audit hook cannot be removed)."""

    def __init__(self) -> None:
        self.root: str | None = None
        self.opened: set[str] = set()
        sys.addaudithook(self._audit)

    def _audit(self, event: str, args: tuple) -> None:
        if self.root and event == "open" and isinstance(args[0], (str, Path)):
            path = str(args[0])
            if path.startswith(self.root) and "/c/" in path:
                self.opened.add(path[len(self.root) :])

    def during(self, root: Path, read) -> set[str]:
        self.root, self.opened = str(root) + "/", set()
        try:
            read()
        finally:
            self.root = None
        return self.opened


COORDINATES = {f"{name}/c/0" for name in ("sample", "time", "z", "x")}  # read once, on opening


def test_a_slab_read_opens_only_the_z_chunks_it_overlaps(stores):
    store = stores[4]
    summary = read_store(store)
    normalisers = fit_normalisers(summary, range(N))
    recorder = _OpenedChunks()
    sample, chunk = 4, 4 // PER_CHUNK
    for z_range, z_chunks in [((3, 6), [1]), ((2, 7), [0, 1, 2]), ((9, 10), [3]), ((0, NZ), [0, 1, 2, 3])]:
        dataset = ZarrSaturationDataset(summary, [sample], normalisers, z_range=z_range)
        expected = {f"{name}/c/{chunk}/{z}/0" for name in ("permeability", "porosity") for z in z_chunks}
        expected |= {f"saturation/c/{chunk}/0/{z}/0" for z in z_chunks}
        first = recorder.during(store, lambda dataset=dataset: dataset[0])  # opens the handle too
        assert first == expected | COORDINATES, z_range
        assert recorder.during(store, lambda dataset=dataset: dataset[0]) == expected, z_range
    # a plain store has one chunk per sample chunk: a slab read decompresses the whole sample chunk
    plain = read_store(stores[1])
    dataset = ZarrSaturationDataset(plain, [sample], normalisers, z_range=(3, 6))
    assert recorder.during(stores[1], lambda: dataset[0]) - COORDINATES == {
        f"permeability/c/{chunk}/0/0",
        f"porosity/c/{chunk}/0/0",
        f"saturation/c/{chunk}/0/0/0",
    }


@pytest.mark.parametrize(
    ("z_range", "message"),
    [
        ((5, 5), r"0 <= z0 < z1 <= nz = 10 \(rows z0..z1-1\), got \(5, 5\)"),
        ((0, 11), r"0 <= z0 < z1 <= nz = 10"),
        ((-1, 3), r"got \(-1, 3\)"),
        ((1.0, 3), r"z_range must be a pair of integers \(z0, z1\), got \(1.0, 3\)"),
        ((1, 2, 3), r"must be a pair of integers"),
    ],
)
def test_bad_z_ranges_are_refused_with_what_is_allowed(stores, z_range, message):
    summary = read_store(stores[1])
    normalisers = fit_normalisers(summary, range(N))
    with pytest.raises(ValueError, match=message):
        ZarrSaturationDataset(summary, range(N), normalisers, z_range=z_range)
    with pytest.raises(ValueError, match=message):
        read_saturation(summary, [0], z_range=z_range)


def test_spatial_chunk_zarr_arrays_are_region_aligned(stores):
    """Each writer's region (one sample chunk, all z) covers whole Zarr chunks only."""
    for name in ("permeability", "saturation"):
        array = zarr.open_array(stores[4] / name, mode="r")
        assert array.chunks[0] == PER_CHUNK and array.cdata_shape[0] == N // PER_CHUNK
        assert array.cdata_shape[-2] == 4 and array.chunks[1:-2] == array.shape[1:-2]
