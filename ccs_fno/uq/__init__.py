"""Uncertainty quantification: calibrated surrogate error, prior and posterior plume statistics.

* ``ccs_fno.uq.conformal``: split-conformal bands of the surrogate's error (pointwise per cell and
  time, plume area/extent, and the sample-level (alpha, delta) statement), ``Calibration``.
* ``ccs_fno.uq.ensemble``: streamed ensemble statistics (mean, std, P(S > s*), P10/P50/P90 of
  plume area and extent), prior ensembles through the surrogate, Monte Carlo from a store.
"""

from ccs_fno.uq.conformal import (
    CALIBRATION_FILE,
    Calibration,
    binomial_interval,
    calibrate,
    conformal_quantile,
    conformal_rank,
    coverage,
    evaluate_calibration,
    field_rank,
    field_scores,
    min_calibration_samples,
    plume_curves,
    predict_store,
)
from ccs_fno.uq.ensemble import QUANTILES, EnsembleStatistics, prior_ensemble, store_ensemble

__all__ = [
    "CALIBRATION_FILE",
    "QUANTILES",
    "Calibration",
    "EnsembleStatistics",
    "binomial_interval",
    "calibrate",
    "conformal_quantile",
    "conformal_rank",
    "coverage",
    "evaluate_calibration",
    "field_rank",
    "field_scores",
    "min_calibration_samples",
    "plume_curves",
    "predict_store",
    "prior_ensemble",
    "store_ensemble",
]
