"""What training needs to shard a model spatially: the layout check and the sharded copy.

The Trainer (``ccs_fno.train``) calls ``shard_for_training`` when the ``spatial`` group has more
than one process; ``ccs-fno train --nproc P --spatial-parallel S`` calls ``check_spatial_layout``
before starting any process, so a grid that cannot be split is refused with nothing written.
"""

from __future__ import annotations

from collections.abc import Sequence

from ccs_fno.nn.fno import FNO
from ccs_fno.spatial.checkpoint import check_shardable_state
from ccs_fno.spatial.model import SpatialFNO


def check_spatial_layout(grid_shape: Sequence[int], modes: Sequence[int], spatial: int) -> None:
    """Raise a clear ValueError unless ``spatial`` ranks can share this grid and these modes.

    The grid is split in z slabs (every rank needs a row) and, after the transpose, the retained
    modes of the last dim are split (every rank needs one).
    """
    nz, m_last = int(grid_shape[0]), int(modes[-1])
    if spatial > nz:
        raise ValueError(
            f"--spatial-parallel {spatial} exceeds the {nz} grid rows along z: every process needs "
            f"at least one; use at most {nz}"
        )
    if spatial > m_last:
        raise ValueError(
            f"--spatial-parallel {spatial} exceeds the {m_last} retained modes along x: every "
            f"process holds a block of them; use at most {m_last} or more --modes"
        )


def shard_for_training(
    model: FNO, grid_shape: Sequence[int], optimizer: str, h1_weight: float, spatial: int
) -> SpatialFNO:
    """``model`` split in z over the spatial group, after checking that the run can be sharded:
    the grid and modes (``check_spatial_layout``), the optimiser's state (``check_shardable_state``)
    and the loss (the H1 term's differences would cross slab boundaries: refused)."""
    check_spatial_layout(grid_shape, model.config["modes"], spatial)
    check_shardable_state(optimizer)
    if h1_weight > 0:
        raise ValueError(
            f"h1_weight={h1_weight} with spatial parallelism: the H1 term's differences cross the "
            "slab boundaries, which is not supported; use h1_weight 0 or no --spatial-parallel"
        )
    return SpatialFNO.from_fno(model)
