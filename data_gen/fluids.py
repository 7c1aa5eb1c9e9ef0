"""CO2 / brine fluid properties and Corey relative permeability."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CP_TO_PA_S = 1.0e-3


@dataclass(frozen=True)
class FluidProperties:
    """Incompressible, immiscible CO2 (non-wetting) and brine (wetting), no capillary pressure.

    Corey relative permeabilities ``k_rw = S_we**n_w`` and ``k_rg = S_ge**n_g`` on the effective
    saturations ``S_we = (S_w - S_wr) / (1 - S_wr - S_gr)`` and ``S_ge = (S_g - S_gr) / (...)``.
    """

    brine_viscosity_cp: float = 1.0
    co2_viscosity_cp: float = 0.1
    brine_density_kg_m3: float = 1000.0
    co2_density_kg_m3: float = 700.0
    residual_brine_saturation: float = 0.0
    residual_co2_saturation: float = 0.0
    brine_corey_exponent: float = 2.0
    co2_corey_exponent: float = 2.0
    gravity_m_s2: float = 9.80665

    def __post_init__(self) -> None:
        for name in (
            "brine_viscosity_cp",
            "co2_viscosity_cp",
            "brine_density_kg_m3",
            "co2_density_kg_m3",
            "brine_corey_exponent",
            "co2_corey_exponent",
        ):
            value = getattr(self, name)
            if not np.isfinite(value) or value <= 0:
                raise ValueError(f"FluidProperties.{name} must be finite and > 0, got {value!r}")
        swr, sgr = self.residual_brine_saturation, self.residual_co2_saturation
        if not (0 <= swr < 1 and 0 <= sgr < 1 and swr + sgr < 1):
            raise ValueError(
                "residual saturations must satisfy 0 <= S_wr, 0 <= S_gr and S_wr + S_gr < 1, "
                f"got S_wr={swr!r}, S_gr={sgr!r}"
            )
        if not np.isfinite(self.gravity_m_s2) or self.gravity_m_s2 < 0:
            raise ValueError(f"gravity_m_s2 must be finite and >= 0, got {self.gravity_m_s2!r}")

    @property
    def max_co2_saturation(self) -> float:
        """Largest reachable CO2 saturation, ``1 - S_wr``."""
        return 1.0 - self.residual_brine_saturation

    @property
    def density_difference_kg_m3(self) -> float:
        return self.brine_density_kg_m3 - self.co2_density_kg_m3

    def mobilities(self, s_co2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Brine and CO2 mobilities ``k_r / mu`` in 1/(Pa s) at CO2 saturation ``s_co2``."""
        span = 1.0 - self.residual_brine_saturation - self.residual_co2_saturation
        s_we = np.clip((1.0 - s_co2 - self.residual_brine_saturation) / span, 0.0, 1.0)
        s_ge = np.clip((s_co2 - self.residual_co2_saturation) / span, 0.0, 1.0)
        lam_w = s_we**self.brine_corey_exponent / (self.brine_viscosity_cp * CP_TO_PA_S)
        lam_g = s_ge**self.co2_corey_exponent / (self.co2_viscosity_cp * CP_TO_PA_S)
        return lam_w, lam_g

    def co2_fractional_flow(self, s_co2: np.ndarray) -> np.ndarray:
        """CO2 fractional flow ``lam_g / (lam_g + lam_w)`` without gravity."""
        lam_w, lam_g = self.mobilities(s_co2)
        return lam_g / (lam_g + lam_w)
