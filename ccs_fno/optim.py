"""Optimisers by name: a registry the trainer, the CLI and checkpoints share.

* ``adamw``: ``torch.optim.AdamW``.
* ``soap``: SOAP (Vyas et al. 2024, "SOAP: Improving and Stabilizing Shampoo using Adam"), from
  ``pytorch-optimizer``: Adam run in the eigenbasis of Shampoo's Kronecker-factored
  preconditioner, refreshed every ``precondition_frequency`` steps. Chosen over Shampoo/PSGD
  because it keeps Adam's hyper-parameters (one learning rate, betas, weight decay), works on
  any tensor shape (the FNO's 6-D spectral weights included: dims above
  ``max_precondition_dim`` fall back to Adam), runs on CPU and CUDA without torch.compile, and
  its state is a plain ``state_dict`` (checkpoints and resume work as for AdamW).
  ``pytorch-optimizer`` is a maintained collection with tests; ``heavyball`` is compile-first
  (slow first steps on CPU, graph breaks under DDP).

Under DDP every rank holds the full optimiser state and applies the same averaged gradient, so
the states stay identical and a checkpoint written by rank 0 serves any number of processes.
New kinds register with ``register_optimizer(name, factory)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

OptimizerFactory = Callable[[Iterable[torch.nn.Parameter], float, float], torch.optim.Optimizer]


def _adamw(params: Iterable[torch.nn.Parameter], lr: float, weight_decay: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def _soap(params: Iterable[torch.nn.Parameter], lr: float, weight_decay: float) -> torch.optim.Optimizer:
    from pytorch_optimizer import SOAP

    # betas (0.95, 0.95) and preconditioner refresh every 10 steps: the paper's defaults.
    return SOAP(params, lr=lr, weight_decay=weight_decay, betas=(0.95, 0.95), precondition_frequency=10)


_OPTIMIZERS: dict[str, OptimizerFactory] = {"adamw": _adamw, "soap": _soap}


def optimizer_names() -> tuple[str, ...]:
    return tuple(_OPTIMIZERS)


def register_optimizer(name: str, factory: OptimizerFactory) -> None:
    """Make ``factory(params, lr, weight_decay)`` available as optimiser ``name``."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"optimizer name must be an identifier, got {name!r}")
    _OPTIMIZERS[name] = factory


def build_optimizer(
    name: str, params: Iterable[torch.nn.Parameter], lr: float, weight_decay: float
) -> torch.optim.Optimizer:
    """The optimiser ``name`` over ``params``; a clear error for an unknown name."""
    if name not in _OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {optimizer_names()}, got {name!r}")
    return _OPTIMIZERS[name](params, lr, weight_decay)
