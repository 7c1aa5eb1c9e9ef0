"""Uncertainty quantification: calibrated surrogate error, prior and posterior plume statistics.

* ``ccs_fno.uq.conformal``: split-conformal bands of the surrogate's error (pointwise per cell and
  time, plume area/extent, and the sample-level (alpha, delta) statement), ``Calibration``.
* ``ccs_fno.uq.heldout``: the same on a surrogate and a store: predictions of store samples,
  ``calibrate`` on held-out samples, the coverage table on test samples.
* ``ccs_fno.uq.ensemble``: streamed ensemble statistics (mean, std, P(S > s*), P10/P50/P90 of
  plume area and extent), prior ensembles through the surrogate, Monte Carlo from a store.
* ``ccs_fno.uq.posterior``: randomised-maximum-likelihood posterior ensembles of inversions.
"""

from ccs_fno.uq.conformal import (
    CALIBRATION_FILE,
    Calibration,
    conformal_quantile,
    conformal_rank,
    field_rank,
    field_scores,
    min_calibration_samples,
    plume_curves,
)
from ccs_fno.uq.ensemble import QUANTILES, EnsembleStatistics, prior_ensemble, store_ensemble
from ccs_fno.uq.heldout import (
    binomial_interval,
    calibrate,
    coverage,
    evaluate_calibration,
    predict_store,
)
from ccs_fno.uq.posterior import perturb_observations, posterior_ensemble, recentred_prior

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
    "perturb_observations",
    "posterior_ensemble",
    "predict_store",
    "prior_ensemble",
    "recentred_prior",
    "store_ensemble",
]
