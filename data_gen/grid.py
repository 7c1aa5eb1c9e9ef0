"""The Cartesian grid of a 2-D vertical section (x horizontal, z depth, arrays indexed [z, x])."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Grid:
    """A uniform 2-D vertical section.

    Cells are ``dx_m`` wide (x), ``dz_m`` tall (z, positive downward, z = 0 at the top) and
    ``dy_m`` thick out of plane, so volumes and rates are for the whole cell thickness.
    """

    nz: int = 64
    nx: int = 64
    dx_m: float = 15.0
    dz_m: float = 15.0
    dy_m: float = 15.0

    def __post_init__(self) -> None:
        for name in ("nz", "nx"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"Grid.{name} must be a positive integer, got {value!r}")
        for name in ("dx_m", "dz_m", "dy_m"):
            value = getattr(self, name)
            if not np.isfinite(value) or value <= 0:
                raise ValueError(f"Grid.{name} must be a finite positive length in m, got {value!r}")

    @property
    def shape(self) -> tuple[int, int]:
        """Array shape ``(nz, nx)``."""
        return (self.nz, self.nx)

    @property
    def cell_volume_m3(self) -> float:
        return self.dx_m * self.dy_m * self.dz_m

    @property
    def x_m(self) -> np.ndarray:
        """Cell-centre x coordinates in m."""
        return (np.arange(self.nx) + 0.5) * self.dx_m

    @property
    def z_m(self) -> np.ndarray:
        """Cell-centre depths in m below the top of the section."""
        return (np.arange(self.nz) + 0.5) * self.dz_m

    def check_cell(self, cell: tuple[int, int], name: str = "cell") -> tuple[int, int]:
        """Return ``cell`` as ``(z, x)`` ints, or raise if it is not two integers inside the grid.

        Integer-valued floats (``3.0``) are accepted, fractional ones (``3.5``) refused, as in
        ``Surrogate.predict``: a cell index is never silently truncated.
        """
        try:
            values = tuple(cell)
        except TypeError:
            values = ()
        ok = len(values) == 2 and all(
            not isinstance(c, (bool, np.bool_))
            and isinstance(c, (int, float, np.integer, np.floating))
            and np.isfinite(c)
            and float(c) == round(float(c))
            for c in values
        )
        if not ok:
            raise ValueError(f"{name} must be two integer cell indices (z, x), got {cell!r}")
        z, x = (int(c) for c in values)
        if not (0 <= z < self.nz and 0 <= x < self.nx):
            raise ValueError(
                f"{name} (z={z}, x={x}) lies outside the grid: z must be in [0, {self.nz - 1}], "
                f"x in [0, {self.nx - 1}]"
            )
        return z, x
