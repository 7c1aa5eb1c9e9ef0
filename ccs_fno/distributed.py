"""The process context: rank, world size, device and named process groups, serial or torchrun.

One code path serves one process and N: ``init_context()`` reads torchrun's environment
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``) and, when the world
has more than one process, initialises ``torch.distributed`` (NCCL on CUDA, gloo on CPU) with a
timeout, so a rank that stops answering fails the job instead of hanging it. Without torchrun
(or with ``WORLD_SIZE=1``) nothing is initialised and the context reports size 1 / rank 0; every
helper (``all_reduce_sum``, ``barrier``, ...) is then a cheap no-op, so callers never branch on
"distributed or not".

Named groups (after makani's ``utils/comm.py``): the world is a process grid
``data x spatial``; ``group("data")`` holds the ranks that share a spatial shard and split the
batch (gradients are averaged over it), ``group("spatial")`` those that split one sample's grid
(the spatial model-parallel layers use it). A group of one process is represented by ``None``
and its size is 1, so a layer written for a group works unchanged in a serial run.

The context of the running process is module state, set once by ``init_context`` and read with
``get_context()``; layers that need a group (the synchronised batch norm) read it at forward
time, so models are built, saved and loaded the same way in every world.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist

GROUP_NAMES = ("data", "spatial")
DEFAULT_TIMEOUT_S = 300.0


@dataclass
class ProcessContext:
    """Where this process stands in the job; see the module docstring.

    ``rank``/``world_size`` are global; ``local_rank`` is the rank on this node (torchrun's
    ``LOCAL_RANK``), which picks the CUDA device. ``spatial_size`` ranks share one sample's grid;
    ``world_size / spatial_size`` data-parallel replicas split the batch.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    spatial_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    groups: dict[str, Any] = field(default_factory=dict)
    ranks: dict[str, tuple[int, ...]] = field(default_factory=dict)

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on the one process that writes files and shows progress (global rank 0)."""
        return self.rank == 0

    def group(self, name: str) -> Any:
        """The torch process group ``name`` (``GROUP_NAMES``); None when it has one process."""
        if name not in GROUP_NAMES:
            raise ValueError(f"process group must be one of {GROUP_NAMES}, got {name!r}")
        return self.groups.get(name)

    def size(self, name: str) -> int:
        """Number of processes in group ``name`` (1 in a serial run)."""
        return len(self.ranks.get(name, (self.rank,)))

    def group_rank(self, name: str) -> int:
        """This process's rank within group ``name`` (0 in a serial run)."""
        return self.ranks.get(name, (self.rank,)).index(self.rank)

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def all_reduce_sum(self, tensor: torch.Tensor, group: str | None = "data") -> torch.Tensor:
        """Sum ``tensor`` over group ``group`` (None: every process) in place, and return it."""
        if group is None:
            if self.distributed:
                dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        elif self.size(group) > 1:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM, group=self.group(group))
        return tensor

    def broadcast_object(self, obj: Any, src: int = 0) -> Any:
        """``obj`` of rank ``src`` on every rank (pickled; for small control data only)."""
        if not self.distributed:
            return obj
        box = [obj if self.rank == src else None]
        dist.broadcast_object_list(box, src=src)
        return box[0]


_CONTEXT = ProcessContext()


def get_context() -> ProcessContext:
    """The context of this process: serial (size 1, rank 0) until ``init_context`` says otherwise."""
    return _CONTEXT


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} is not an integer") from None


def process_grid(world_size: int, spatial_size: int) -> dict[str, list[tuple[int, ...]]]:
    """The ranks of every data and spatial group of a ``data x spatial`` grid.

    Rank r sits at (data index r // spatial_size, spatial index r % spatial_size): the ranks of
    one sample's shards are consecutive (on one node where possible, since spatial parallelism
    communicates every layer), and the data groups stride across them.
    """
    if isinstance(spatial_size, bool) or not isinstance(spatial_size, int) or spatial_size < 1:
        raise ValueError(f"spatial parallel size must be an int >= 1, got {spatial_size!r}")
    if world_size % spatial_size:
        raise ValueError(
            f"the world size {world_size} is not divisible by the spatial parallel size "
            f"{spatial_size}; use a number of processes that is a multiple of it"
        )
    data_size = world_size // spatial_size
    spatial = [tuple(range(d * spatial_size, (d + 1) * spatial_size)) for d in range(data_size)]
    data = [tuple(range(s, world_size, spatial_size)) for s in range(spatial_size)]
    return {"data": data, "spatial": spatial}


def init_context(
    device: str | torch.device = "auto",
    spatial_size: int = 1,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> ProcessContext:
    """Set up this process's context from torchrun's environment (serial without it).

    ``device`` "auto" is ``cuda:LOCAL_RANK`` when CUDA is available, else CPU; the backend is
    NCCL for CUDA and gloo for CPU. ``timeout_s`` bounds every collective: a rank that died or
    hangs makes the others fail after it instead of waiting forever. Calling it again returns the
    existing context (one initialisation per process).
    """
    global _CONTEXT
    if _CONTEXT.distributed or dist.is_initialized():
        return _CONTEXT
    world_size = _env_int("WORLD_SIZE", 1)
    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"RANK={rank} and WORLD_SIZE={world_size} do not describe a process of a job")
    grid = process_grid(world_size, spatial_size)
    if device == "auto":
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    context = ProcessContext(rank, world_size, local_rank, spatial_size, device)
    if world_size > 1:
        timeout = datetime.timedelta(seconds=timeout_s)
        dist.init_process_group(
            backend="nccl" if device.type == "cuda" else "gloo",
            store=_job_store(rank, world_size, timeout),
            rank=rank,
            world_size=world_size,
            timeout=timeout,
            device_id=device if device.type == "cuda" else None,
        )
        for name, members in grid.items():
            for ranks in members:  # every rank creates every group, in the same order
                handle = dist.new_group(list(ranks)) if len(ranks) > 1 else None
                if rank in ranks:
                    context.groups[name], context.ranks[name] = handle, ranks
    _CONTEXT = context
    return context


def _job_store(rank: int, world_size: int, timeout: datetime.timedelta) -> dist.Store:
    """The rendezvous key-value store of this attempt of the job.

    torchrun keeps one store across the restarts of a job (``--max-restarts``); the process-group
    keys of a previous attempt (e.g. a killed rank's gloo address) would still be there and a
    new rank could connect to a dead peer. Keys are therefore prefixed by the restart count.
    """
    host = os.environ.get("MASTER_ADDR", "127.0.0.1")
    port = _env_int("MASTER_PORT", 29500)
    agent_store = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"  # torchrun hosts it
    store = dist.TCPStore(host, port, world_size, is_master=rank == 0 and not agent_store, timeout=timeout)
    return dist.PrefixStore(f"ccs-fno/attempt-{_env_int('TORCHELASTIC_RESTART_COUNT', 0)}", store)


def shutdown_context() -> None:
    """Leave the job cleanly (destroys the process group) and return to the serial context."""
    global _CONTEXT
    if dist.is_initialized():
        dist.destroy_process_group()
    _CONTEXT = ProcessContext()


def shard_range(n: int, parts: int, index: int) -> tuple[int, int]:
    """[start, stop) of part ``index`` of ``n`` items split into ``parts`` near-equal parts."""
    base, extra = divmod(n, parts)
    start = index * base + min(index, extra)
    return start, start + base + (1 if index < extra else 0)
