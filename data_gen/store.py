"""The ccs-fno ensemble store: one xarray / Zarr (format 3) schema; create, fill and open it.

Layout: dims ``(sample, time, z, x)``; coords ``x``, ``z`` (m, cell centres, z down from the section
top), ``time`` (days), ``sample``. Variables: ``permeability`` (mD), ``porosity``, ``saturation``
(CO2), optional ``pressure`` (Pa), the per-sample scenario parameters, ``checksum`` (a digest of
each sample's values, written with them) and ``done``, the resume ledger. Every variable with a
``sample`` dim is chunked ``samples_per_chunk`` along it and whole along the others, so a writer
owns whole chunks and parallel writers never race; a chunk's ledger entries are written after its
data, in one chunk write, so a chunk is either recorded or not.

The attributes describe the store: schema name and version, package version, master seed and the
generator configuration (JSON) from which every sample can be regenerated.

Spatial chunking (optional, for large grids): with ``spatial_chunks`` N > 1 the spatial variables
(``permeability``, ``porosity``, ``saturation``, ``pressure``) are also split along ``z`` into N
chunks of ``ceil(nz / N)`` rows (the last may be shorter; N must give exactly N chunks), so a reader
of rows z0..z1-1 (a rank of a spatially parallel model) decompresses only the chunks overlapping
them. A writer still owns a whole sample chunk (all its z chunks, one aligned region write), and
checksums stay per sample. N = 1 (the default) is the plain layout, byte for byte: the setting is
recorded in ``generator_config`` as ``spatial_chunks`` only when N > 1, and a store without it has
N = 1. A version that predates spatial chunking refuses to open a z-chunked store (its layout
check names the chunking it did not expect), so the schema version is unchanged.

Integrity: ``write_chunk`` writes each valid sample's checksum (``sample_checksums``) with its data.
Reading them back, the ledger, damage detection and repair live in ``data_gen.integrity``, which
imports this module (never the reverse at module level): ``open_dataset`` checks cheaply (file
listing only, ``verify_store(full=False)``, imported when called) that every chunk file holding a
done sample exists and refuses a damaged store (``StoreDamagedError``). Creation and generation hold
the store's advisory write lock (``data_gen.lock``).
"""

from __future__ import annotations

import glob
import hashlib
import json
import math
import os
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr
from zarr.codecs import ZstdCodec

from data_gen.lock import store_lock
from data_gen.physics import SimulationResult
from data_gen.scenarios import Scenario, ScenarioSpace, sample_seed

SCHEMA_NAME = "ccs-fno-store"
SCHEMA_VERSION = 2  # 2: per-sample checksums
CHECKSUM = "checksum"  # the per-sample digest variable
LEDGER = "done"
_WRITTEN_BY_STORE = (CHECKSUM, LEDGER)  # computed by write_chunk, not given in chunk arrays
ZSTD_LEVEL = 3
_MAX_SEED = 2**63  # seeds are stored as int64 and in JSON attrs


def _package_version() -> str:
    try:
        return version("ccs-fno")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown"


def _positive_int(name: str, value: Any, upper: int | None = None, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum or (upper is not None and value >= upper):
        allowed = f">= {minimum}" if upper is None else f"in [{minimum}, {upper})"
        raise ValueError(f"{name} must be an integer {allowed}, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class StoreConfig:
    """Everything that determines a store's content: the space, the seed and the layout."""

    space: ScenarioSpace
    master_seed: int
    n_samples: int
    samples_per_chunk: int = 4
    with_pressure: bool = False
    spatial_chunks: int = 1  # chunks along z of the spatial variables

    def __post_init__(self) -> None:
        if not isinstance(self.space, ScenarioSpace):
            raise TypeError(f"space must be a ScenarioSpace, got {type(self.space).__name__}")
        object.__setattr__(self, "master_seed", _positive_int("master_seed", self.master_seed, _MAX_SEED, 0))
        object.__setattr__(self, "n_samples", _positive_int("n_samples", self.n_samples))
        object.__setattr__(
            self, "samples_per_chunk", _positive_int("samples_per_chunk", self.samples_per_chunk)
        )
        if not isinstance(self.with_pressure, (bool, np.bool_)):
            raise TypeError(f"with_pressure must be a bool, got {self.with_pressure!r}")
        object.__setattr__(self, "with_pressure", bool(self.with_pressure))
        nz = self.space.grid.nz
        spatial_chunks = self.spatial_chunks
        if isinstance(spatial_chunks, bool) or not isinstance(spatial_chunks, (int, np.integer)):
            raise TypeError(f"spatial_chunks must be an integer, got {spatial_chunks!r}")
        if not 1 <= spatial_chunks <= nz:
            raise ValueError(
                f"spatial_chunks must be an integer in [1, {nz}] (at most one chunk per z row of the "
                f"{nz}-row grid), got {spatial_chunks!r}"
            )
        spatial_chunks = int(spatial_chunks)
        if _z_chunk_count(nz, spatial_chunks) != spatial_chunks:
            allowed = [n for n in range(1, nz + 1) if _z_chunk_count(nz, n) == n]
            raise ValueError(
                f"spatial_chunks={spatial_chunks} cannot split the grid's {nz} z rows into "
                f"{spatial_chunks} chunks of ceil({nz}/{spatial_chunks}) = {-(-nz // spatial_chunks)} "
                f"rows (that gives {_z_chunk_count(nz, spatial_chunks)}); allowed for nz={nz}: {allowed}"
            )
        object.__setattr__(self, "spatial_chunks", spatial_chunks)

    @property
    def z_chunk_rows(self) -> int:
        """Rows along z of one spatial chunk (the last chunk may hold fewer)."""
        return -(-self.space.grid.nz // self.spatial_chunks)

    @property
    def n_chunks(self) -> int:
        return math.ceil(self.n_samples / self.samples_per_chunk)

    def chunk_slice(self, chunk_index: int) -> slice:
        """The samples of chunk ``chunk_index`` (the last chunk may be short)."""
        chunk_index = _positive_int("chunk_index", chunk_index, self.n_chunks, 0)
        start = chunk_index * self.samples_per_chunk
        return slice(start, min(start + self.samples_per_chunk, self.n_samples))

    def generator_config(self) -> dict[str, Any]:
        """The JSON-ready generator configuration (all but the master seed, an attribute itself).

        ``spatial_chunks`` appears only when it is not 1, so plain stores keep their attributes
        (and fingerprints) of before spatial chunking.
        """
        out = {
            "scenario_space": self.space.to_dict(),
            "n_samples": self.n_samples,
            "samples_per_chunk": self.samples_per_chunk,
            "with_pressure": self.with_pressure,
        }
        if self.spatial_chunks != 1:
            out["spatial_chunks"] = self.spatial_chunks
        return out

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> StoreConfig:
        """Rebuild the configuration from a store's attributes."""
        gen = json.loads(attrs["generator_config"])
        return cls(
            space=ScenarioSpace.from_dict(gen["scenario_space"]),
            master_seed=attrs["master_seed"],
            n_samples=gen["n_samples"],
            samples_per_chunk=gen["samples_per_chunk"],
            with_pressure=gen["with_pressure"],
            spatial_chunks=gen.get("spatial_chunks", 1),
        )


def _z_chunk_count(nz: int, spatial_chunks: int) -> int:
    """How many chunks of ``ceil(nz / spatial_chunks)`` rows cover ``nz`` rows."""
    rows = -(-nz // spatial_chunks)
    return -(-nz // rows)


@dataclass(frozen=True)
class _Variable:
    dims: tuple[str, ...]
    dtype: type
    units: str
    long_name: str


def _geology_units(name: str) -> str:
    for suffix, units in (("_md", "mD"), ("_m", "m"), ("_deg", "degree")):
        if name.endswith(suffix):
            return units
    return "1"


def _variables(config: StoreConfig) -> dict[str, _Variable]:
    """The data variables of the schema, in write order (``done`` last)."""
    s, t, z, x = "sample", "time", "z", "x"
    out = {
        "permeability": _Variable((s, z, x), np.float32, "mD", "permeability"),
        "porosity": _Variable((s, z, x), np.float32, "1", "porosity"),
        "saturation": _Variable((s, t, z, x), np.float32, "1", "CO2 saturation"),
    }
    if config.with_pressure:
        out["pressure"] = _Variable((s, t, z, x), np.float32, "Pa", "pressure")
    out["rate_m3_per_day"] = _Variable((s,), np.float64, "m3/day", "CO2 injection rate")
    for well in ("injector", "producer"):
        for axis in ("z", "x"):
            out[f"{well}_{axis}"] = _Variable((s,), np.int32, "1", f"{well} cell index along {axis}")
    out["seed"] = _Variable((s,), np.int64, "1", "geology seed")
    for name in config.space.drawn_geology_names:
        out[f"geology_{name}"] = _Variable(
            (s,), np.float64, _geology_units(name), f"geology parameter {name} (drawn per sample)"
        )
    out[CHECKSUM] = _Variable(
        (s,), np.int64, "1", "blake2b-64 digest of the sample's values (all variables but checksum, done)"
    )
    out[LEDGER] = _Variable((s,), np.bool_, "1", "sample written (resume ledger)")
    return out


def sample_checksums(arrays: Mapping[str, np.ndarray], n: int) -> np.ndarray:
    """Per-sample digests (int64, shape (n,)) of chunk ``arrays`` (every variable but checksum, done).

    blake2b (8 bytes) over each variable's name and the sample's row in its stored dtype, in name
    order, so it is independent of the compression and recomputable from the store alone.
    """
    out = np.empty(n, dtype=np.int64)
    names = sorted(set(arrays) - set(_WRITTEN_BY_STORE))
    for row in range(n):
        digest = hashlib.blake2b(digest_size=8)
        for name in names:
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(arrays[name][row]).tobytes())
        out[row] = np.frombuffer(digest.digest(), dtype="<i8")[0]
    return out


def _coords(config: StoreConfig) -> dict[str, tuple[str, np.ndarray, dict[str, str]]]:
    grid = config.space.grid
    return {
        "sample": (
            "sample",
            np.arange(config.n_samples, dtype=np.int64),
            {"units": "1", "long_name": "sample index"},
        ),
        "time": (
            "time",
            np.asarray(config.space.simulation.report_times_days, dtype=np.float64),
            {"units": "d", "long_name": "time since the start of injection"},
        ),
        "z": (
            "z",
            grid.z_m,
            {
                "units": "m",
                "long_name": "depth below the section top (cell centre)",
                "positive": "down",
            },
        ),
        "x": ("x", grid.x_m, {"units": "m", "long_name": "horizontal position (cell centre)"}),
    }


def _sizes(config: StoreConfig) -> dict[str, int]:
    grid = config.space.grid
    nt = len(config.space.simulation.report_times_days)
    return {"sample": config.n_samples, "time": nt, "z": grid.nz, "x": grid.nx}


def _fill(dtype: type) -> Any:
    """Value of samples not (successfully) written: NaN for floats, -1 for ints, False for bools."""
    kind = np.dtype(dtype).kind
    return np.nan if kind == "f" else (False if kind == "b" else -1)


def _chunk_shape(config: StoreConfig, dims: tuple[str, ...], shape: tuple[int, ...]) -> tuple[int, ...]:
    """Zarr chunk shape of a variable: ``samples_per_chunk`` samples, the rows of a spatial chunk
    along z (the spatial variables: permeability, porosity, saturation, pressure), whole otherwise."""
    return tuple(
        config.samples_per_chunk if d == "sample" else (config.z_chunk_rows if d == "z" else n)
        for d, n in zip(dims, shape, strict=True)
    )


def _template(config: StoreConfig) -> tuple[xr.Dataset, dict[str, dict[str, Any]]]:
    """The empty store as a lazy Dataset (nothing computed) and its Zarr encoding."""
    sizes = _sizes(config)
    data_vars, encoding = {}, {}
    for name, var in _variables(config).items():
        shape = tuple(sizes[d] for d in var.dims)
        chunks = _chunk_shape(config, var.dims, shape)
        if name == LEDGER:  # written now (all False), so a store starts with its full ledger
            data = np.zeros(shape, dtype=np.bool_)
        else:
            data = da.full(shape, _fill(var.dtype), dtype=var.dtype, chunks=chunks)
        data_vars[name] = xr.Variable(var.dims, data, {"units": var.units, "long_name": var.long_name})
        encoding[name] = {"chunks": chunks, "compressors": [ZstdCodec(level=ZSTD_LEVEL)]}
        if np.dtype(var.dtype).kind == "i":  # unwritten chunks read as -1 (floats: NaN), unmasked
            encoding[name]["fill_value"] = _fill(var.dtype)
    ds = xr.Dataset(data_vars, coords=_coords(config))
    ds.attrs = {
        "schema": SCHEMA_NAME,
        "schema_version": SCHEMA_VERSION,
        "ccs_fno_version": _package_version(),
        "master_seed": config.master_seed,
        "geology": config.space.geology,
        "generator_config": json.dumps(config.generator_config(), sort_keys=True),
    }
    return ds, encoding


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in d.items():
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_differences(stored: StoreConfig, requested: StoreConfig) -> list[str]:
    """``key: stored X, requested Y`` for every setting in which two configurations differ."""
    a, b = (
        _flatten({"master_seed": c.master_seed, "spatial_chunks": c.spatial_chunks, **c.generator_config()})
        for c in (stored, requested)
    )
    return [
        f"{key}: stored {a.get(key)!r}, requested {b.get(key)!r}"
        for key in sorted(set(a) | set(b))
        if a.get(key) != b.get(key)
    ]


def _group_attrs(path: Path) -> dict[str, Any]:
    """The attributes of the ccs-fno store at ``path``, or raise naming what is missing."""
    if not path.exists():
        raise FileNotFoundError(f"no ccs-fno store at {path}: the path does not exist")
    meta_file = path / "zarr.json"
    try:
        meta = json.loads(meta_file.read_text())
    except (OSError, ValueError):
        raise ValueError(
            f"{path} is not a ccs-fno store: no readable Zarr format 3 metadata ({meta_file.name})"
        ) from None
    if not isinstance(meta, dict) or meta.get("zarr_format") != 3 or meta.get("node_type") != "group":
        raise ValueError(f"{path} is not a ccs-fno store: {meta_file.name} is not a Zarr format 3 group")
    attrs = meta.get("attributes", {})
    if attrs.get("schema") != SCHEMA_NAME:
        raise ValueError(
            f"{path} is not a ccs-fno store: attribute 'schema' is {attrs.get('schema')!r}, "
            f"expected {SCHEMA_NAME!r}"
        )
    if attrs.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(
            f"{path}: unsupported ccs-fno store schema_version {attrs.get('schema_version')!r}; "
            f"this version reads {SCHEMA_VERSION}"
        )
    missing = [k for k in ("generator_config", "master_seed") if k not in attrs]
    if missing:
        raise ValueError(f"{path} is not a complete ccs-fno store: attributes {missing} are missing")
    return attrs


def read_config(path: str | os.PathLike) -> StoreConfig:
    """The configuration a store was created with."""
    path = Path(path)
    attrs = _group_attrs(path)
    try:
        return StoreConfig.from_attrs(attrs)
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: invalid generator_config attribute: {err}") from None


def is_store(path: str | os.PathLike) -> bool:
    """Whether ``path`` holds a ccs-fno store (judged by its group attributes only)."""
    try:
        _group_attrs(Path(path))
    except (FileNotFoundError, ValueError):
        return False
    return True


def create_store(
    path: str | os.PathLike,
    space: ScenarioSpace,
    master_seed: int,
    n_samples: int,
    samples_per_chunk: int = 4,
    with_pressure: bool = False,
    overwrite: bool = False,
    spatial_chunks: int = 1,
) -> bool:
    """Create an empty store (metadata, coords, a ledger of all False); return whether it did.

    An existing store with the same configuration is reused as it is (returns False) unless
    ``overwrite``; one with a different configuration is refused (the error names the differing
    settings) unless ``overwrite``. A path that exists but is neither a ccs-fno store nor an
    empty directory is never touched. Everything is validated before anything is written, and
    the store is built beside ``path`` and moved in place, so no half-created store is left behind;
    staging directories left by a creation that was killed are removed. Holds the store's write
    lock (``data_gen.lock``): another process creating or generating the store is refused.
    ``spatial_chunks`` (1 to nz, giving exactly that many chunks) splits the spatial variables
    along z (see the module docstring); it is part of the configuration.
    """
    config = StoreConfig(space, master_seed, n_samples, samples_per_chunk, with_pressure, spatial_chunks)
    template, encoding = _template(config)
    path = Path(path)
    with store_lock(path):
        return _create_locked(path, config, template, encoding, overwrite)


def _staging_litter(path: Path) -> list[Path]:
    """Staging directories of earlier creations of ``path`` (only litter while we hold the lock)."""
    return sorted(path.parent.glob(f".{glob.escape(path.name)}.creating-*"))


def _create_locked(
    path: Path, config: StoreConfig, template: xr.Dataset, encoding: dict[str, Any], overwrite: bool
) -> bool:
    for litter in _staging_litter(path):
        shutil.rmtree(litter, ignore_errors=True)
    replace_existing = False
    if path.exists():
        if is_store(path):
            try:
                differences = config_differences(read_config(path), config)
            except ValueError as err:  # unreadable configuration: only overwrite may replace it
                differences = [str(err)]
            if not overwrite and differences:
                raise ValueError(
                    f"{path} holds a ccs-fno store with a different configuration "
                    f"({'; '.join(differences)}); choose another path or overwrite it"
                )
            if not overwrite:
                return False
            replace_existing = True
        elif path.is_dir() and not any(path.iterdir()):
            replace_existing = True
        else:
            raise FileExistsError(
                f"{path} exists and is not a ccs-fno store; refusing to overwrite it "
                "(remove it or choose another path)"
            )
    staging = path.with_name(f".{path.name}.creating-{uuid.uuid4().hex[:8]}")
    try:
        template.to_zarr(
            staging, mode="w-", compute=False, zarr_format=3, consolidated=False, encoding=encoding
        )
        if replace_existing:
            shutil.rmtree(path)
        os.rename(staging, path)
    except OSError as err:  # name the user's path, not the staging directory
        raise type(err)(err.errno, f"cannot create the store: {err.strerror or err}", str(path)) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return True


def new_chunk_arrays(config: StoreConfig, chunk_index: int) -> dict[str, np.ndarray]:
    """Arrays of chunk ``chunk_index`` for ``write_chunk``, filled as not written (seeds set)."""
    samples = config.chunk_slice(chunk_index)
    sizes = _sizes(config) | {"sample": samples.stop - samples.start}
    arrays = {
        name: np.full(tuple(sizes[d] for d in var.dims), _fill(var.dtype), dtype=var.dtype)
        for name, var in _variables(config).items()
        if name not in _WRITTEN_BY_STORE
    }
    arrays["seed"][:] = [sample_seed(config.master_seed, i) for i in range(samples.start, samples.stop)]
    return arrays


def put_sample(
    arrays: dict[str, np.ndarray],
    row: int,
    scenario: Scenario,
    permeability_md: np.ndarray,
    porosity: np.ndarray,
    result: SimulationResult,
) -> None:
    """Fill row ``row`` of chunk ``arrays`` (from ``new_chunk_arrays``) with a simulated sample."""
    arrays["permeability"][row] = permeability_md
    arrays["porosity"][row] = porosity
    arrays["saturation"][row] = result.saturation
    if "pressure" in arrays:
        arrays["pressure"][row] = result.pressure_pa
    arrays["rate_m3_per_day"][row] = scenario.rate_m3_per_day
    arrays["injector_z"][row], arrays["injector_x"][row] = scenario.injector_zx
    arrays["producer_z"][row], arrays["producer_x"][row] = scenario.producer_zx
    for name, value in scenario.drawn_geology.items():
        arrays[f"geology_{name}"][row] = value


def write_chunk(
    path: str | os.PathLike,
    chunk_index: int,
    arrays: Mapping[str, np.ndarray],
    done: np.ndarray | None = None,
) -> None:
    """Write chunk ``chunk_index`` (a region aligned to the store's chunks), then its ledger.

    ``arrays`` maps every data variable but ``checksum`` and ``done`` to an array whose first axis
    holds the chunk's samples; ``done`` flags which of them are valid (default: all). The checksums
    of the valid samples are computed here and written with the data, before the ledger.
    """
    config = read_config(path)
    samples = config.chunk_slice(chunk_index)
    n = samples.stop - samples.start
    variables = _variables(config)
    expected = set(variables) - set(_WRITTEN_BY_STORE)
    if set(arrays) != expected:
        raise ValueError(
            f"chunk arrays must be exactly {sorted(expected)}; "
            f"missing {sorted(expected - set(arrays))}, "
            f"unexpected {sorted(set(arrays) - expected)}"
        )
    sizes = _sizes(config) | {"sample": n}
    data = {}
    for name in sorted(expected):
        var = variables[name]
        shape = tuple(sizes[d] for d in var.dims)
        value = np.asarray(arrays[name])
        if value.shape != shape:
            raise ValueError(f"chunk array {name!r} has shape {value.shape}, expected {shape}")
        data[name] = (var.dims, value.astype(var.dtype, copy=False))
    flags = np.ones(n, dtype=np.bool_) if done is None else np.asarray(done, dtype=np.bool_)
    if flags.shape != (n,):
        raise ValueError(f"done must have shape ({n},) for chunk {chunk_index}, got {flags.shape}")
    checksums = np.where(flags, sample_checksums({k: v[1] for k, v in data.items()}, n), _fill(np.int64))
    data[CHECKSUM] = ("sample", checksums)
    region = {"sample": samples}
    for part in (data, {LEDGER: ("sample", flags)}):  # the ledger strictly after the data
        xr.Dataset(part).to_zarr(path, region=region, mode="r+", zarr_format=3, consolidated=False)


def _layout_problems(ds: xr.Dataset, config: StoreConfig) -> list[str]:
    template, encoding = _template(config)
    problems = []
    for name, coord in template.coords.items():
        if name not in ds.coords:
            problems.append(f"coordinate {name!r} is missing")
        elif not np.array_equal(ds[name].values, coord.values):
            problems.append(f"coordinate {name!r} differs from the generator configuration")
    for name, var in template.data_vars.items():
        if name not in ds.data_vars:
            problems.append(f"variable {name!r} is missing")
            continue
        got = ds[name]
        if got.dims != var.dims or got.shape != var.shape or got.dtype != var.dtype:
            problems.append(
                f"variable {name!r} is {got.dtype}{dict(got.sizes)}, expected {var.dtype}{dict(var.sizes)}"
            )
        elif tuple(got.encoding.get("chunks", ())) != encoding[name]["chunks"]:
            problems.append(
                f"variable {name!r} is chunked {got.encoding.get('chunks')}, "
                f"expected {encoding[name]['chunks']}"
            )
    return problems


def open_dataset(
    path: str | os.PathLike, require_complete: bool = False, check_chunks: bool = True
) -> xr.Dataset:
    """Open a store lazily (dask arrays, one dask chunk per Zarr chunk) after validating it.

    Samples whose ``done`` flag is False hold fill values (NaN, -1); with ``require_complete``
    a store with any such sample is refused. ``check_chunks`` (cheap: a file listing) refuses a
    store in which a done sample's chunk file is missing or its ledger chunk cannot be decoded
    (``StoreDamagedError``); ``verify_store`` checks the values themselves.
    """
    path = Path(path)
    config = read_config(path)
    ds = xr.open_zarr(path, consolidated=False, zarr_format=3)
    problems = _layout_problems(ds, config)
    if problems:
        raise ValueError(f"{path} is not a valid ccs-fno store: {'; '.join(problems)}")
    if check_chunks:
        from data_gen.integrity import damaged_error, verify_store  # here: integrity imports store

        report = verify_store(path, full=False)
        if not report.ok:
            raise damaged_error(report)
    order = list(_variables(config))  # schema order first (Zarr lists arrays in no fixed order)
    ds = ds[order + sorted(set(ds.data_vars) - set(order))]
    if require_complete:
        missing = np.flatnonzero(~ds["done"].values)
        if missing.size:
            raise ValueError(
                f"{path} is incomplete: {missing.size} of {config.n_samples} samples are not done "
                f"(first: {missing[:10].tolist()}); resume the generation to complete it"
            )
    return ds
