"""Spatial model parallelism: the FNO with its grid split in z over the ``spatial`` process group.

Partitioning (``partition``), the distributed real FFT restricted to the retained modes
(``fft``), and the sharded Fourier layer and FNO (``model``, whose docstring says how training
must reduce losses and gradients). Every function is the serial one when the spatial group has
one process.
"""

from ccs_fno.spatial.fft import (
    COMM,
    CommCounter,
    comm_counter,
    dist_irfft_modes,
    dist_rfft_modes,
    full_spectrum_bytes,
    transpose,
    transpose_bytes,
    wire_dtype,
)
from ccs_fno.spatial.model import (
    ShardSpec,
    SpatialFNO,
    SpatialSpectralConv,
    dist_spectral_conv,
    full_grads,
    full_state_dict,
    gather_shard,
    reduce_replicated_grads,
    slab_layout,
)
from ccs_fno.spatial.partition import (
    gather_output,
    gather_sizes,
    shard_input,
    spatial_relative_l2,
    spatial_sum,
    split_sizes,
)

__all__ = [
    "COMM",
    "CommCounter",
    "ShardSpec",
    "SpatialFNO",
    "SpatialSpectralConv",
    "comm_counter",
    "dist_irfft_modes",
    "dist_rfft_modes",
    "dist_spectral_conv",
    "full_grads",
    "full_spectrum_bytes",
    "full_state_dict",
    "gather_output",
    "gather_shard",
    "gather_sizes",
    "reduce_replicated_grads",
    "shard_input",
    "slab_layout",
    "spatial_relative_l2",
    "spatial_sum",
    "split_sizes",
    "transpose",
    "transpose_bytes",
    "wire_dtype",
]
