"""Error measures shared by training, evaluation, inversion and UQ (the one relative L2)."""

from __future__ import annotations

import torch


def relative_l2(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample ``||pred - target|| / ||target||`` over all non-batch dims, shape [B]."""
    diff = (pred - target).flatten(1).norm(dim=1)
    return diff / target.flatten(1).norm(dim=1).clamp_min(1e-12)


def relative_h1_seminorm(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample relative error of the finite-difference gradients along the last two dims."""

    def gradients(u: torch.Tensor) -> torch.Tensor:
        return torch.cat([u.diff(dim=-2).flatten(1), u.diff(dim=-1).flatten(1)], dim=1)

    return relative_l2(gradients(pred), gradients(target))


def snr_db(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample signal-to-noise ratio in dB, ``-20 log10(||pred - target|| / ||target||)``
    (the permeability SNR of surrogate-based inversion papers), shape [B]."""
    return -20.0 * torch.log10(relative_l2(pred, target).clamp_min(1e-12))
