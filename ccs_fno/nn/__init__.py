"""Neural-operator core: spectral convolution in full/half/mixed precision and the FNO."""

from ccs_fno.nn.contract import (
    ContractionPlan,
    cache_info,
    contraction_path,
    min_memory_path,
    spectral_contract,
)
from ccs_fno.nn.fno import FNO
from ccs_fno.nn.hardware import SlowPrecisionWarning, cpu_has_native_bf16, warn_if_slow_half
from ccs_fno.nn.spectral import PRECISIONS, SpectralConv, reduced_dtype, spectral_conv

__all__ = [
    "FNO",
    "PRECISIONS",
    "ContractionPlan",
    "SlowPrecisionWarning",
    "SpectralConv",
    "cache_info",
    "contraction_path",
    "cpu_has_native_bf16",
    "min_memory_path",
    "reduced_dtype",
    "spectral_contract",
    "spectral_conv",
    "warn_if_slow_half",
]
