"""The prior: an ensemble of log-permeability fields drawn with the scenario sampler, and its
leading principal components (Karhunen-Loeve modes).

``draw_prior(space, n_samples, master_seed)`` draws fields with ``data_gen.scenarios`` (the same
sampler the training data came from; choose a master seed the training store did not use).
``PriorEnsemble.modes(n)`` returns the n leading modes of the centred ensemble, scaled so that
the coefficients of the ensemble's members have unit sample variance: a field is
``mean + sum_i c_i * std_i * mode_i`` with ``c ~ N(0, I)`` under the Gaussian approximation of
the prior. Units: ln k with k in mD.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from data_gen.scenarios import ScenarioSpace, sample_scenario


@dataclass(frozen=True)
class PriorModes:
    """``n`` leading modes: ``mean`` (Z, X), orthonormal ``basis`` (n, Z, X), ``std`` (n,)."""

    mean: np.ndarray
    basis: np.ndarray
    std: np.ndarray

    @property
    def n_modes(self) -> int:
        return int(self.std.size)

    def field(self, coefficients: np.ndarray) -> np.ndarray:
        """ln k (Z, X) of coefficients (n,)."""
        c = np.asarray(coefficients, dtype=np.float64)
        return self.mean + np.tensordot(c * self.std, self.basis, axes=1)

    def coefficients(self, log_permeability: np.ndarray) -> np.ndarray:
        """Coefficients (..., n) of fields (..., Z, X) projected on the modes."""
        centred = np.asarray(log_permeability, dtype=np.float64) - self.mean
        return np.tensordot(centred, self.basis, axes=([-2, -1], [1, 2])) / self.std


@dataclass(frozen=True)
class PriorEnsemble:
    """Log-permeability fields (n, Z, X) in ln mD drawn from ``space`` with ``master_seed``."""

    log_permeability: np.ndarray
    space: ScenarioSpace
    master_seed: int

    @property
    def n_samples(self) -> int:
        return int(self.log_permeability.shape[0])

    def mean(self) -> np.ndarray:
        """The pointwise mean of ln k (Z, X): the prior-mean model."""
        return self.log_permeability.mean(axis=0)

    def bounds_md(self) -> tuple[float, float]:
        """The smallest and largest permeability (mD) of the ensemble."""
        return float(np.exp(self.log_permeability.min())), float(np.exp(self.log_permeability.max()))

    def modes(self, n_modes: int) -> PriorModes:
        """The ``n_modes`` leading principal components (at most n_samples - 1)."""
        most = self.n_samples - 1
        if (
            isinstance(n_modes, bool)
            or not isinstance(n_modes, (int, np.integer))
            or not 1 <= n_modes <= most
        ):
            raise ValueError(
                f"n_modes must be an integer in [1, {most}] (n_samples - 1 of this prior), got {n_modes!r}; "
                "draw a larger prior for more modes"
            )
        n, nz, nx = self.log_permeability.shape
        mean = self.mean()
        centred = (self.log_permeability - mean).reshape(n, -1)
        _, singular, vt = np.linalg.svd(centred, full_matrices=False)
        std = singular[:n_modes] / np.sqrt(n - 1)
        if std[-1] <= 1e-12 * max(std[0], 1e-300):
            raise ValueError(
                f"the prior has only {int(np.sum(singular > 1e-12 * singular[0]))} non-degenerate modes; "
                f"asked for {n_modes}"
            )
        return PriorModes(mean, vt[:n_modes].reshape(n_modes, nz, nx), std)

    def describe(self) -> dict[str, Any]:
        return {"n_samples": self.n_samples, "master_seed": self.master_seed, "space": self.space.to_dict()}


def draw_prior(space: ScenarioSpace, n_samples: int, master_seed: int) -> PriorEnsemble:
    """``n_samples`` ln-permeability fields of ``space`` (samples 0..n-1 of ``master_seed``)."""
    if not isinstance(space, ScenarioSpace):
        raise TypeError(f"space must be a data_gen.scenarios.ScenarioSpace, got {type(space).__name__}")
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 2:
        raise ValueError(f"n_samples must be an integer >= 2, got {n_samples!r}")
    fields = np.stack(
        [np.log(sample_scenario(space, master_seed, i).permeability_md()) for i in range(n_samples)]
    )
    return PriorEnsemble(fields, space, int(master_seed))
