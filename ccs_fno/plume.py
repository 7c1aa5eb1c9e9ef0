"""Plume metrics of CO2 saturation fields ``(..., z, x)``: area, horizontal extent, relative error.

A cell belongs to the plume when its CO2 saturation exceeds ``threshold`` (default
``PLUME_THRESHOLD``) and, given the injector cell, when it is connected to the injector through
such cells (edge neighbours): a surrogate's stray specks far from the well are not plume. Areas
are in the section plane (m^2, cell width times cell height).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from data_gen.grid import Grid

# CO2 saturation above which a cell counts as plume: above a surrogate's background noise (a few
# 0.01 away from the plume) and well below the saturation behind the displacement front.
PLUME_THRESHOLD = 0.05
_IN_PLANE = np.array(
    [np.zeros((3, 3)), ndimage.generate_binary_structure(2, 1), np.zeros((3, 3))], dtype=bool
)


def plume_mask(
    saturation: np.ndarray,
    grid: Grid,
    injector_zx: tuple[int, int] | None = None,
    threshold: float = PLUME_THRESHOLD,
) -> np.ndarray:
    """Boolean mask of the plume cells, the shape of ``saturation``; with ``injector_zx`` only
    the cells connected to the injector cell (none while the injector cell is below threshold)."""
    s = np.asarray(saturation)
    if s.ndim < 2 or s.shape[-2:] != grid.shape:
        raise ValueError(f"saturation must end in the grid's (z, x) = {grid.shape} dims, got shape {s.shape}")
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"threshold must be a saturation in [0, 1), got {threshold!r}")
    mask = s > threshold
    if injector_zx is None:
        return mask
    z, x = grid.check_cell(injector_zx, "injector_zx")
    fields = mask.reshape(-1, *grid.shape)
    # all fields labelled at once: edge neighbours within a field, none across fields
    labels, _ = ndimage.label(fields, structure=_IN_PLANE)
    injector = labels[:, z, x][:, None, None]
    connected = (labels == injector) & (injector > 0)
    return connected.reshape(mask.shape)


def plume_area_m2(
    saturation: np.ndarray,
    grid: Grid,
    injector_zx: tuple[int, int] | None = None,
    threshold: float = PLUME_THRESHOLD,
) -> np.ndarray:
    """Area (m^2) of the plume (see ``plume_mask``); shape ``saturation.shape[:-2]``."""
    mask = plume_mask(saturation, grid, injector_zx, threshold)
    return mask.sum(axis=(-2, -1)) * (grid.dx_m * grid.dz_m)


def plume_extent_m(
    saturation: np.ndarray,
    grid: Grid,
    injector_zx: tuple[int, int] | None = None,
    threshold: float = PLUME_THRESHOLD,
) -> np.ndarray:
    """Horizontal extent (m) of the plume (see ``plume_mask``): from the left edge of its
    leftmost column to the right edge of its rightmost one, 0 without plume; shape
    ``saturation.shape[:-2]``."""
    columns = plume_mask(saturation, grid, injector_zx, threshold).any(axis=-2)  # (..., x)
    any_plume = columns.any(axis=-1)
    first = np.argmax(columns, axis=-1)
    last = grid.nx - 1 - np.argmax(columns[..., ::-1], axis=-1)
    return np.where(any_plume, (last - first + 1) * grid.dx_m, 0.0)


def relative_error(predicted: np.ndarray, reference: np.ndarray) -> float:
    """``||predicted - reference||_2 / ||reference||_2``; NaN when the reference is all zero."""
    p, r = np.asarray(predicted, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if p.shape != r.shape:
        raise ValueError(f"predicted {p.shape} and reference {r.shape} shapes differ")
    norm = np.linalg.norm(r)
    return float(np.linalg.norm(p - r) / norm) if norm > 0 else float("nan")
