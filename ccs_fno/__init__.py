"""ccs-fno: half-precision Fourier Neural Operator surrogates for CO2 storage.

The public API is re-exported here lazily (PEP 562), so ``import ccs_fno`` and the ``ccs-fno``
command stay light: torch loads only when a model-side name is first used.
"""

from __future__ import annotations

from data_gen.lazy import lazy_exports

_EXPORTS = {
    "FNO": "ccs_fno.nn",
    "SpectralConv": "ccs_fno.nn",
    "PRECISIONS": "ccs_fno.nn",
    "spectral_contract": "ccs_fno.nn",
    "contraction_path": "ccs_fno.nn",
    "cache_info": "ccs_fno.nn",
    "INPUT_CHANNELS": "ccs_fno.data",
    "Normalisers": "ccs_fno.data",
    "ZarrSaturationDataset": "ccs_fno.data",
    "read_store": "ccs_fno.data",
    "split_samples": "ccs_fno.data",
    "heldout_split": "ccs_fno.data",
    "ModelConfig": "ccs_fno.train_config",
    "TrainConfig": "ccs_fno.train_config",
    "Trainer": "ccs_fno.train",
    "TrainingData": "ccs_fno.training_data",
    "RunDir": "ccs_fno.run_dir",
    "ProcessContext": "ccs_fno.distributed",
    "get_context": "ccs_fno.distributed",
    "init_context": "ccs_fno.distributed",
    "SpatialFNO": "ccs_fno.spatial",
    "build_optimizer": "ccs_fno.optim",
    "register_optimizer": "ccs_fno.optim",
    "relative_l2": "ccs_fno.metrics",
    "snr_db": "ccs_fno.metrics",
    "mass_rate_t_per_day": "ccs_fno.co2_mass",
    "mt_per_year": "ccs_fno.co2_mass",
    "injected_mass_t": "ccs_fno.co2_mass",
    "stored_mass_t": "ccs_fno.co2_mass",
    "format_mass_t": "ccs_fno.co2_mass",
    "InversionConfig": "ccs_fno.inversion",
    "MonitoringWells": "ccs_fno.inversion",
    "ObservationDesign": "ccs_fno.inversion",
    "Snapshots": "ccs_fno.inversion",
    "draw_prior": "ccs_fno.inversion",
    "invert": "ccs_fno.inversion",
    "load_observations": "ccs_fno.inversion",
    "synthesize_observations": "ccs_fno.inversion",
    "verify": "ccs_fno.inversion",
    "Surrogate": "ccs_fno.surrogate",
    "TrainingDomain": "ccs_fno.domain",
    "DomainReport": "ccs_fno.domain",
    "OutOfDomainWarning": "ccs_fno.domain",
    "evaluate": "ccs_fno.surrogate",
    "load_surrogate": "ccs_fno.surrogate",
    "Calibration": "ccs_fno.uq",
    "calibrate": "ccs_fno.uq",
    "EnsembleStatistics": "ccs_fno.uq",
    "prior_ensemble": "ccs_fno.uq",
    "store_ensemble": "ccs_fno.uq",
    "posterior_ensemble": "ccs_fno.uq",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports("ccs_fno", globals(), _EXPORTS)
