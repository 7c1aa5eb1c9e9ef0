"""Parameterisations of log-permeability for the inversion, by name (a registry).

* ``cellwise``: one unknown per cell. ln k = ln k_lo + (ln k_hi - ln k_lo) * sigmoid(u): the box
  constraint k_lo <= k <= k_hi (mD) holds by construction and the optimiser sees no bound.
  Regulariser on m = ln k: ``tikhonov`` (smoothness: the mean over all cell faces of
  (m_i - m_j)^2 / 2) or ``tv`` (total variation: the mean over faces of
  sqrt((m_i - m_j)^2 + eps^2) - eps, smoothed at ``tv_epsilon``), times ``weight``.
* ``pca``: ln k = mean + sum_i c_i std_i mode_i over the prior's leading modes
  (``PriorEnsemble.modes``), with the Gaussian prior c ~ N(0, I): regulariser
  ``weight * |c|^2 / (2 N)`` (N data; ``weight = 1`` is the MAP estimate, since the data term is
  chi^2 / (2 N)). Unbounded.

Every parameterisation maps an unconstrained vector ``theta`` (torch) to ln k (Z, X) and a
regulariser value; ``start(kind, ...)`` gives theta at the prior mean or at a prior sample.
New kinds register with ``register_parameterisation(name, factory)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ccs_fno.inversion.prior import PriorEnsemble, PriorModes

REGULARISERS = ("tikhonov", "tv")


def _face_differences(m: torch.Tensor) -> torch.Tensor:
    """Differences across every interior face of a (..., Z, X) field, flattened: [..., F]."""
    return torch.cat([m.diff(dim=-2).flatten(-2), m.diff(dim=-1).flatten(-2)], dim=-1)


def tikhonov_gradient(m: torch.Tensor) -> torch.Tensor:
    """Mean over interior faces of (m_i - m_j)^2 / 2 (per-cell differences, no grid spacing)."""
    return 0.5 * _face_differences(m).square().mean(dim=-1)


def total_variation(m: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Mean over interior faces of sqrt((m_i - m_j)^2 + eps^2) - eps (smoothed anisotropic TV)."""
    d = _face_differences(m)
    return (torch.sqrt(d.square() + epsilon**2) - epsilon).mean(dim=-1)


def check_bounds(bounds_md: Any) -> tuple[float, float]:
    """``bounds_md`` as (low, high) mD with 0 < low < high, finite, else a ValueError."""
    try:
        low, high = (float(b) for b in bounds_md)
    except (TypeError, ValueError):
        raise ValueError(f"permeability bounds must be a (low, high) pair in mD, got {bounds_md!r}") from None
    if not (math.isfinite(low) and math.isfinite(high)) or low <= 0 or high <= 0:
        raise ValueError(
            f"permeability bounds must be finite and > 0 mD, got {bounds_md!r}; a permeability bound "
            "<= 0 has no logarithm: use e.g. (1, 1000)"
        )
    if not low < high:
        raise ValueError(f"permeability bounds must satisfy low < high, got {bounds_md!r}")
    return low, high


class Parameterisation:
    """Unconstrained ``theta`` -> ln k (Z, X) (ln mD) and a regulariser value."""

    name = ""

    def log_permeability(self, theta: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def regulariser(self, theta: torch.Tensor, log_k: torch.Tensor, n_data: int) -> torch.Tensor:
        raise NotImplementedError

    def theta_of(self, log_k: np.ndarray) -> np.ndarray:
        """Parameters that represent the field ``log_k`` (as closely as possible)."""
        raise NotImplementedError

    def start(self, restart: int, prior: PriorEnsemble, rng: np.random.Generator) -> np.ndarray:
        """theta at the prior mean (restart 0) or at a prior sample (later restarts)."""
        if restart == 0:
            return self.theta_of(prior.mean())
        return self.theta_of(prior.log_permeability[rng.integers(prior.n_samples)])

    def describe(self) -> dict[str, Any]:
        raise NotImplementedError


@dataclass
class Cellwise(Parameterisation):
    """Cell-wise ln k with box constraints ``bounds_md`` and a Tikhonov or TV regulariser."""

    bounds_md: tuple[float, float]
    regulariser_kind: str = "tikhonov"
    weight: float = 1.0
    tv_epsilon: float = 0.01
    name = "cellwise"

    def __post_init__(self) -> None:
        self.bounds_md = check_bounds(self.bounds_md)
        if self.regulariser_kind not in REGULARISERS:
            raise ValueError(f"regulariser must be one of {REGULARISERS}, got {self.regulariser_kind!r}")
        if not (math.isfinite(self.weight) and self.weight >= 0):
            raise ValueError(f"regulariser weight must be finite and >= 0, got {self.weight!r}")
        if not (math.isfinite(self.tv_epsilon) and self.tv_epsilon > 0):
            raise ValueError(f"tv_epsilon must be finite and > 0, got {self.tv_epsilon!r}")
        self._low, self._high = (math.log(b) for b in self.bounds_md)

    def log_permeability(self, theta: torch.Tensor) -> torch.Tensor:
        return self._low + (self._high - self._low) * torch.sigmoid(theta)

    def theta_of(self, log_k: np.ndarray) -> np.ndarray:
        fraction = (np.asarray(log_k, np.float64) - self._low) / (self._high - self._low)
        fraction = np.clip(fraction, 1e-3, 1 - 1e-3)  # a start on the bound would have no gradient
        return np.log(fraction / (1 - fraction))

    def regulariser(self, theta: torch.Tensor, log_k: torch.Tensor, n_data: int) -> torch.Tensor:
        if self.regulariser_kind == "tikhonov":
            return self.weight * tikhonov_gradient(log_k)
        return self.weight * total_variation(log_k, self.tv_epsilon)

    def describe(self) -> dict[str, Any]:
        return {
            "parameterisation": self.name,
            "bounds_md": list(self.bounds_md),
            "regulariser": self.regulariser_kind,
            "weight": self.weight,
            "tv_epsilon": self.tv_epsilon,
        }


@dataclass
class PriorCoefficients(Parameterisation):
    """ln k = mean + sum_i c_i std_i mode_i, c with a standard Gaussian prior."""

    modes: PriorModes
    weight: float = 1.0
    name = "pca"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.weight) and self.weight >= 0):
            raise ValueError(f"prior weight must be finite and >= 0, got {self.weight!r}")
        m = self.modes
        self._mean = torch.from_numpy(m.mean)
        self._scaled = torch.from_numpy(m.basis * m.std[:, None, None])  # [n, Z, X]

    def log_permeability(self, theta: torch.Tensor) -> torch.Tensor:
        scaled = self._scaled.to(theta)
        return self._mean.to(theta) + torch.tensordot(theta, scaled, dims=1)

    def theta_of(self, log_k: np.ndarray) -> np.ndarray:
        return self.modes.coefficients(log_k)

    def start(self, restart: int, prior: PriorEnsemble, rng: np.random.Generator) -> np.ndarray:
        if restart == 0:
            return np.zeros(self.modes.n_modes)
        return rng.standard_normal(self.modes.n_modes)

    def regulariser(self, theta: torch.Tensor, log_k: torch.Tensor, n_data: int) -> torch.Tensor:
        return self.weight * 0.5 * theta.square().sum() / n_data

    def describe(self) -> dict[str, Any]:
        return {"parameterisation": self.name, "n_modes": self.modes.n_modes, "weight": self.weight}


Factory = Callable[..., Parameterisation]


def _cellwise(
    prior: PriorEnsemble, *, bounds_md=None, regulariser="tikhonov", weight=1.0, tv_epsilon=0.01, **_: Any
) -> Parameterisation:
    if bounds_md is None:  # the prior's range, widened by 10 %
        low, high = prior.bounds_md()
        bounds_md = (0.9 * low, 1.1 * high)
    return Cellwise(bounds_md, regulariser, weight, tv_epsilon)


def _pca(prior: PriorEnsemble, *, n_modes=32, weight=1.0, **_: Any) -> Parameterisation:
    return PriorCoefficients(prior.modes(n_modes), weight)


_PARAMETERISATIONS: dict[str, Factory] = {"cellwise": _cellwise, "pca": _pca}


def parameterisation_names() -> tuple[str, ...]:
    return tuple(_PARAMETERISATIONS)


def register_parameterisation(name: str, factory: Factory) -> None:
    """Make ``factory(prior, **settings)`` available as parameterisation ``name``."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"parameterisation name must be an identifier, got {name!r}")
    _PARAMETERISATIONS[name] = factory


def build_parameterisation(name: str, prior: PriorEnsemble, **settings: Any) -> Parameterisation:
    """Parameterisation ``name`` for ``prior`` with ``settings`` (see the module docstring)."""
    if name not in _PARAMETERISATIONS:
        raise ValueError(f"parameterisation must be one of {parameterisation_names()}, got {name!r}")
    return _PARAMETERISATIONS[name](prior, **settings)
