"""Simulator confirmation of an inversion, and its quality measures.

``verify(result)`` runs the real simulator (``data_gen.physics.simulate``) on the inverted
permeability with the result's rate, wells and porosity, and returns the simulator-confirmed
plume (time, z, x) at the surrogate's report times. It is a plain blocking function: an app
calls it in a background thread (``concurrent.futures``) so the kernel stays free.

Measures (each one number, float):

* ``permeability_snr_db(k, k_true)`` = -20 log10(||k - k*|| / ||k*||) on permeability in mD;
* ``log_permeability_rel_l2(k, k_true)`` = ||ln k - ln k*|| / ||ln k*||;
* ``plume_rel_l2(s, s_true)``: relative L2 of a saturation field (e.g. the 1000-day plume).

All built on ``ccs_fno.metrics`` (the project's one relative L2).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch
import xarray as xr

from ccs_fno.inversion.observations import observation_grid
from ccs_fno.metrics import relative_l2, snr_db
from data_gen.fluids import FluidProperties
from data_gen.physics import SimulationConfig, simulate

VERIFIABLE = ("permeability", "start_permeability")


def verify(
    result: xr.Dataset, variable: str = "permeability", fluids: FluidProperties | None = None
) -> xr.DataArray:
    """Simulate ``result[variable]`` (the inverted permeability, or ``start_permeability``) and
    return the CO2 saturation (time, z, x) at the result's report times (days)."""
    if variable not in VERIFIABLE:
        raise ValueError(f"variable must be one of {VERIFIABLE}, got {variable!r}")
    if not isinstance(result, xr.Dataset) or result.attrs.get("schema") != "ccs-fno-inversion":
        raise ValueError(
            "result must be the Dataset returned by invert (attrs['schema'] == 'ccs-fno-inversion')"
        )
    grid = observation_grid(result)
    config = SimulationConfig(
        grid=grid,
        fluids=FluidProperties() if fluids is None else fluids,
        rate_m3_per_day=float(result["rate_m3_per_day"]),
        injector_zx=(result["injector_z"].item(), result["injector_x"].item()),
        producer_zx=(result["producer_z"].item(), result["producer_x"].item()),
        report_times_days=tuple(float(t) for t in result["time"].values),
    )
    sim = simulate(result[variable].values, float(result["porosity"]), config, record_pressure=False)
    return xr.DataArray(
        sim.saturation,
        {"time": result["time"], "z": result["z"], "x": result["x"]},
        ("time", "z", "x"),
        name="saturation",
        attrs={
            "units": "1",
            "long_name": f"CO2 saturation (simulator, {variable})",
            "simulator_steps": int(sim.n_steps),
        },
    )


def _pair(a: Any, b: Any) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = (torch.from_numpy(np.asarray(v, dtype=np.float64)).reshape(1, -1) for v in (a, b))
    if a.shape != b.shape:
        raise ValueError(f"fields differ in size: {a.shape[1]} vs {b.shape[1]} values")
    return a, b


def permeability_snr_db(k_md: Any, k_true_md: Any) -> float:
    """-20 log10(||k - k*|| / ||k*||) in dB, permeability in mD."""
    return float(snr_db(*_pair(k_md, k_true_md))[0])


def log_permeability_rel_l2(k_md: Any, k_true_md: Any) -> float:
    """||ln k - ln k*|| / ||ln k*||."""
    return float(relative_l2(*_pair(np.log(k_md), np.log(k_true_md)))[0])


def plume_rel_l2(saturation: Any, saturation_true: Any) -> float:
    """||s - s*|| / ||s*|| of a saturation field (or stack of fields)."""
    return float(relative_l2(*_pair(saturation, saturation_true))[0])


def inversion_report(result: xr.Dataset, truth: xr.Dataset) -> dict[str, Any]:
    """Permeability measures of ``result`` (and of its start) against ``truth`` (a truth Dataset),
    its normalised misfit and status."""
    k_true = truth["permeability"].values
    return {
        "snr_db_start": permeability_snr_db(result["start_permeability"].values, k_true),
        "snr_db": permeability_snr_db(result["permeability"].values, k_true),
        "log_k_rel_l2_start": log_permeability_rel_l2(result["start_permeability"].values, k_true),
        "log_k_rel_l2": log_permeability_rel_l2(result["permeability"].values, k_true),
        "normalised_misfit": float(result["normalised_misfit"]),
        "status": result.attrs["status"],
        "elapsed_s": float(result.attrs["elapsed_s"]),
        "settings": json.loads(result.attrs["provenance"])["settings"],
    }
