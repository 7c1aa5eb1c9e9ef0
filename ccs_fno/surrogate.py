"""A trained surrogate: the model, its normalisers and its grid/times as one object.

``load_surrogate(run_dir)`` rebuilds it from ``model.pt``; ``Surrogate.predict`` maps permeability
(mD), injection rate (m^3/day), well cells and porosity to CO2 saturation as an
``xarray.DataArray`` with dims (time, z, x) or (sample, time, z, x), coordinates in m and days.

Resolution: a field of any shape (nz, nx) is read as the training section (same physical extent)
at that resolution, so a model trained at 64x64 predicts at 128x128 zero-shot; well cells are
indices of the grid the field is given on. Predictions are clipped to the physical range
[0, 1 - S_wr] of the training store's fluids (the raw output can overshoot slightly).
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from ccs_fno.checkpoint import build_model, load_weights
from ccs_fno.data import (
    INPUT_CHANNELS,
    SPLITS,
    Normalisers,
    StoreSummary,
    open_fields,
    read_fields,
    read_saturation,
    read_store,
)
from ccs_fno.domain import DomainReport, OutOfDomainWarning, TrainingDomain
from ccs_fno.nn import FNO, reduced_dtype
from ccs_fno.nn.spectral import validate_grid
from ccs_fno.run_dir import PROVENANCE_FILE, fingerprint_differences, load_model_file
from ccs_fno.train_config import resolve_device
from data_gen.grid import Grid
from data_gen.store import is_store

M2_PER_MD = 9.869233e-16
DEFAULT_SURROGATE = Path(__file__).parent / "models" / "default"  # load_surrogate("default")
SMALLEST_MD = 1e-6  # below this everywhere, a field is surely in m^2 (rocks: ~1e-3 ... 1e5 mD)


def _fields(name: str, value: Any) -> np.ndarray:
    """``value`` as a float64 batch (n, z, x) from a (z, x) field or a batch, finite, else raise."""
    array = np.asarray(value)
    if array.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be numeric, got dtype {array.dtype}")
    if array.ndim not in (2, 3) or 0 in array.shape:
        raise ValueError(f"{name} must be a (z, x) field or a (sample, z, x) batch, got shape {array.shape}")
    array = array.astype(np.float64)
    bad = np.argwhere(~np.isfinite(array))
    if bad.size:
        index = tuple(int(i) for i in bad[0])
        raise ValueError(f"{name} holds {array[index]} at index {index}; values must be finite")
    return array[None] if array.ndim == 2 else array


def _per_sample(name: str, value: Any, n: int, shape: tuple[int, ...]) -> np.ndarray:
    """``value`` broadcast to (n, *shape) from one value or one per sample, else raise."""
    array = np.asarray(value)
    if array.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be numeric, got dtype {array.dtype}")
    for candidate in (array, array[None]):  # one per sample, or one for all
        if candidate.ndim == len(shape) + 1 and candidate.shape[1:] == shape:
            if candidate.shape[0] in (1, n):
                return np.broadcast_to(candidate, (n, *shape))
    allowed = [(*shape,), (n, *shape)]
    raise ValueError(f"{name} must have shape {' or '.join(map(str, allowed))}, got {array.shape}")


def _cells(name: str, value: Any, n: int, shape: tuple[int, int]) -> np.ndarray:
    cells = _per_sample(name, value, n, (2,))
    if not np.all(np.isfinite(cells)) or not np.array_equal(cells, np.round(cells)):
        raise ValueError(f"{name} must be integer (z, x) cell indices, got {np.asarray(value)!r}")
    cells = cells.astype(np.int64)
    outside = (cells < 0) | (cells >= np.array(shape))
    if outside.any():
        row = int(np.flatnonzero(outside.any(axis=1))[0])
        raise ValueError(
            f"{name} {tuple(cells[row].tolist())} lies outside the {shape[0]}x{shape[1]} grid: "
            f"z must be in [0, {shape[0] - 1}], x in [0, {shape[1] - 1}]"
        )
    return cells


class Surrogate:
    """A trained FNO with its normalisers; ``grid`` and ``times_days`` are the training ones."""

    def __init__(
        self,
        model: FNO,
        normalisers: Normalisers,
        grid: Grid,
        times_days: Sequence[float],
        max_saturation: float,
        split: Mapping[str, Sequence[int]] | None = None,
        device: str | torch.device = "cpu",
        fingerprint: Mapping[str, Any] | None = None,
        domain: TrainingDomain | None = None,
        provenance: Mapping[str, Any] | None = None,
    ) -> None:
        times = np.asarray(times_days, dtype=np.float64)
        if model.in_channels != len(INPUT_CHANNELS) or model.config["out_channels"] != times.size:
            raise ValueError(
                f"the model maps {model.in_channels} -> {model.config['out_channels']} channels; "
                f"a surrogate needs {len(INPUT_CHANNELS)} inputs {INPUT_CHANNELS} -> "
                f"{times.size} outputs (one per report time)"
            )
        if not 0.0 < max_saturation <= 1.0:
            raise ValueError(f"max_saturation must lie in (0, 1], got {max_saturation!r}")
        self.device = resolve_device(str(device))
        self.model = model.to(self.device).eval()
        self.normalisers = normalisers
        self._grid = grid
        self._times = times
        self.max_saturation = float(max_saturation)
        self.split = None if split is None else {k: np.asarray(v, int) for k, v in split.items()}
        self.fingerprint = None if fingerprint is None else dict(fingerprint)  # of the training data
        self.domain = domain  # the training distribution (None: not recorded)
        self.provenance = {} if provenance is None else dict(provenance)  # how it was made

    def describe(self) -> str:
        """What this surrogate is: grid, times, training distribution and, when packaged, provenance."""
        g = self._grid
        lines = [
            f"FNO surrogate on a {g.nz}x{g.nx} grid ({g.nz * g.dz_m:g} m x {g.nx * g.dx_m:g} m section), "
            f"{self._times.size} report times {self._times[0]:g}-{self._times[-1]:g} days"
        ]
        lines.append(
            "trained on: "
            + (self.domain.describe() if self.domain else "(training distribution not recorded)")
        )
        p = self.provenance
        if p:
            test = p["errors"]["test_split_rel_l2"]
            lines.append(
                f"test relative L2 error {100 * test['rel_l2_mean']:.1f} % (mean of {test['n_samples']} "
                f"held-out simulations; median {100 * test['rel_l2_median']:.1f} %, "
                f"worst {100 * test['rel_l2_max']:.1f} %)"
            )
            for name, errors in p["errors"].get("heldout_stores_rel_l2", {}).items():
                lines.append(
                    f"  on {name} ({errors['geology']}, seed {errors['master_seed']}): "
                    f"{100 * errors['rel_l2_mean']:.1f} % mean over {errors['n_samples']}"
                )
            lines.append(f"data: {p['commands']['generate']}")
            lines.append(f"model: {p['commands']['train']}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Surrogate\n{self.describe()}>"

    @property
    def grid(self) -> Grid:
        """The training grid (the section's extent is ``nx * dx_m`` by ``nz * dz_m``)."""
        return self._grid

    @property
    def times_days(self) -> np.ndarray:
        """The report times (days) of the output, one per output channel."""
        return self._times.copy()

    def prediction_grid(self, shape: tuple[int, int]) -> Grid:
        """The training section resolved by ``shape`` = (nz, nx) cells."""
        nz, nx = shape
        g = self._grid
        return Grid(nz, nx, g.nx * g.dx_m / nx, g.nz * g.dz_m / nz, g.dy_m)

    def _inputs(
        self,
        permeability_md: Any,
        rate_m3_per_day: Any,
        injector_zx: Any,
        producer_zx: Any,
        porosity: Any,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The inputs of ``predict`` validated and broadcast: k (n, z, x), rate (n,), cells, phi."""
        k = _fields("permeability_md", permeability_md)
        n, nz, nx = k.shape
        if np.any(k <= 0):
            index = tuple(int(i) for i in np.argwhere(k <= 0)[0])
            raise ValueError(f"permeability_md must be > 0 mD everywhere, got {k[index]:g} at index {index}")
        if k.max() < SMALLEST_MD:
            raise ValueError(
                f"permeability_md looks like m^2, not mD: its largest value is {k.max():g} "
                f"(< {SMALLEST_MD:g}); convert with 1 mD = {M2_PER_MD:g} m^2"
            )
        try:
            validate_grid(self.model.config["modes"], (nz, nx))
        except ValueError as err:
            raise ValueError(f"permeability_md grid {nz}x{nx} is too coarse: {err}") from None
        rate = _per_sample("rate_m3_per_day", rate_m3_per_day, n, ()).astype(np.float64)
        if not np.all(np.isfinite(rate) & (rate > 0)):
            raise ValueError(f"rate_m3_per_day must be finite and > 0 m^3/day, got {rate_m3_per_day!r}")
        injector = _cells("injector_zx", injector_zx, n, (nz, nx))
        producer = _cells("producer_zx", producer_zx, n, (nz, nx))
        same = np.flatnonzero((injector == producer).all(axis=1))
        if same.size:
            raise ValueError(
                f"injector and producer share the cell {tuple(injector[same[0]].tolist())} "
                f"(sample {int(same[0])}); they must differ"
            )
        phi = _per_sample(
            "porosity",
            np.broadcast_to(porosity, (nz, nx)) if np.ndim(porosity) == 0 else porosity,
            n,
            (nz, nx),
        ).astype(np.float64)
        if not np.all((phi > 0) & (phi <= 1)):
            raise ValueError(f"porosity must lie in (0, 1], got values in [{phi.min():g}, {phi.max():g}]")
        return k, rate, injector, producer, phi

    def check_domain(
        self,
        permeability_md: np.ndarray,
        *,
        rate_m3_per_day: float | Sequence[float],
        injector_zx: Sequence[int] | np.ndarray,
        producer_zx: Sequence[int] | np.ndarray,
        porosity: float | np.ndarray = 0.25,
    ) -> DomainReport:
        """Whether a scenario (arguments as for ``predict``) lies inside the training distribution.

        ``report.ok`` is True when it does; ``report.reasons`` says, in plain words, how it does
        not. Raises when the surrogate records no training distribution (``domain`` is None).
        """
        if self.domain is None:
            raise ValueError(
                "this surrogate records no training distribution (a model.pt from before it was "
                "stored, whose training store is not at hand); retrain, or load it where its "
                "training store is reachable"
            )
        return self.domain.check(
            *self._inputs(permeability_md, rate_m3_per_day, injector_zx, producer_zx, porosity)
        )

    def predict(
        self,
        permeability_md: np.ndarray,
        *,
        rate_m3_per_day: float | Sequence[float],
        injector_zx: Sequence[int] | np.ndarray,
        producer_zx: Sequence[int] | np.ndarray,
        porosity: float | np.ndarray = 0.25,
        batch_size: int = 32,
        check_domain: bool = True,
    ) -> xr.DataArray:
        """CO2 saturation for one (z, x) field or a (sample, z, x) batch of permeability in mD.

        ``rate_m3_per_day`` (whole section thickness, reservoir conditions), ``injector_zx`` /
        ``producer_zx`` (cell indices on the field's grid) and ``porosity`` are one value for
        all samples or one per sample. Returns dims (time, z, x) for a single field, else
        (sample, time, z, x); values clipped to [0, ``max_saturation``].

        With ``check_domain`` (default) a scenario outside the training distribution (see
        ``check_domain``) raises an ``OutOfDomainWarning`` naming the reasons, and the result's
        ``attrs["out_of_domain"]`` holds them ("" when inside); a batch also gets a
        ``in_training_domain`` (sample) coordinate.
        """
        single = np.ndim(permeability_md) == 2
        k, rate, injector, producer, phi = self._inputs(
            permeability_md, rate_m3_per_day, injector_zx, producer_zx, porosity
        )
        n, nz, nx = k.shape
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        report = None
        if check_domain and self.domain is not None:
            report = self.domain.check(k, rate, injector, producer, phi)
            if not report.ok:
                warnings.warn(
                    f"the surrogate was asked about a scenario {report}; its prediction there is "
                    "not trustworthy (run the simulator)",
                    OutOfDomainWarning,
                    stacklevel=2,
                )

        grid = self.prediction_grid((nz, nx))
        out = np.empty((n, self._times.size, nz, nx), dtype=np.float32)
        # Device-to-host copies into pageable memory crawl (~1 GB/s); stage them in pinned memory.
        staging = torch.empty((min(n, batch_size), *out.shape[1:]), pin_memory=self.device.type == "cuda")
        autocast = torch.autocast(
            self.device.type,
            dtype=reduced_dtype(self.device),
            enabled=self.model.precision != "full",
        )
        with torch.inference_mode(), autocast:
            for start in range(0, n, batch_size):
                part = slice(start, start + batch_size)
                x = self.normalisers.encode(
                    k[part],
                    phi[part],
                    rate[part],
                    injector[part],
                    producer[part],
                    grid.z_m,
                    grid.x_m,
                )
                y = self.model(torch.from_numpy(x).to(self.device))
                host = staging[: y.shape[0]]
                host.copy_(y.float().clamp_(0.0, self.max_saturation))
                out[part] = host.numpy()
        coords = {
            "time": (
                "time",
                self._times,
                {"units": "d", "long_name": "time since injection start"},
            ),
            "z": ("z", grid.z_m, {"units": "m", "long_name": "depth below the section top"}),
            "x": ("x", grid.x_m, {"units": "m", "long_name": "horizontal position"}),
        }
        attrs = {"units": "1", "long_name": "CO2 saturation (FNO surrogate)"}
        if report is not None:
            attrs["out_of_domain"] = "; ".join(report.reasons)
        if single:
            return xr.DataArray(out[0], coords, ("time", "z", "x"), "saturation", attrs)
        coords["sample"] = ("sample", np.arange(n))
        if report is not None:
            coords["in_training_domain"] = ("sample", report.inside)
        return xr.DataArray(out, coords, ("sample", "time", "z", "x"), "saturation", attrs)


def _domain(state: Mapping[str, Any]) -> TrainingDomain | None:
    """The recorded training distribution; for older files, the training store's, if at hand."""
    if state.get("domain") is not None:
        return TrainingDomain.from_dict(state["domain"])
    store = state.get("store")
    if store and is_store(store):
        try:
            return TrainingDomain.from_store(store)
        except (OSError, ValueError):
            return None
    return None


def load_surrogate(
    run_dir: str | os.PathLike, device: str | torch.device = "cpu", precision: str | None = None
) -> Surrogate:
    """The surrogate saved in ``run_dir`` (its ``model.pt``, or that file's path itself).

    ``run_dir="default"`` loads the canonical surrogate shipped with the package (channel
    geology, 64x64; ``surrogate.provenance`` says how it was made and its test error).
    ``precision`` (full/half/mixed) overrides the one the model was last trained in.
    """
    if str(run_dir) == "default":
        run_dir = DEFAULT_SURROGATE
    state = load_model_file(run_dir)
    path = Path(run_dir)
    provenance_file = (path if path.is_dir() else path.parent) / PROVENANCE_FILE
    provenance = json.loads(provenance_file.read_text()) if provenance_file.is_file() else None
    if list(state.get("input_channels", [])) != list(INPUT_CHANNELS):
        raise ValueError(
            f"{path}: input channels {state.get('input_channels')!r} differ from this "
            f"version's {list(INPUT_CHANNELS)}"
        )
    try:
        normalisers = Normalisers.from_dict(state["normalisers"])
        grid = Grid(**state["grid"])
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: {err}") from None
    model = build_model(state["model_config"], path)
    load_weights(model, state["state_dict"], path, "model weights")
    if precision is not None:
        model.set_precision(precision)
    return Surrogate(
        model,
        normalisers,
        grid,
        state["times_days"],
        state["max_saturation"],
        split=state.get("split"),
        device=device,
        fingerprint=state.get("fingerprint"),
        domain=_domain(state),
        provenance=provenance,
    )


def store_predictions(
    surrogate: Surrogate, summary: StoreSummary, indices: np.ndarray, batch_size: int = 32
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Predict done samples ``indices`` of a store in batches of ``batch_size``: yields, per batch,
    (its sample indices, the surrogate's saturation, the simulator's saturation), both float32
    (b, T, Z, X) on the store's grid. One batch is read and predicted per step, so memory stays
    O(batch) whatever the number of samples.

    ``summary`` is a read store (``ccs_fno.data.read_store``) and ``indices`` an array of its done
    samples (``summary.check_done``); the caller checks that grid and report times suit the
    surrogate. ``surrogate`` is anything with ``Surrogate.predict``'s signature. Shared by
    ``evaluate`` and ``ccs_fno.uq.predict_store``.
    """
    handle = open_fields(summary.path)
    for start in range(0, indices.size, batch_size):
        part = indices[start : start + batch_size]
        k, phi = read_fields(summary, part, handle)
        truth = read_saturation(summary, part, handle)
        pred = surrogate.predict(
            k,
            rate_m3_per_day=summary.rate_m3_per_day[part],
            injector_zx=summary.injector_zx[part],
            producer_zx=summary.producer_zx[part],
            porosity=phi,
            batch_size=batch_size,
        ).values
        yield part, pred, truth


def evaluate(
    surrogate: Surrogate, store: str | os.PathLike, split: str = "test", batch_size: int = 32
) -> dict[str, Any]:
    """Relative L2 error ``||pred - truth|| / ||truth||`` per sample over (time, z, x).

    ``split`` is one of the run's splits (train/val/test, by sample index) or ``"all"`` (every
    done sample). The store may have another resolution than the training one (same section and
    report times): that measures zero-shot super-resolution.
    """
    summary = read_store(store)
    if not np.allclose(summary.times_days, surrogate.times_days):
        raise ValueError(
            f"{summary.path} reports at {summary.times_days.tolist()} days; the surrogate "
            f"predicts {surrogate.times_days.tolist()}"
        )
    g, s = summary.grid, surrogate.grid
    extent, trained = (g.nz * g.dz_m, g.nx * g.dx_m), (s.nz * s.dz_m, s.nx * s.dx_m)
    if not np.allclose(extent, trained):
        raise ValueError(
            f"{summary.path} covers a {extent[0]:g} m x {extent[1]:g} m section; the surrogate "
            f"was trained on {trained[0]:g} m x {trained[1]:g} m"
        )
    if split == "all":
        indices = summary.done_indices
    elif split in SPLITS:
        if surrogate.split is None or surrogate.split[split].size == 0:
            raise ValueError(f"the surrogate records no {split!r} samples; use split='all'")
        indices = summary.check_done(surrogate.split[split])
        if surrogate.fingerprint is not None:  # the run's sample numbers mean nothing elsewhere
            from ccs_fno.training_data import TrainingData

            data = TrainingData.restore(summary, surrogate.split, surrogate.normalisers)
            differences = fingerprint_differences(surrogate.fingerprint, data.fingerprint())
            if differences:
                raise ValueError(
                    f"split={split!r} names the surrogate's training-store samples, but "
                    f"{summary.path} is not that store: {'; '.join(differences)}. Evaluate "
                    "with split='all' on another store"
                )
    else:
        raise ValueError(f"split must be one of {(*SPLITS, 'all')}, got {split!r}")
    errors = []
    for part, pred, truth in store_predictions(surrogate, summary, indices, batch_size):
        diff = np.linalg.norm((pred - truth).reshape(part.size, -1), axis=1)
        errors.append(diff / np.maximum(np.linalg.norm(truth.reshape(part.size, -1), axis=1), 1e-12))
    rel = np.concatenate(errors)
    if not np.isfinite(rel).all():  # the result is JSON: never NaN (the truth is checked finite)
        raise ValueError(
            f"the surrogate predicted non-finite saturation for samples "
            f"{indices[~np.isfinite(rel)][:10].tolist()} of {summary.path}; check its precision "
            "(try precision='full') and inputs"
        )
    return {
        "store": summary.path,
        "split": split,
        "n_samples": int(indices.size),
        "grid": [g.nz, g.nx],
        "rel_l2_mean": float(rel.mean()),
        "rel_l2_median": float(np.median(rel)),
        "rel_l2_max": float(rel.max()),
        "per_sample": {str(int(i)): float(e) for i, e in zip(indices, rel, strict=True)},
    }
