"""Neural-operator core: spectral convolution in full/half/mixed precision and the FNO."""

from ccs_fno.nn.contract import (
    ContractionPlan,
    cache_info,
    contraction_path,
    min_memory_path,
    spectral_contract,
)
from ccs_fno.nn.fno import FNO
from ccs_fno.nn.spectral import PRECISIONS, SpectralConv, reduced_dtype, spectral_conv

__all__ = [
    "FNO",
    "PRECISIONS",
    "ContractionPlan",
    "SpectralConv",
    "cache_info",
    "contraction_path",
    "min_memory_path",
    "reduced_dtype",
    "spectral_contract",
    "spectral_conv",
]
