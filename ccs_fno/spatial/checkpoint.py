"""Checkpoints of sharded models that do not depend on the process grid.

The model's sharded parameters are tagged (``ShardSpec`` in ``_ccs_shards``); these helpers read
the tags, so no layer-specific code is needed: ``full_optimizer_state`` gathers every optimiser
state tensor shaped like a sharded parameter (Adam's moments) into the serial shape (collective
over the spatial group), and ``shard_optimizer_state`` slices a serial optimiser state dict for
this rank. With them a checkpoint written by a sharded run loads into a serial one and back.

Only optimisers whose per-parameter state is shaped like the parameter (or scalar) can be
sharded this way (AdamW); ``check_shardable_state`` refuses others with a clear message.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ccs_fno.distributed import ProcessContext, get_context
from ccs_fno.spatial.model import _shards, gather_shard


def _names(model: nn.Module) -> list[str]:
    """Parameter names in the order an optimiser built from ``model.parameters()`` numbers them."""
    return [name for name, _ in model.named_parameters()]


def full_optimizer_state(
    optimizer: torch.optim.Optimizer, model: nn.Module, context: ProcessContext | None = None
) -> dict[str, Any]:
    """``optimizer.state_dict()`` with the state of sharded parameters gathered (collective)."""
    state = optimizer.state_dict()
    shards, names = _shards(model), _names(model)
    params = dict(model.named_parameters())
    for index, name in enumerate(names):
        spec = shards.get(name)
        if spec is None or index not in state["state"]:
            continue
        local = params[name].shape
        state["state"][index] = {
            key: gather_shard(value, spec, context)
            if isinstance(value, torch.Tensor) and value.shape == local
            else value
            for key, value in state["state"][index].items()
        }
    return state


def shard_optimizer_state(
    state: Mapping[str, Any], model: nn.Module, context: ProcessContext | None = None
) -> dict[str, Any]:
    """This rank's part of a serial optimiser state dict (the inverse of ``full_optimizer_state``)."""
    context = context or get_context()
    state = copy.copy(dict(state))
    state["state"] = dict(state["state"])
    shards, names = _shards(model), _names(model)
    for index, name in enumerate(names):
        spec = shards.get(name)
        entry = state["state"].get(index)
        if spec is None or entry is None:
            continue
        start, stop = spec.block(context)
        sliced = {}
        for key, value in entry.items():
            if (
                isinstance(value, torch.Tensor)
                and value.dim() > spec.dim
                and value.shape[spec.dim] == spec.full_size
            ):
                value = value.narrow(spec.dim, start, stop - start).clone()
            sliced[key] = value
        state["state"][index] = sliced
    return state


def check_shardable_state(optimizer_name: str) -> None:
    """Raise unless optimiser ``optimizer_name`` keeps state shaped like its parameters."""
    if optimizer_name != "adamw":
        raise ValueError(
            f"spatial model parallelism needs an optimiser whose state is shaped like the weights "
            f"(so sharded checkpoints load on any process grid); allowed: 'adamw', got "
            f"{optimizer_name!r}. Use --optimizer adamw with --spatial-parallel"
        )
