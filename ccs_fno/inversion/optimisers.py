"""Optimisers for the inversion, by name: each takes one step on ``theta`` given a closure that
evaluates the objective and sets ``theta.grad``.

* ``adam``: ``torch.optim.Adam`` (through the project registry ``ccs_fno.optim``: AdamW with no
  weight decay is Adam), one gradient evaluation per iteration;
* ``lbfgs``: ``torch.optim.LBFGS`` with a strong-Wolfe line search, one quasi-Newton iteration
  per step (its line search may evaluate the objective a few times).

New kinds register with ``register_inversion_optimizer(name, factory)``; a factory takes
``([theta], learning_rate)`` and returns a ``torch.optim.Optimizer`` whose ``step(closure)``
performs one iteration.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ccs_fno.optim import build_optimizer

Factory = Callable[[list[torch.Tensor], float], torch.optim.Optimizer]


def _adam(params: list[torch.Tensor], learning_rate: float) -> torch.optim.Optimizer:
    return build_optimizer("adamw", params, learning_rate, 0.0)


def _lbfgs(params: list[torch.Tensor], learning_rate: float) -> torch.optim.Optimizer:
    return torch.optim.LBFGS(
        params,
        lr=learning_rate,
        max_iter=1,
        history_size=20,
        line_search_fn="strong_wolfe",
    )


_OPTIMIZERS: dict[str, Factory] = {"adam": _adam, "lbfgs": _lbfgs}
DEFAULT_LEARNING_RATES = {"adam": 0.05, "lbfgs": 1.0}


def inversion_optimizer_names() -> tuple[str, ...]:
    return tuple(_OPTIMIZERS)


def register_inversion_optimizer(name: str, factory: Factory, learning_rate: float = 0.01) -> None:
    """Make ``factory([theta], lr)`` available as inversion optimiser ``name``."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"optimiser name must be an identifier, got {name!r}")
    _OPTIMIZERS[name] = factory
    DEFAULT_LEARNING_RATES[name] = float(learning_rate)


def build_inversion_optimizer(
    name: str, params: list[torch.Tensor], learning_rate: float | None
) -> torch.optim.Optimizer:
    """Optimiser ``name`` over ``params`` (None learning rate: the optimiser's default)."""
    if name not in _OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {inversion_optimizer_names()}, got {name!r}")
    lr = DEFAULT_LEARNING_RATES[name] if learning_rate is None else float(learning_rate)
    if not lr > 0:
        raise ValueError(f"learning_rate must be > 0, got {learning_rate!r}")
    return _OPTIMIZERS[name](list(params), lr)
