"""How the apps' image panels map values to colours (``ColourScale``) and the scales they use:
CO2 saturation, permeability (log, mD) and differences (symmetric around 0)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ColourScale:
    """How an image panel maps values to colours.

    ``label``: the quantity and its unit, shown on the colour bar. ``low``/``high``: a fixed
    range; ``None`` at either end: that end follows each field's data. ``log``: a log10 scale
    with plain-number tick labels (e.g. permeability in mD). ``symmetric``: a range ``±max|v|``
    around 0 from each field's data (differences). ``sticky``: a range from the data is kept while
    the next fields stay inside it and fill at least 60 % of it (in an app, moving a control then
    changes the colours of what changed, not the colour bar each time).
    """

    label: str
    palette: str = "Viridis256"
    low: float | None = None
    high: float | None = None
    log: bool = False
    symmetric: bool = False
    sticky: bool = False

    def __post_init__(self) -> None:
        if self.log and self.symmetric:
            raise ValueError(f"a colour scale is log or symmetric, not both: {self!r}")
        if self.low is not None and self.high is not None and not self.low < self.high:
            raise ValueError(
                f"colour scale {self.label!r}: low must be < high, got ({self.low}, {self.high})"
            )
        if self.log and self.low is not None and self.low <= 0:
            raise ValueError(f"a log colour scale needs low > 0, got {self.low}")

    def colours(self) -> Sequence[str]:
        """The colours of ``palette`` (a name in ``bokeh.palettes``), low to high."""
        import bokeh.palettes as palettes

        if not hasattr(palettes, self.palette):
            raise ValueError(
                f"unknown Bokeh palette {self.palette!r}; use a name from bokeh.palettes, e.g. 'Viridis256'"
            )
        return getattr(palettes, self.palette)  # Bokeh's RdBu runs blue (low) to red (high)

    def range_of(self, field: np.ndarray) -> tuple[float, float]:
        """The (low, high) colour range for ``field``."""
        finite = field[np.isfinite(field)]
        if self.log:
            finite = finite[finite > 0]
        if self.symmetric:
            bound = float(np.abs(finite).max()) if finite.size else 1.0
            return (-bound, bound) if bound > 0 else (-1.0, 1.0)
        low = self.low if self.low is not None else (float(finite.min()) if finite.size else 0.0)
        high = self.high if self.high is not None else (float(finite.max()) if finite.size else 1.0)
        if not high > low:  # a uniform field: a small range around its value
            pad = abs(low) * 0.01 or 1.0
            low, high = (low / 1.5, high * 1.5) if self.log else (low - pad, high + pad)
        return low, high


def saturation_scale(max_saturation: float = 1.0) -> ColourScale:
    """CO2 saturation (fraction of pore volume) on a fixed [0, max_saturation] scale."""
    return ColourScale("CO2 saturation (-)", "Viridis256", 0.0, float(max_saturation))


def permeability_scale(sticky: bool = False) -> ColourScale:
    """Permeability on a log scale, tick labels in mD."""
    return ColourScale("permeability (mD)", "Cividis256", log=True, sticky=sticky)


def difference_scale(label: str = "saturation difference (-)", sticky: bool = False) -> ColourScale:
    """A difference on a symmetric blue-white-red scale around 0."""
    return ColourScale(label, "RdBu11", symmetric=True, sticky=sticky)
