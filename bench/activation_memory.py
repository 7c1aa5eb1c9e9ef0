"""Activation memory of a training step: the bytes autograd saves for backward (shared by the benches)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def saved_bytes(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> int:
    """Unique storage bytes saved for backward by one forward + ``loss_fn``; parameters and the
    data batch (x, y: held by the loader anyway) excluded."""
    excluded = {t.untyped_storage().data_ptr() for t in (*model.parameters(), x, y)}
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in excluded:
            storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = loss_fn(model(x), y)
    loss.backward()
    model.zero_grad(set_to_none=True)
    return sum(storages.values())
