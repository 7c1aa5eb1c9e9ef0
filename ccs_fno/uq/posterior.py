"""Posterior uncertainty: randomised maximum likelihood (RML) with the inversion of ``ccs_fno.inversion``.

Member j of an RML ensemble minimises the inversion objective with

* perturbed observations ``d_j = d + e_j``, ``e_j ~ N(0, noise_std^2)`` per datum (the noise the
  observations state), and
* a perturbed prior: the prior ensemble re-centred on a prior draw ``m_j`` (one of its own
  members). Its principal components are unchanged, its mean is ``m_j``; the inversion starts
  there (its restart 0 is the prior mean) and, with the ``pca`` parameterisation, its regulariser
  ``|c|^2`` pulls towards ``m_j`` instead of the prior mean: the RML objective
  ``|g(m) - d_j|^2_C_d + |m - m_j|^2_C_m`` in the prior's leading modes. With ``cellwise`` the
  smoothness regulariser is not centred on a mean, so only the start and the data are perturbed.

For a linear-Gaussian problem the minimisers are exact posterior samples; through a nonlinear
surrogate they are an approximation (Oliver, Reynolds & Liu 2008). Each member's surrogate
forecast (``forecast_saturation`` of the inversion result) is folded into ``EnsembleStatistics``:
posterior mean, std, P(S > s*) maps and P10/P50/P90 of plume area and extent per time, as for a
prior ensemble, plus the members' ln k and data misfits.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import xarray as xr

from ccs_fno.plume import PLUME_THRESHOLD
from ccs_fno.uq.conformal import Calibration
from ccs_fno.uq.ensemble import QUANTILES, EnsembleStatistics, calibrated_band, check_members


def perturb_observations(observations: xr.Dataset, seed: int) -> xr.Dataset:
    """A copy of ``observations`` with every observed datum perturbed by Gaussian noise of the
    standard deviation the observations state (``*_noise_std``), drawn from ``seed``."""
    from ccs_fno.inversion.operator import observed_data

    data = observed_data(observations)
    if not data:
        raise ValueError(
            "the observations hold no observed data (well_saturation or snapshot_saturation); "
            "a posterior needs observations"
        )
    rng = np.random.default_rng(seed)
    out = observations.copy()
    for name, (values, noise) in data.items():
        out[name] = observations[name].copy(data=values + rng.normal(0.0, noise, values.shape))
    return out


def recentred_prior(prior: Any, log_permeability: np.ndarray) -> Any:
    """``prior`` (a ``PriorEnsemble``) shifted so that its mean is ``log_permeability`` (Z, X):
    the same principal components around a new centre (RML's perturbed prior mean)."""
    from ccs_fno.inversion.prior import PriorEnsemble

    fields = prior.log_permeability - prior.mean() + np.asarray(log_permeability, dtype=np.float64)
    return PriorEnsemble(fields, prior.space, prior.master_seed)


def posterior_ensemble(
    surrogate: Any,
    observations: xr.Dataset | None,
    prior: Any,
    n_members: int,
    config: Any = None,
    seed: int = 0,
    thresholds: Sequence[float] = (PLUME_THRESHOLD,),
    calibration: Calibration | None = None,
    level: float = 0.9,
    quantiles: Sequence[float] = QUANTILES,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> xr.Dataset:
    """RML posterior of ``observations`` (module docstring): ``n_members`` inversions through
    ``surrogate`` with ``config`` (an ``InversionConfig``; its ``restarts`` must be 1: each
    member has its own start), each with perturbed data (seed ``seed + j``) and the prior
    ``prior`` re-centred on its member ``j``'s draw (members drawn without replacement from the
    prior with ``seed``). Returns the ensemble statistics (as ``prior_ensemble``) plus
    ``log_permeability`` (member, z, x), ``normalised_misfit`` (member), ``prior_member``
    (member). ``progress(done, total)`` after each member; ``should_stop()`` stops early
    (``attrs['cancelled'] = 1``)."""
    from ccs_fno.inversion import InversionConfig, invert

    if observations is None:
        raise ValueError(
            "a posterior needs observations: pass an observations Dataset "
            "(ccs_fno.inversion.load_observations / synthesize_observations)"
        )
    n_members = check_members("n_members", n_members)
    config = InversionConfig() if config is None else config
    if config.restarts != 1:
        raise ValueError(
            f"an RML member is one inversion from its own prior draw: use InversionConfig(restarts=1), "
            f"got restarts={config.restarts}"
        )
    if n_members > prior.n_samples:
        raise ValueError(
            f"{n_members} RML members need at least as many prior draws; the prior has "
            f"{prior.n_samples}: draw a larger prior (ccs_fno.inversion.draw_prior)"
        )
    perturb_observations(observations, seed)  # refuses observations without data, before any work
    draws = np.random.default_rng(seed).choice(prior.n_samples, size=n_members, replace=False)
    injector = (int(observations["injector_z"]), int(observations["injector_x"]))
    stats = EnsembleStatistics(
        surrogate.grid,
        surrogate.times_days,
        thresholds,
        band=calibrated_band(calibration, level),
        max_saturation=surrogate.max_saturation,
    )
    log_k, misfit, cancelled, elapsed = [], [], False, 0.0
    for j, draw in enumerate(draws):
        obs_j = perturb_observations(observations, seed + 1 + j)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # out-of-domain warnings of intermediate models
            result = invert(surrogate, obs_j, recentred_prior(prior, prior.log_permeability[draw]), config)
        stats.add(result["forecast_saturation"].values[None], injector)
        log_k.append(result["log_permeability"].values)
        misfit.append(float(result["normalised_misfit"]))
        elapsed += float(result.attrs.get("elapsed_s", 0.0))
        if progress is not None:
            progress(j + 1, n_members)
        if should_stop is not None and j + 1 < n_members and should_stop():
            cancelled = True
            break
    ds = stats.result(quantiles)
    n = ds.sizes["member"]
    ds["log_permeability"] = (("member", "z", "x"), np.stack(log_k), {"units": "ln(mD)"})
    ds["normalised_misfit"] = ("member", np.array(misfit), {"long_name": "chi^2 / N of the member's fit"})
    ds["prior_member"] = ("member", draws[:n], {"long_name": "the prior draw the member was centred on"})
    ds.attrs.update(
        kind="posterior",
        seed=int(seed),
        cancelled=int(cancelled),
        requested_members=n_members,
        inversion_s=elapsed,
        conservative_level=float(level) if calibration is not None else float("nan"),
    )
    return ds
