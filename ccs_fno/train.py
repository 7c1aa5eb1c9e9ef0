"""Training the FNO surrogate on 1 or N processes: AMP steps, precision phases, checkpoints.

``Trainer(model, data, run_dir, config)`` receives what it trains (the model, the
``TrainingData`` and optionally an optimiser factory, a process context and hooks);
``Trainer.start(store, run_dir, config, model_config)`` builds those for a new run and
``Trainer.resume(run_dir)`` rebuilds them from the checkpoint and goes through the same
constructor. The run directory's files are ``ccs_fno.run_dir``'s business.

One code path for one process and N (``ccs_fno.distributed``): with P data-parallel processes
(torchrun) the model is wrapped in ``DistributedDataParallel`` over the ``data`` group, each rank
reads its own ``batch_size / P`` samples a step (``ccs_fno.training_data``), gradients are
averaged over the global batch, and the logged loss is the global batch mean (one all-reduce a
step, shared with the skip decision). Validation/test metrics count every sample exactly once.
Rank 0 alone writes files and shows progress. Checkpoints hold the unwrapped model, so they do
not depend on P; a run resumes on any number of processes that divides its global batch.

Spatial model parallelism (``--spatial-parallel S``; process grid data x spatial): the model is
a ``ccs_fno.spatial.SpatialFNO`` whose ranks each hold a z slab of every sample and a block of
the Fourier weights; the relative L2 sums its norms over the slabs, replicated weights' gradients
are summed over the spatial group, DDP averages over the data group only, and checkpoints gather
the weights and Adam moments into the serial layout (any process grid resumes them).

Mixed precision: a phase of the precision schedule other than "full" runs the forward pass under
``torch.autocast`` in the device's half dtype (float16 on CUDA, bfloat16 on CPU) and sets the
model's spectral precision. ``torch.amp.GradScaler`` is enabled on CUDA when the schedule uses
float16: small float16 gradients underflow without loss scaling. Its initial scale is 2^10, not
torch's 2^16: the relative-L2 loss is O(1), so 2^16 overflows float16 gradients and the first
several steps would be skipped while the scaler backs off. On CPU the half dtype is bfloat16,
whose exponent range equals float32's, so scaling would change nothing; the scaler is constructed
disabled there (a pass-through) so the step code is the same on every device.

A step whose loss or gradients (after unscaling) hold inf or NaN on ANY rank is skipped on every
rank: the optimiser does not step (no update, no weight decay, no moment update) and
``skipped_steps`` counts it. Resume restores the model, optimiser, scheduler, scaler and RNGs;
shuffling depends on (seed, epoch) only, so a resumed run continues with the same batches and
reproduces the loss curve of an uninterrupted one (bit for bit on CPU with ``deterministic``).

Hooks: any object with some of ``on_train_start(trainer)``, ``on_epoch_start(trainer, epoch)``,
``on_step_end(trainer, step, loss)``, ``on_epoch_end(trainer, record)``, ``on_train_end(trainer)``.
"""

from __future__ import annotations

import functools
import os
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ccs_fno.checkpoint import build_model, load_weights
from ccs_fno.data import INPUT_CHANNELS, Normalisers
from ccs_fno.distributed import ProcessContext, get_context, shard_range
from ccs_fno.domain import TrainingDomain
from ccs_fno.metrics import relative_h1_seminorm, relative_l2
from ccs_fno.nn import FNO, reduced_dtype, warn_if_slow_half
from ccs_fno.nn.spectral import validate_grid
from ccs_fno.optim import build_optimizer
from ccs_fno.run_dir import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    FORMAT_VERSION,
    METRICS_FILE,
    MODEL_FILE,
    MODEL_FORMAT,
    MODEL_KEYS,
    RUN_FILES,
    RunDir,
    fingerprint_differences,
    new_run_id,
)
from ccs_fno.spatial.partition import spatial_relative_l2
from ccs_fno.spatial.training import shard_for_training
from ccs_fno.train_config import ModelConfig, TrainConfig, precision_at, resolve_device
from ccs_fno.training_data import GlobalBatchSampler, TrainingData, check_data_parallel, shard

__all__ = [
    "CHECKPOINT_FILE",
    "CONFIG_FILE",
    "FORMAT_VERSION",
    "METRICS_FILE",
    "MODEL_FILE",
    "MODEL_FORMAT",
    "MODEL_KEYS",
    "RUN_FILES",
    "ModelConfig",
    "TrainConfig",
    "Trainer",
    "relative_h1_seminorm",
    "relative_l2",
]

INITIAL_LOSS_SCALE = 2.0**10  # see the module docstring
HOOK_EVENTS = ("on_train_start", "on_epoch_start", "on_step_end", "on_epoch_end", "on_train_end")
OptimizerFactory = Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer]


def _json_number(value: float) -> float | None:
    return value if np.isfinite(value) else None


class Trainer:
    """Trains ``model`` on ``data`` into ``run_dir``; see the module docstring.

    ``optimizer``: a factory ``params -> Optimizer`` (default: ``config.optimizer`` from
    ``ccs_fno.optim``); ``context``: the process context (default: this process's);
    ``state``: a checkpoint to continue from (what ``Trainer.resume`` passes). A new run refuses
    a directory that holds a checkpoint.
    """

    def __init__(
        self,
        model: FNO,
        data: TrainingData,
        run_dir: str | Path,
        config: TrainConfig | None = None,
        *,
        optimizer: OptimizerFactory | None = None,
        context: ProcessContext | None = None,
        hooks: Sequence[Any] = (),
        state: Mapping[str, Any] | None = None,
    ) -> None:
        self.config = config = TrainConfig() if config is None else config
        self.context = context = get_context() if context is None else context
        self.run = RunDir(run_dir)
        self.run_dir = self.run.path
        self.data, self.hooks = data, tuple(hooks)
        if state is None:
            self.run.refuse_existing()
        times = data.store.times_days.size
        if model.in_channels != len(INPUT_CHANNELS) or model.config["out_channels"] != times:
            raise ValueError(
                f"model maps {model.in_channels} -> {model.config['out_channels']} channels; the "
                f"store needs {len(INPUT_CHANNELS)} -> {times} (report times)"
            )
        validate_grid(model.config["modes"], data.store.grid.shape)
        self.data_parallel = context.size("data")
        check_data_parallel(data.split["train"].size, config.batch_size, self.data_parallel)
        self.device = context.device if context.distributed else resolve_device(config.device)
        if config.deterministic:
            if self.device.type == "cuda":  # cuBLAS is deterministic only with this workspace
                os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
        if context.is_main:  # half/mixed on a CPU without native bfloat16 is a trap: say so once
            for precision in {p for p, _ in config.phases}:
                warn_if_slow_half(precision, self.device)
        self.dtype = getattr(torch, config.dtype)
        self.model = model.to(self.device, self.dtype)
        self.spatial = context.size("spatial")
        grid = data.store.grid.shape
        self.z_range = shard_range(grid[0], self.spatial, context.group_rank("spatial"))
        if self.spatial > 1:
            self.model = shard_for_training(
                self.model, grid, config.optimizer, config.h1_weight, self.spatial
            )
        self.network: torch.nn.Module = self.model  # what the forward pass calls
        self.comm_bytes = 0  # gradient bytes this rank sent into all-reduces (DDP only)
        if self.data_parallel > 1:
            self.network = DistributedDataParallel(
                self.model,
                device_ids=[self.device] if self.device.type == "cuda" else None,
                process_group=context.group("data"),
                forward_sync_buffers=False,  # batch-norm statistics are already global
            )
            self._register_comm_hook()
        self._build_loaders()
        factory = optimizer or (
            lambda params: build_optimizer(config.optimizer, params, config.lr, config.weight_decay)
        )
        self.optimizer = factory(self.model.parameters())
        if config.scheduler == "cosine":
            self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, config.epochs)
        else:
            self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, config.step_size, config.gamma)
        uses_float16 = self.device.type == "cuda" and any(p != "full" for p, _ in config.phases)
        self.scaler = torch.amp.GradScaler(
            self.device.type, init_scale=INITIAL_LOSS_SCALE, enabled=uses_float16
        )
        self.precision = model.precision
        self.epoch, self.history, self.skipped_steps = 0, [], 0
        if state is None:
            self._start()
        else:
            self._restore(state)

    # -- construction ----------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        store: str | Path | Any,
        run_dir: str | Path,
        config: TrainConfig | None = None,
        model_config: ModelConfig | None = None,
        **options: Any,
    ) -> Trainer:
        """A new run: split and normalise ``store``, build the model, then ``Trainer(...)``.

        ``options`` are the constructor's keyword options (optimizer, context, hooks).
        """
        config = TrainConfig() if config is None else config
        model_config = ModelConfig() if model_config is None else model_config
        RunDir(run_dir).refuse_existing()  # before reading the store: fail fast
        data = TrainingData.prepare(
            store, config.val_fraction, config.test_fraction, config.split_seed, config.calibration_fraction
        )
        _seed_everything(config.seed)
        model = model_config.build(len(INPUT_CHANNELS), data.store.times_days.size, config.phases[0][0])
        return cls(model, data, run_dir, config, **options)

    @classmethod
    def resume(cls, run_dir: str | Path, store: str | Path | None = None, **options: Any) -> Trainer:
        """Continue the run in ``run_dir`` from its checkpoint, through the constructor.

        ``store`` defaults to the one the run recorded; a store whose data differ from the
        recorded fingerprint is refused. ``options``: the constructor's keyword options.
        """
        run = RunDir(run_dir)
        path = run.file(CHECKPOINT_FILE)
        state = run.load_checkpoint()
        try:
            config = TrainConfig.from_dict(state["train_config"])
            normalisers = Normalisers.from_dict(state["normalisers"])
        except (TypeError, ValueError) as err:
            raise ValueError(f"{path}: {err}") from None
        model = build_model(state["model_config"], path)
        load_weights(model, state["model"], path, "model weights")
        data = TrainingData.restore(state["store"] if store is None else store, state["split"], normalisers)
        return cls(model, data, run_dir, config, state=state, **options)

    def _start(self) -> None:
        context = self.context
        self.run_id, self.fingerprint = None, None
        if context.is_main:
            self.run_id, self.fingerprint = new_run_id(), self.data.fingerprint()
        self.run_id, self.fingerprint = context.broadcast_object((self.run_id, self.fingerprint))
        if context.is_main:
            self.run.clean_litter()
            self.run.start(self.run_config())
        context.barrier()  # the run directory exists before anyone goes on

    def _restore(self, state: Mapping[str, Any]) -> None:
        path = self.run.file(CHECKPOINT_FILE)
        self.run_id, self.fingerprint = state.get("run_id"), state.get("fingerprint")
        problem = None
        if self.context.is_main:
            self.run.clean_litter()
            if self.fingerprint is not None:
                differences = fingerprint_differences(self.fingerprint, self.data.fingerprint())
                if differences:
                    problem = (
                        f"{self.data.store.path} is not the store the run in {self.run_dir} was "
                        f"trained on: {'; '.join(differences)}. Restore the original store at "
                        "that path, or start a new run on this one"
                    )
        problem = self.context.broadcast_object(problem)
        if problem:
            raise ValueError(problem)
        if state["train_config"].get("optimizer", "adamw") != self.config.optimizer:
            raise ValueError(
                f"{path} was written with optimizer {state['train_config'].get('optimizer')!r}, "
                f"not {self.config.optimizer!r}"
            )
        load_weights(self.model, state["model"], path, "model weights")  # shards take their block
        optimizer = state["optimizer"]
        if self.spatial > 1:
            from ccs_fno.spatial.checkpoint import shard_optimizer_state

            optimizer = shard_optimizer_state(optimizer, self.model)
        load_weights(self.optimizer, optimizer, path, "optimizer state")
        load_weights(self.scheduler, state["scheduler"], path, "scheduler state")
        load_weights(self.scaler, state["scaler"], path, "GradScaler state")
        self.epoch, self.history = int(state["epoch"]), list(state["history"])
        self.skipped_steps = int(state["skipped_steps"])
        if self.context.is_main:
            self.run.write_metrics(self.history)  # drop lines of epochs never checkpointed
        self._restore_rng(state["rng"])  # last: nothing may draw after this

    def _build_loaders(self) -> None:
        config, context = self.config, self.context
        per_rank = config.batch_size // self.data_parallel
        options = {"num_workers": config.num_workers, "pin_memory": self.device.type == "cuda"}
        slab = self.z_range if self.spatial > 1 else None  # each rank reads its rows only
        train = self.data.dataset("train", z_range=slab)
        self.sampler = GlobalBatchSampler(
            train, config.batch_size, self.data_parallel, context.group_rank("data"), config.seed
        )
        self.train_loader = DataLoader(train, batch_size=per_rank, sampler=self.sampler, **options)
        self.eval_loaders = {}
        for name in ("val", "test"):
            mine = shard(self.data.split[name], self.data_parallel, context.group_rank("data"))
            self.eval_loaders[name] = DataLoader(
                self.data.dataset(name, mine, z_range=slab), batch_size=per_rank, **options
            )
        self.val_loader = self.eval_loaders["val"]

    def _register_comm_hook(self) -> None:
        from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

        compression = self.config.grad_compression
        inner = {
            "none": default_hooks.allreduce_hook,
            "fp16": default_hooks.fp16_compress_hook,
            "bf16": default_hooks.bf16_compress_hook,
        }[compression]

        # no annotations: DDP checks them against dist.GradBucket, which strings would fail
        def counting_hook(group, bucket):  # noqa: ANN001, ANN202
            buffer = bucket.buffer()  # the hooks send it as is, or cast to a 2-byte dtype
            self.comm_bytes += buffer.numel() * (buffer.element_size() if compression == "none" else 2)
            return inner(group, bucket)

        self.network.register_comm_hook(self.context.group("data"), counting_hook)

    # -- the files ------------------------------------------------------------------------------

    @property
    def store(self) -> Any:
        return self.data.store

    @functools.cached_property
    def domain(self) -> TrainingDomain:
        """The training distribution (the store's scenario space), stored in ``model.pt``."""
        return TrainingDomain.from_store(self.store.path)

    @property
    def split(self) -> dict[str, np.ndarray]:
        return self.data.split

    @property
    def normalisers(self) -> Normalisers:
        return self.data.normalisers

    def run_config(self) -> dict[str, Any]:
        """The JSON description of the run (``config.json``)."""
        return {
            "run_id": self.run_id,
            "train_config": self.config.to_dict(),
            "model_config": self.model.config,
            "store": self.store.path,
            "fingerprint": self.fingerprint,
            "grid": asdict(self.store.grid),
            "times_days": self.store.times_days.tolist(),
            "max_saturation": self.store.max_saturation,
            "input_channels": list(INPUT_CHANNELS),
            "normalisers": self.normalisers.to_dict(),
            "split": self.data.split_lists(),
        }

    def _weights(self) -> dict[str, torch.Tensor]:
        """The serial model's state dict (gathered from the shards: collective when sharded)."""
        return self.model.full_state_dict() if self.spatial > 1 else self.model.state_dict()

    def model_state(self, weights: Mapping[str, torch.Tensor] | None = None) -> dict[str, Any]:
        """The contents of ``model.pt``: what a Surrogate needs, nothing for training."""
        return {
            "run_id": self.run_id,
            "model_config": dict(self.model.config),
            "state_dict": self._weights() if weights is None else weights,
            "normalisers": self.normalisers.to_dict(),
            "grid": asdict(self.store.grid),
            "times_days": self.store.times_days.tolist(),
            "max_saturation": self.store.max_saturation,
            "input_channels": list(INPUT_CHANNELS),
            "split": self.data.split_lists(),
            "store": self.store.path,
            "fingerprint": self.fingerprint,
            "domain": self.domain.to_dict(),
            "epoch": self.epoch,
        }

    def save(self) -> None:
        """Write ``checkpoint.pt`` then ``model.pt`` (rank 0; the others only help gather shards).

        Both files hold the serial model and optimiser state, whatever the process grid.
        """
        weights, optimizer = self._weights(), self.optimizer.state_dict()
        if self.spatial > 1:
            from ccs_fno.spatial.checkpoint import full_optimizer_state

            optimizer = full_optimizer_state(self.optimizer, self.model)
        if not self.context.is_main:
            return
        state = {
            "run_id": self.run_id,
            "fingerprint": self.fingerprint,
            "epoch": self.epoch,
            "history": self.history,
            "skipped_steps": self.skipped_steps,
            "store": self.store.path,
            "train_config": self.config.to_dict(),
            "model_config": dict(self.model.config),
            "normalisers": self.normalisers.to_dict(),
            "split": self.data.split_lists(),
            "model": weights,
            "optimizer": optimizer,
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": self._rng_state(),
            "world_size": self.context.world_size,
        }
        self.run.save(state, self.model_state(weights))

    # -- training -------------------------------------------------------------------------------

    def set_precision(self, precision: str) -> None:
        self.model.set_precision(precision)
        self.precision = precision

    def _autocast(self) -> torch.autocast:
        return torch.autocast(
            self.device.type, dtype=reduced_dtype(self.device), enabled=self.precision != "full"
        )

    def _hook(self, event: str, *args: Any) -> None:
        for hook in self.hooks:
            method = getattr(hook, event, None)
            if method is not None:
                method(self, *args)

    def _relative_l2(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-sample relative L2 of whole samples (norms summed over the spatial group)."""
        return relative_l2(pred, target) if self.spatial == 1 else spatial_relative_l2(pred, target)

    def loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean relative L2 (+ ``h1_weight`` x relative H1 seminorm) over the (local) batch."""
        dtype = torch.float64 if self.dtype == torch.float64 else torch.float32
        pred, target = pred.to(dtype), target.to(dtype)
        loss = self._relative_l2(pred, target).mean()
        if self.config.h1_weight > 0:
            loss = loss + self.config.h1_weight * relative_h1_seminorm(pred, target).mean()
        return loss

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> float | None:
        """One optimiser step on this rank's part (x, y) of a global batch.

        Returns the global batch's mean loss, or None (and counted) when the step was skipped
        because the loss or a gradient was not finite on some rank.
        """
        x = x.to(self.device, self.dtype, non_blocking=True)  # this rank's slab when sharded
        y = y.to(self.device, self.dtype, non_blocking=True)
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            pred = self.network(x)
        loss = self.loss(pred, y)
        self.scaler.scale(loss).backward()  # DDP averages the gradients over the data group
        if self.spatial > 1:  # replicated weights saw one slab each: sum over the slabs
            self.model.reduce_replicated_grads()
        self.scaler.unscale_(self.optimizer)  # true gradients, checked below
        # An overflowed loss can backpropagate finite (zero) gradients: check both. One
        # all-reduce over every process carries the verdict and the loss, so all skip alike
        # (the loss is the same on the ranks of a spatial group: divide by the world size).
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        bad = ~torch.stack([torch.isfinite(loss), *(torch.isfinite(g).all() for g in grads)]).all()
        summary = torch.stack([bad.to(torch.float64), loss.detach().to(torch.float64)])
        bad_ranks, loss_sum = self.context.all_reduce_sum(summary, None).tolist()
        finite = bad_ranks == 0
        if finite:
            self.scaler.step(self.optimizer)
        else:
            self.skipped_steps += 1
        self.scaler.update()  # lowers the scale after an overflow (no-op when disabled)
        return loss_sum / self.context.world_size if finite else None

    @torch.no_grad()
    def evaluate(self, split: str = "val") -> float:
        """Mean per-sample relative L2 of the raw model output over split ``split``.

        Each rank predicts its own block of the split; sums and counts are all-reduced, so every
        sample counts exactly once. NaN for an empty split.
        """
        self.model.eval()
        total = torch.zeros(2, dtype=torch.float64, device=self.device)
        for x, y in self.eval_loaders[split]:
            with self._autocast():
                pred = self.model(x.to(self.device, self.dtype))
            errors = self._relative_l2(pred.to(torch.float64), y.to(self.device, torch.float64))
            total += torch.stack([errors.sum(), torch.tensor(float(errors.numel()), device=self.device)])
        self.model.train()
        error_sum, count = self.context.all_reduce_sum(total, "data").tolist()
        return error_sum / count if count else float("nan")

    def validate(self) -> float:
        return self.evaluate("val")

    def fit(self, progress: bool = True) -> list[dict[str, Any]]:
        """Train from the current epoch to ``config.epochs``; checkpoint after every epoch."""
        epochs, main = self.config.epochs, self.context.is_main
        self.model.train()
        self._hook("on_train_start")
        for epoch in range(self.epoch, epochs):
            start = time.perf_counter()
            self._hook("on_epoch_start", epoch)
            self.set_precision(precision_at(self.config.phases, epoch, epochs))
            self.sampler.set_epoch(epoch)
            lr = self.optimizer.param_groups[0]["lr"]
            skipped_before, comm_before, losses = self.skipped_steps, self.comm_bytes, []
            bar = tqdm(
                self.train_loader,
                desc=f"epoch {epoch + 1}/{epochs}",
                unit="batch",
                disable=not (progress and main),
                leave=False,
            )
            for step, (x, y) in enumerate(bar):
                loss = self.train_step(x, y)
                if loss is not None:
                    losses.append(loss)
                    bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
                self._hook("on_step_end", step, loss)
            train_time = time.perf_counter() - start
            val = self.evaluate("val")
            self.scheduler.step()
            record = {
                "epoch": epoch + 1,
                "train_loss": _json_number(float(np.mean(losses))) if losses else None,
                "val_rel_l2": _json_number(val),
                "lr": lr,
                "precision": self.precision,
                "skipped_steps": self.skipped_steps - skipped_before,
                "epoch_time_s": time.perf_counter() - start,
                "samples_per_s": len(self.train_loader) * self.config.batch_size / train_time,
                "processes": self.context.world_size,
            }
            if self.spatial > 1:
                record["spatial_parallel"] = self.spatial
            if self.data_parallel > 1:
                record["grad_bytes_per_rank"] = self.comm_bytes - comm_before
            self.history.append(record)
            self.epoch = epoch + 1
            self.save()
            if main:
                self.run.append_metrics(record)  # after the checkpoint: see ccs_fno.run_dir
                if progress:
                    tqdm.write(
                        f"epoch {record['epoch']}/{epochs}: train {record['train_loss']}, "
                        f"val rel-L2 {record['val_rel_l2']}, {record['epoch_time_s']:.2f} s"
                    )
            self._hook("on_epoch_end", record)
        self._hook("on_train_end")
        return self.history

    # -- random state ---------------------------------------------------------------------------

    def _rng_state(self) -> dict[str, Any]:
        # numpy's legacy global state: unused here, but code we do not own may draw from it
        name, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002
        return {
            "python": random.getstate(),
            "numpy": (name, keys.tolist(), int(pos), int(has_gauss), float(cached)),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }

    def _restore_rng(self, state: Mapping[str, Any]) -> None:
        random.setstate(state["python"])
        name, keys, pos, has_gauss, cached = state["numpy"]
        keys = np.asarray(keys, dtype=np.uint32)
        np.random.set_state((name, keys, pos, has_gauss, cached))  # noqa: NPY002
        torch.set_rng_state(state["torch"])
        if state["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - see Trainer._rng_state
    torch.manual_seed(seed)
