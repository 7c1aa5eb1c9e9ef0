"""The observation operator: saturation at report times (time, z, x) -> the observed data.

One operator serves both directions of the problem: ``synthesize_observations`` applies it to the
simulator's saturation (numpy), ``invert`` to the surrogate's (torch, differentiable). Steps:

* time: linear interpolation between the two report times around each observation time (the
  identity when the time is a report time);
* wells: the value of the cell containing each (depth, x);
* snapshots: a Gaussian smoothing of ``smoothing_sigma_m`` (normalised convolution, so the
  section's edges are not darkened), then means over blocks of ``block_cells`` cells.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
import xarray as xr

from ccs_fno.inversion.observations import observation_grid, validate_observations, well_cells

DATA_NAMES = ("well_saturation", "snapshot_saturation")


def interpolation_matrix(times_days: np.ndarray, report_days: np.ndarray) -> np.ndarray:
    """Weights W (n_obs, n_report) with ``W @ f(report_days) = f(times_days)`` for piecewise linear f."""
    report = np.asarray(report_days, dtype=np.float64)
    times = np.asarray(times_days, dtype=np.float64)
    weights = np.zeros((times.size, report.size))
    right = (
        np.clip(np.searchsorted(report, times, side="left"), 1, report.size - 1) if report.size > 1 else None
    )
    for i, t in enumerate(times):
        if report.size == 1:
            weights[i, 0] = 1.0
            continue
        j = int(right[i])
        t0, t1 = report[j - 1], report[j]
        a = (t - t0) / (t1 - t0)
        weights[i, j - 1], weights[i, j] = 1.0 - a, a
    return weights


def gaussian_kernel(sigma_cells: float) -> np.ndarray:
    """A normalised 1-D Gaussian kernel truncated at 3 sigma (``[1.0]`` for sigma 0)."""
    if sigma_cells <= 0:
        return np.ones(1)
    half = max(1, math.ceil(3.0 * sigma_cells))
    offsets = np.arange(-half, half + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (offsets / sigma_cells) ** 2)
    return kernel / kernel.sum()


@dataclass
class ObservationOperator:
    """Maps saturation [B, T, Z, X] at ``report_days`` to the data of one observations Dataset."""

    report_days: np.ndarray
    well_weights: torch.Tensor | None  # [D, T]
    well_cells: torch.Tensor | None  # [D] flat z * nx + x
    snapshot_weights: torch.Tensor | None  # [S, T]
    kernel_z: torch.Tensor | None
    kernel_x: torch.Tensor | None
    block_cells: int

    @classmethod
    def build(cls, obs: xr.Dataset, report_days: Sequence[float]) -> ObservationOperator:
        """The operator of ``obs`` (validated) for a model reporting at ``report_days``."""
        report = np.asarray(report_days, dtype=np.float64)
        validate_observations(obs, report)
        grid = observation_grid(obs)
        well_w = cells = snap_w = kz = kx = None
        block = 1
        if "well_saturation" in obs:
            well_w = torch.from_numpy(interpolation_matrix(obs["well_time_days"].values, report))
            z, x = well_cells(obs, grid)
            cells = torch.from_numpy(z * grid.nx + x)
        if "snapshot_saturation" in obs:
            data = obs["snapshot_saturation"]
            snap_w = torch.from_numpy(interpolation_matrix(data["snapshot_time"].values, report))
            sigma = float(data.attrs["smoothing_sigma_m"])
            kz = torch.from_numpy(gaussian_kernel(sigma / grid.dz_m))
            kx = torch.from_numpy(gaussian_kernel(sigma / grid.dx_m))
            block = int(data.attrs["block_cells"])
        return cls(report, well_w, cells, snap_w, kz, kx, block)

    def apply(self, saturation: torch.Tensor) -> dict[str, torch.Tensor]:
        """Data [B, ...] per observation kind (``well_saturation`` [B, D], ``snapshot_saturation``
        [B, S, Zb, Xb]) from saturation [B, T, Z, X]; differentiable."""
        out = {}
        dtype = saturation.dtype
        if self.well_weights is not None:
            flat = saturation.flatten(2)[:, :, self.well_cells.to(saturation.device)]  # [B, T, D]
            weights = self.well_weights.to(saturation.device, dtype)  # [D, T]
            out["well_saturation"] = (flat * weights.T[None]).sum(dim=1)
        if self.snapshot_weights is not None:
            weights = self.snapshot_weights.to(saturation.device, dtype)
            fields = torch.einsum("st,btzx->bszx", weights, saturation)
            fields = self._smooth(fields)
            if self.block_cells > 1:
                b, s, z, x = fields.shape
                fields = F.avg_pool2d(
                    fields.reshape(b * s, 1, z, x),
                    self.block_cells,
                    ceil_mode=True,
                    count_include_pad=False,
                ).reshape(b, s, *_blocks(z, x, self.block_cells))
            out["snapshot_saturation"] = fields
        return out

    def _smooth(self, fields: torch.Tensor) -> torch.Tensor:
        if self.kernel_z.numel() == 1 and self.kernel_x.numel() == 1:
            return fields
        b, s, z, x = fields.shape
        flat = fields.reshape(b * s, 1, z, x)
        ones = torch.ones_like(flat[:1])
        kz = self.kernel_z.to(fields.device, fields.dtype).reshape(1, 1, -1, 1)
        kx = self.kernel_x.to(fields.device, fields.dtype).reshape(1, 1, 1, -1)

        def blur(u: torch.Tensor) -> torch.Tensor:
            u = F.conv2d(u, kz, padding=(kz.shape[2] // 2, 0))
            return F.conv2d(u, kx, padding=(0, kx.shape[3] // 2))

        return (blur(flat) / blur(ones)).reshape(b, s, z, x)

    def apply_numpy(self, saturation: np.ndarray) -> dict[str, np.ndarray]:
        """``apply`` on one simulation's saturation (T, Z, X), float64, no batch dim."""
        tensor = torch.from_numpy(np.asarray(saturation, dtype=np.float64))[None]
        with torch.no_grad():
            return {name: value[0].numpy() for name, value in self.apply(tensor).items()}


def _blocks(z: int, x: int, block: int) -> tuple[int, int]:
    return -(-z // block), -(-x // block)


def observed_data(obs: xr.Dataset) -> dict[str, tuple[np.ndarray, float]]:
    """Per observation kind in ``obs``: (observed values, noise standard deviation)."""
    out = {}
    for name in DATA_NAMES:
        if name in obs:
            noise = float(obs[name.replace("saturation", "noise_std")])
            out[name] = (obs[name].values.astype(np.float64), noise)
    return out
