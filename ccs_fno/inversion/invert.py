"""Permeability inversion through the differentiable surrogate.

``invert(surrogate, observations, prior, config)`` minimises

    J(theta) = chi^2(theta) / (2 N) + R(theta),   chi^2 = sum_d ((pred_d - obs_d) / sigma_d)^2

over the parameters of a parameterisation (``parameterisations``), where ``pred`` is the
observation operator applied to the surrogate's raw (unclipped) saturation for ln k(theta)
(and, with ``invert_rate``, the rate ``rate_guess * exp(rate_log_std * r)``, r with a N(0, 1)
prior adding r^2 / (2 N) to R). The gradient flows through the FNO (``surrogate.model``) and
the normalisers' torch encoding. Each restart starts at the prior mean (restart 0) or a prior
sample; the restart with the smallest final J is the result. ``progress`` is called after every
iteration; setting ``cancel`` (a ``threading.Event``) stops the run at the next iteration and
returns the model reached so far (or an earlier restart's, if it fitted better) with
``attrs["status"] == "cancelled"``. ``attrs["out_of_domain"]`` says how the inverted model lies
outside the surrogate's training distribution ("" inside): there, a good fit through the
surrogate needs the simulator's confirmation (``verify``).

The result is an ``xarray.Dataset`` with the inverted permeability (``permeability`` mD,
``log_permeability``), the start (``start_permeability``), the observed and ``predicted_*`` data
(raw output, as fitted), the surrogate's forecasts (clipped like ``Surrogate.predict``) for the
inverted and the start model, the rate, the misfit / regulariser / objective histories
(restart, iteration), the normalised misfit chi^2 / N (about 1 when the model fits to within
the stated noise) and the provenance (surrogate, observations, prior, settings, seeds) as JSON
in ``attrs``.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from ccs_fno.inversion.observations import (
    ObservationsError,
    grid_attrs,
    observation_grid,
    validate_observations,
    write_dataset,
)
from ccs_fno.inversion.operator import ObservationOperator, observed_data
from ccs_fno.inversion.optimisers import build_inversion_optimizer, inversion_optimizer_names
from ccs_fno.inversion.parameterisations import build_parameterisation, check_bounds, parameterisation_names
from ccs_fno.inversion.prior import PriorEnsemble
from ccs_fno.nn import reduced_dtype

STATUSES = ("completed", "cancelled")


@dataclass(frozen=True)
class InversionConfig:
    """Settings of one inversion (see the module docstrings of ``parameterisations`` and
    ``optimisers`` for the meaning of each choice).

    ``parameterisation``: ``"pca"`` (default: the better one in ``bench/bench_inversion.py``) or
    ``"cellwise"``. ``weight``: the regulariser weight; None: 1 for pca (the Gaussian-prior MAP)
    and 0.1 for cellwise (multiplies the face-mean Tikhonov/TV value). ``bounds_md``: (low, high)
    mD box of the cellwise permeability (None: the prior's range widened by 10 %; pca is
    unbounded). ``iterations`` per restart; ``restarts`` >= 1; ``seed`` draws the restart starts.
    ``learning_rate``: None = the optimiser's default (adam 0.05, lbfgs 1).
    """

    parameterisation: str = "pca"
    regulariser: str = "tikhonov"
    weight: float | None = None
    tv_epsilon: float = 0.01
    bounds_md: tuple[float, float] | None = None
    n_modes: int = 32
    optimizer: str = "adam"
    learning_rate: float | None = None
    iterations: int = 200
    restarts: int = 1
    seed: int = 0
    invert_rate: bool = False
    rate_log_std: float = 0.3

    def __post_init__(self) -> None:
        for name in ("iterations", "restarts"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if self.optimizer not in inversion_optimizer_names():
            raise ValueError(
                f"optimizer must be one of {inversion_optimizer_names()}, got {self.optimizer!r}"
            )
        if self.parameterisation not in parameterisation_names():
            raise ValueError(
                f"parameterisation must be one of {parameterisation_names()}, got {self.parameterisation!r}"
            )
        if not (math.isfinite(self.rate_log_std) and self.rate_log_std > 0):
            raise ValueError(f"rate_log_std must be finite and > 0, got {self.rate_log_std!r}")
        if self.bounds_md is not None:
            object.__setattr__(self, "bounds_md", check_bounds(self.bounds_md))
            if self.parameterisation == "pca":
                raise ValueError(
                    f"bounds_md {self.bounds_md!r} applies to the cellwise parameterisation; pca is "
                    "unbounded (its Gaussian prior keeps ln k near the prior): drop bounds_md or use "
                    "parameterisation='cellwise'"
                )
        if self.weight is None:
            object.__setattr__(self, "weight", 1.0 if self.parameterisation == "pca" else 0.1)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))


@dataclass(frozen=True)
class InversionProgress:
    """One iteration: ``misfit`` = chi^2 / N, ``regulariser`` = R, ``objective`` = J."""

    restart: int
    iteration: int
    iterations: int
    restarts: int
    misfit: float
    regulariser: float
    objective: float


@dataclass
class _State:
    theta: np.ndarray
    rate_r: float
    objective: float
    restart: int


@dataclass
class InversionProblem:
    """The objective of one inversion: the surrogate, the observation operator, the data, the
    known site data and the parameterisation. ``evaluate`` is differentiable in (theta, r);
    computations run in the dtype of the surrogate's weights (float32, or float64 for tests)."""

    surrogate: Any
    operator: ObservationOperator
    observed: dict[str, torch.Tensor]
    sigma: dict[str, float]
    n_data: int
    porosity: np.ndarray
    injector: np.ndarray
    producer: np.ndarray
    rate_guess: float
    rate_log_std: float
    parameterisation: Any
    grid: Any

    @classmethod
    def build(
        cls, surrogate: Any, observations: xr.Dataset, prior: PriorEnsemble, config: InversionConfig
    ) -> InversionProblem:
        """Check the inputs against each other and assemble the problem."""
        if not isinstance(prior, PriorEnsemble):
            raise TypeError(f"prior must be a PriorEnsemble (draw_prior), got {type(prior).__name__}")
        validate_observations(observations, surrogate.times_days)
        _check_surrogate(surrogate, observations)
        if prior.log_permeability.shape[1:] != surrogate.grid.shape:
            raise ValueError(
                f"the prior's fields are {prior.log_permeability.shape[1:]}; the surrogate's grid is "
                f"{surrogate.grid.shape}: draw the prior on the surrogate's grid"
            )
        parameterisation = build_parameterisation(
            config.parameterisation,
            prior,
            bounds_md=config.bounds_md,
            regulariser=config.regulariser,
            weight=config.weight,
            tv_epsilon=config.tv_epsilon,
            n_modes=config.n_modes,
        )
        data = observed_data(observations)
        grid = surrogate.grid
        dtype = next(surrogate.model.parameters()).dtype
        return cls(
            surrogate=surrogate,
            operator=ObservationOperator.build(observations, surrogate.times_days),
            observed={name: torch.from_numpy(values).to(dtype) for name, (values, _) in data.items()},
            sigma={name: noise for name, (_, noise) in data.items()},
            n_data=int(sum(values.size for values, _ in data.values())),
            porosity=np.full((1, *grid.shape), float(observations["porosity"])),
            injector=np.array([[observations["injector_z"].item(), observations["injector_x"].item()]]),
            producer=np.array([[observations["producer_z"].item(), observations["producer_x"].item()]]),
            rate_guess=float(observations["rate_m3_per_day"]),
            rate_log_std=config.rate_log_std,
            parameterisation=parameterisation,
            grid=grid,
        )

    @property
    def dtype(self) -> torch.dtype:
        return next(self.surrogate.model.parameters()).dtype

    def rate(self, r: torch.Tensor) -> torch.Tensor:
        """The injection rate (m^3/day) of rate parameter ``r``: guess * exp(rate_log_std * r)."""
        return self.rate_guess * torch.exp(self.rate_log_std * r)

    def saturation(self, log_k: torch.Tensor, rate: torch.Tensor, clip: bool = False) -> torch.Tensor:
        """Surrogate saturation [1, T, Z, X] for ln k (Z, X) and rate [1]: the model's raw output
        (the objective's: clipping would zero the gradient wherever the output leaves the
        physical range), or with ``clip`` limited to [0, max_saturation] like ``Surrogate.predict``."""
        s = self.surrogate
        x = s.normalisers.encode_torch(
            log_k[None].to(self.dtype),
            rate.reshape(1).to(self.dtype),
            self.porosity,
            self.injector,
            self.producer,
            self.grid.z_m,
            self.grid.x_m,
        )
        device = s.device
        autocast = torch.autocast(
            device.type, dtype=reduced_dtype(device), enabled=s.model.precision != "full"
        )
        with autocast:
            y = s.model(x.to(device))
        y = y.to(self.dtype)
        return y.clamp(0.0, s.max_saturation) if clip else y

    def evaluate(
        self, theta: torch.Tensor, r: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(objective J, chi^2 / N, R) at ``theta`` and rate parameter ``r`` [1]."""
        log_k = self.parameterisation.log_permeability(theta)
        predicted = self.operator.apply(self.saturation(log_k, self.rate(r)))
        chi2 = sum(
            ((predicted[name][0] - self.observed[name]) / self.sigma[name]).square().sum()
            for name in self.observed
        )
        misfit = chi2 / self.n_data
        reg = self.parameterisation.regulariser(theta, log_k, self.n_data)
        reg = reg + 0.5 * r.square().sum() / self.n_data
        return 0.5 * misfit + reg, misfit, reg


def _check_surrogate(surrogate: Any, obs: xr.Dataset) -> None:
    grid, trained = observation_grid(obs), surrogate.grid
    if (grid.nz, grid.nx, grid.dz_m, grid.dx_m) != (trained.nz, trained.nx, trained.dz_m, trained.dx_m):
        raise ObservationsError(
            f"the observations are on a {grid.nz}x{grid.nx} grid of {grid.dz_m:g} m x {grid.dx_m:g} m "
            f"cells; the surrogate was trained on {trained.nz}x{trained.nx} cells of "
            f"{trained.dz_m:g} m x {trained.dx_m:g} m. Use a surrogate trained on the observations' "
            "grid (or observations recorded on the surrogate's)"
        )


def invert(
    surrogate: Any,
    observations: xr.Dataset,
    prior: PriorEnsemble,
    config: InversionConfig | None = None,
    progress: Callable[[InversionProgress], None] | None = None,
    cancel: threading.Event | None = None,
) -> xr.Dataset:
    """Invert ``observations`` for permeability through ``surrogate`` (module docstring)."""
    config = InversionConfig() if config is None else config
    problem = InversionProblem.build(surrogate, observations, prior, config)
    parameterisation = problem.parameterisation
    rng = np.random.default_rng(config.seed)
    history = np.full((3, config.restarts, config.iterations + 1), np.nan)
    best: _State | None = None
    status = "completed"
    started = time.perf_counter()
    start_log_k = None
    for restart in range(config.restarts):
        theta0 = parameterisation.start(restart, prior, rng)
        if restart == 0:
            start_log_k = parameterisation.log_permeability(torch.from_numpy(theta0)).numpy()
        state, cancelled = _run(problem, config, theta0, restart, history, progress, cancel)
        if best is None or state.objective < best.objective:
            best = state
        if cancelled:
            status = "cancelled"
            break
    elapsed = time.perf_counter() - started
    return _result(problem, observations, prior, config, best, start_log_k, history, status, elapsed)


def _run(problem, config, theta0, restart, history, progress, cancel) -> tuple[_State, bool]:
    theta = torch.tensor(theta0, dtype=problem.dtype, requires_grad=True)
    r = torch.zeros(1, dtype=problem.dtype, requires_grad=config.invert_rate)
    params = [theta, r] if config.invert_rate else [theta]
    optimizer = build_inversion_optimizer(config.optimizer, params, config.learning_rate)
    last: dict[str, float] = {}

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        objective, misfit, reg = problem.evaluate(theta, r)
        grads = torch.autograd.grad(objective, params)
        for p, g in zip(params, grads, strict=True):
            p.grad = g
        if not last:
            last.update(
                objective=float(objective.detach()), misfit=float(misfit.detach()), reg=float(reg.detach())
            )
        return objective.detach()

    def record(i: int, values: dict[str, float]) -> None:
        history[:, restart, i] = values["misfit"], values["reg"], values["objective"]
        if progress is not None:
            progress(
                InversionProgress(
                    restart,
                    i,
                    config.iterations,
                    config.restarts,
                    values["misfit"],
                    values["reg"],
                    values["objective"],
                )
            )

    cancelled = False
    for i in range(config.iterations):
        if cancel is not None and cancel.is_set():
            cancelled = True
            break
        last.clear()
        optimizer.step(closure)
        record(i, last)
    with torch.no_grad():
        objective, misfit, reg = problem.evaluate(theta, r)
    final = {"objective": float(objective), "misfit": float(misfit), "reg": float(reg)}
    if not cancelled:
        record(config.iterations, final)
    state = _State(
        theta.detach().numpy().astype(np.float64), float(r.detach()[0]), final["objective"], restart
    )
    return state, cancelled


def _result(problem, obs, prior, config, best, start_log_k, history, status, elapsed) -> xr.Dataset:
    grid = problem.grid
    surrogate = problem.surrogate
    with torch.no_grad():
        theta = torch.from_numpy(best.theta).to(problem.dtype)
        r = torch.tensor([best.rate_r], dtype=problem.dtype)
        log_k = problem.parameterisation.log_permeability(theta)
        rate = problem.rate(r)
        raw = problem.saturation(log_k, rate)
        predicted = {k: v[0].numpy().astype(np.float64) for k, v in problem.operator.apply(raw).items()}
        saturation = raw.clamp(0.0, surrogate.max_saturation)
        _, misfit, _ = problem.evaluate(theta, r)
        start = torch.from_numpy(start_log_k).to(problem.dtype)
        start_rate = torch.tensor([problem.rate_guess], dtype=problem.dtype)
        start_saturation = problem.saturation(start, start_rate, clip=True)
    log_k = log_k.numpy().astype(np.float64)
    space = {"z": ("z", grid.z_m, {"units": "m"}), "x": ("x", grid.x_m, {"units": "m"})}
    times = {"time": ("time", surrogate.times_days, {"units": "d"})}
    ds = xr.Dataset(coords={**space, **times})
    ds["permeability"] = (("z", "x"), np.exp(log_k), {"units": "mD", "long_name": "inverted permeability"})
    ds["log_permeability"] = (("z", "x"), log_k, {"units": "ln(mD)"})
    ds["start_permeability"] = (
        ("z", "x"),
        np.exp(start_log_k.astype(np.float64)),
        {"units": "mD", "long_name": "start (prior mean) permeability"},
    )
    ds["forecast_saturation"] = (
        ("time", "z", "x"),
        saturation[0].numpy(),
        {"units": "1", "long_name": "CO2 saturation (surrogate, inverted model)"},
    )
    ds["start_forecast_saturation"] = (
        ("time", "z", "x"),
        start_saturation[0].numpy(),
        {"units": "1", "long_name": "CO2 saturation (surrogate, start model)"},
    )
    observed = obs.drop_vars([v for v in obs.data_vars if v.endswith("_clean")])
    for name in ("rate_m3_per_day",):
        observed = observed.rename({name: f"{name}_guess"})
    ds = xr.merge([ds, observed], combine_attrs="override")
    for name, values in predicted.items():
        ds[f"predicted_{name}"] = (obs[name].dims, values, {"units": "1", "long_name": f"predicted {name}"})
    ds["rate_m3_per_day"] = (
        (),
        float(rate[0]),
        {
            "units": "m3/day",
            "long_name": "injection rate (inverted)" if config.invert_rate else "injection rate",
        },
    )
    hist_dims = ("restart", "iteration")
    ds = ds.assign_coords(restart=np.arange(config.restarts), iteration=np.arange(config.iterations + 1))
    ds["misfit_history"] = (hist_dims, history[0], {"long_name": "chi^2 / N"})
    ds["regulariser_history"] = (hist_dims, history[1], {"long_name": "regulariser R"})
    ds["objective_history"] = (hist_dims, history[2], {"long_name": "objective chi^2 / (2N) + R"})
    ds["normalised_misfit"] = ((), float(misfit), {"long_name": "chi^2 / N at the result"})
    provenance = {
        "surrogate": _surrogate_provenance(surrogate),
        "observations": {
            "source": json.loads(obs.attrs.get("source", "{}")),
            "n_data": problem.n_data,
            "kinds": sorted(problem.observed),
            "noise_std": problem.sigma,
        },
        "prior": {k: v for k, v in prior.describe().items() if k != "space"}
        | {"geology": prior.space.geology},
        "settings": config.to_dict() | problem.parameterisation.describe(),
        "seeds": {"restarts": config.seed, "prior_master_seed": prior.master_seed},
        "best_restart": best.restart,
    }
    ds.attrs = {
        "schema": "ccs-fno-inversion",
        **grid_attrs(grid),
        "status": status,
        # Whether the inverted model lies where the surrogate was trained ("" when inside, or when
        # the surrogate records no training distribution): outside it, only `verify` can tell.
        "out_of_domain": _domain_reasons(problem, np.exp(log_k), float(rate[0])),
        "elapsed_s": float(elapsed),
        "provenance": json.dumps(provenance),
    }
    return ds


def save_result(result: xr.Dataset, path: str | os.PathLike) -> Path:
    """Export an inversion result to NetCDF (``*.nc``) or Zarr (``*.zarr``); return the path."""
    if not isinstance(result, xr.Dataset) or result.attrs.get("schema") != "ccs-fno-inversion":
        raise ValueError(
            "result must be the Dataset returned by invert (attrs['schema'] == 'ccs-fno-inversion')"
        )
    return write_dataset(result, path)


def _domain_reasons(problem: InversionProblem, permeability_md: np.ndarray, rate: float) -> str:
    surrogate = problem.surrogate
    if getattr(surrogate, "domain", None) is None:
        return ""
    report = surrogate.check_domain(
        permeability_md,
        rate_m3_per_day=rate,
        injector_zx=problem.injector[0],
        producer_zx=problem.producer[0],
        porosity=problem.porosity[0],
    )
    return "; ".join(report.reasons)


def _surrogate_provenance(surrogate: Any) -> dict[str, Any]:
    provenance = dict(getattr(surrogate, "provenance", None) or {})
    if surrogate.fingerprint is not None:
        provenance.setdefault("training_data", surrogate.fingerprint)
    return json.loads(json.dumps(provenance, default=str))


def load_prior_for(surrogate: Any, n_samples: int, master_seed: int) -> PriorEnsemble:
    """A prior drawn from the surrogate's training distribution (``surrogate.domain.space``)."""
    from ccs_fno.inversion.prior import draw_prior

    domain = getattr(surrogate, "domain", None)
    if domain is None:
        raise ValueError(
            "the surrogate records no training distribution (surrogate.domain is None); draw the prior "
            "with draw_prior(data_gen.scenarios.default_space(...), n_samples, master_seed)"
        )
    return draw_prior(domain.space, n_samples, master_seed)
