"""data_gen: geology, two-phase flow simulation and dask-backed ensemble generation into Zarr.

Never imports torch or ccs_fno, so dask workers stay light. The public API is re-exported lazily
(PEP 562): ``import data_gen`` does not load dask.distributed or GSTools until a name needs them.
"""

from __future__ import annotations

from data_gen.lazy import lazy_exports

_EXPORTS = {
    "Grid": "data_gen.grid",
    "FluidProperties": "data_gen.fluids",
    "SimulationConfig": "data_gen.physics",
    "SimulationResult": "data_gen.physics",
    "simulate": "data_gen.physics",
    "hydrostatic_pressure_pa": "data_gen.physics",
    "ChannelParams": "data_gen.geology",
    "GaussianParams": "data_gen.geology",
    "GEOLOGY_KINDS": "data_gen.geology",
    "channel_mask": "data_gen.geology",
    "channel_permeability": "data_gen.geology",
    "gaussian_permeability": "data_gen.geology",
    "permeability": "data_gen.geology",
    "default_params": "data_gen.geology",
    "ScenarioSpace": "data_gen.scenarios",
    "Scenario": "data_gen.scenarios",
    "default_space": "data_gen.scenarios",
    "section_grid": "data_gen.scenarios",
    "sample_scenario": "data_gen.scenarios",
    "run_scenario": "data_gen.scenarios",
    "StoreConfig": "data_gen.store",
    "create_store": "data_gen.store",
    "open_dataset": "data_gen.store",
    "pending_chunks": "data_gen.integrity",
    "verify_store": "data_gen.integrity",
    "store_fingerprint": "data_gen.integrity",
    "StoreDamagedError": "data_gen.integrity",
    "StepBudgetExceeded": "data_gen.physics",
    "StoreLockedError": "data_gen.lock",
    "store_lock": "data_gen.lock",
    "generate": "data_gen.pipeline",
    "GenerateReport": "data_gen.pipeline",
    "buckley_leverett_profile": "data_gen.analytic",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports("data_gen", globals(), _EXPORTS)
