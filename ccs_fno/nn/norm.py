"""Batch-statistics normalisation, synchronised over the data-parallel processes.

``BatchNorm`` normalises each channel by the mean and variance over the batch and all spatial
cells, like ``torch.nn.BatchNorm{2,3}d``, but the statistics are those of the **global** batch:
in a data-parallel run the per-channel count, sum and sum of squares are summed over the
``data`` process group (``ccs_fno.distributed``) with a differentiable all-reduce, so the output
and every gradient equal those of one process holding the whole batch. Serial runs skip the
collective. Statistics are accumulated in float32 (float64 for float64 inputs) also under
autocast.

Why not ``torch.nn.SyncBatchNorm``: it runs only on CUDA (NCCL); this layer is one code path on
CPU/gloo and CUDA/NCCL, tested against serial on CPU, and its cost is one all-reduce of
2C + 1 numbers per layer and step (plus one in backward).
"""

from __future__ import annotations

import torch
import torch.distributed.nn.functional as dist_fn
from torch import nn

from ccs_fno.distributed import get_context

NORMS = (None, "batch")


def validate_norm(norm: str | None) -> str | None:
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    return norm


class BatchNorm(nn.Module):
    """Per-channel batch normalisation of [B, C, *spatial] over the global batch.

    ``momentum``: weight of the new batch in the running statistics (torch's convention);
    running variance uses the unbiased estimate of the global batch, evaluation uses the running
    statistics (no communication).
    """

    def __init__(self, channels: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        self.channels, self.eps, self.momentum = channels, eps, momentum
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))
        # Process groups the statistics are summed over: the spatially sharded FNO adds "spatial".
        self.groups: tuple[str, ...] = ("data",)

    def extra_repr(self) -> str:
        return f"{self.channels}, eps={self.eps}, momentum={self.momentum}, synchronised"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (x.dim() - 2)
        stat_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        with torch.autocast(device_type=x.device.type, enabled=False):
            h = x.to(stat_dtype)
            if self.training:
                dims = [0, *range(2, x.dim())]
                count = torch.full((1,), h.numel() / self.channels, dtype=stat_dtype, device=x.device)
                stats = torch.cat([count, h.sum(dims), (h * h).sum(dims)])
                context = get_context()
                for group in self.groups:
                    if context.size(group) > 1:
                        stats = dist_fn.all_reduce(stats, group=context.group(group))
                n = stats[0]
                mean = stats[1 : 1 + self.channels] / n
                var = (stats[1 + self.channels :] / n - mean * mean).clamp_min(0.0)
                with torch.no_grad():
                    unbiased = var * (n / (n - 1).clamp_min(1.0))
                    self.running_mean.lerp_(mean.to(self.running_mean.dtype), self.momentum)
                    self.running_var.lerp_(unbiased.to(self.running_var.dtype), self.momentum)
            else:
                mean, var = self.running_mean.to(stat_dtype), self.running_var.to(stat_dtype)
            scale = self.weight.to(stat_dtype) * torch.rsqrt(var + self.eps)
            y = (h - mean.view(shape)) * scale.view(shape) + self.bias.to(stat_dtype).view(shape)
        return y.to(x.dtype)
