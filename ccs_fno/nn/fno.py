"""Fourier Neural Operator: lifting, Fourier layers (spectral + 1x1 skip [+ norm], GELU), projection.

Two layouts for the CO2 problem (51 report times on a 64x64 [z, x] section):

* ``modes=(mz, mx)``: FNO2d with time as output channels, [B, C_in, Z, X] -> [B, T, Z, X];
* ``modes=(mz, mx, mt)``: FNO3d, [B, C_in, Z, X, T] -> [B, C_out, Z, X, T] (static inputs repeated
  along T; the time coordinate comes from the appended grid).

Cell-centre coordinates in [0, 1] ((i + 0.5) / n per dim) are appended as input channels, so a
model built at 64x64 runs unchanged at 128x128: coordinates and retained frequencies describe the
same physical domain at any resolution.

``precision`` other than "full" also runs the pointwise body under autocast (float16 on CUDA,
bfloat16 elsewhere) so activations saved for backward are half-sized, not only the spectral
part; the output is returned in the input's dtype so losses are computed in full precision.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ccs_fno.nn.norm import BatchNorm, validate_norm
from ccs_fno.nn.spectral import SpectralConv, reduced_dtype, validate_precision

_CONV = {2: nn.Conv2d, 3: nn.Conv3d}


class FNO(nn.Module):
    """FNO over 2 or 3 spatial dims (``len(modes)``); see the module docstring for layouts.

    ``self.config`` holds the constructor arguments (JSON-serialisable), so a checkpoint
    rebuilds its model with ``FNO(**config)``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        modes: Sequence[int],
        width: int = 32,
        n_layers: int = 4,
        projection_width: int = 128,
        precision: str = "full",
        tanh_preactivation: bool | None = None,
        norm: str | None = None,
    ) -> None:
        super().__init__()
        modes = [int(m) for m in modes]
        if len(modes) not in _CONV:
            raise ValueError(f"modes must have 2 or 3 entries (one per dim), got {modes}")
        sizes = {
            "in_channels": in_channels,
            "out_channels": out_channels,
            "width": width,
            "n_layers": n_layers,
            "projection_width": projection_width,
        }
        for name, value in sizes.items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        validate_precision(precision)
        validate_norm(norm)
        if tanh_preactivation is None:
            tanh_preactivation = precision != "full"  # resolved once: see SpectralConv
        self.config: dict[str, Any] = {
            **sizes,
            "modes": modes,
            "precision": precision,
            "tanh_preactivation": bool(tanh_preactivation),
            "norm": norm,
        }
        self.n_dim = len(modes)
        self.in_channels = in_channels
        self.precision = precision
        conv = _CONV[self.n_dim]
        # Before a batch norm a per-channel constant is removed again, so a bias there has no
        # effect and only a round-off gradient (which Adam would turn into drift): with
        # norm="batch" the skips have none, nor has the lifting when the first Fourier layer is
        # linear in it (no tanh pre-activation).
        batch_norm = norm == "batch"
        self.lifting = conv(
            in_channels + self.n_dim, width, 1, bias=not (batch_norm and not tanh_preactivation)
        )
        self.spectral = nn.ModuleList(
            SpectralConv(width, width, modes, precision, tanh_preactivation) for _ in range(n_layers)
        )
        self.skips = nn.ModuleList(conv(width, width, 1, bias=not batch_norm) for _ in range(n_layers))
        # norm="batch": batch statistics of the global batch (synchronised over data-parallel
        # ranks) after each Fourier layer's sum, before its activation.
        self.norms = nn.ModuleList(BatchNorm(width) if batch_norm else nn.Identity() for _ in range(n_layers))
        self.projection = nn.Sequential(
            conv(width, projection_width, 1), nn.GELU(), conv(projection_width, out_channels, 1)
        )
        self.activation = nn.GELU()

    def set_precision(self, precision: str) -> None:
        """Switch every Fourier layer (and the body's autocast) to ``precision``."""
        self.precision = validate_precision(precision)
        self.config["precision"] = precision
        for layer in self.spectral:
            layer.set_precision(precision)

    def grid(self, x: torch.Tensor) -> torch.Tensor:
        """Cell-centre coordinates [B, n_dim, *spatial] in [0, 1], in x's dtype."""
        axes = [(torch.arange(n, device=x.device, dtype=x.dtype) + 0.5) / n for n in x.shape[2:]]
        coords = torch.stack(torch.meshgrid(*axes, indexing="ij"))
        return coords.unsqueeze(0).expand(x.shape[0], *coords.shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != self.n_dim + 2 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"expected input [batch, {self.in_channels}, *{self.n_dim} spatial dims], "
                f"got shape {tuple(x.shape)}"
            )
        body = (
            contextlib.nullcontext()  # leaves any caller's autocast in force
            if self.precision == "full"
            else torch.autocast(device_type=x.device.type, dtype=reduced_dtype(x.device))
        )
        with body:
            h = self.lifting(torch.cat([x, self.grid(x)], dim=1))
            layers = zip(self.spectral, self.skips, self.norms, strict=True)
            for i, (spectral, skip, norm) in enumerate(layers):
                h = norm(spectral(h) + skip(h))
                if i < len(self.spectral) - 1:
                    h = self.activation(h)
            out = self.projection(h)
        return out.to(x.dtype)
