"""Run by ``torchrun`` in the distributed tests: real processes, real gloo, real stores.

``python -m torch.distributed.run --standalone --nproc-per-node P tests/dist_worker.py SPEC``
where SPEC is a JSON file {"case": ..., "store": ..., "out": ..., ...}. Every rank writes
``out/rank{r}.pt`` with what it saw; the test process compares that with a serial run.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import torch

from ccs_fno.distributed import get_context, init_context, shutdown_context
from ccs_fno.train import ModelConfig, TrainConfig, Trainer

SATURATION_CHUNKS = "/saturation/c/"


class ChunkRecorder:
    """Trainer hook + audit hook: the saturation chunk files this process opens while training."""

    def __init__(self) -> None:
        self.recording, self.opened = False, set()
        sys.addaudithook(self._audit)

    def _audit(self, event: str, args: tuple) -> None:
        if self.recording and event == "open" and isinstance(args[0], (str, Path)):
            path = str(args[0])
            if SATURATION_CHUNKS in path:
                self.opened.add(path.split(SATURATION_CHUNKS, 1)[1])

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        self.recording = epoch == 0

    def on_step_end(self, trainer: Trainer, step: int, loss: float | None) -> None:
        if step == len(trainer.train_loader) - 1:
            self.recording = False  # validation reads are not the training shard's


class Snapshot:
    """Trainer hook: copy the run directory after epoch ``epoch`` (rank 0)."""

    def __init__(self, epoch: int, target: str) -> None:
        self.epoch, self.target = epoch, target

    def on_epoch_end(self, trainer: Trainer, record: dict) -> None:
        if record["epoch"] == self.epoch and trainer.context.is_main:
            shutil.copytree(trainer.run_dir, self.target)


class RaiseAt:
    """Trainer hook: raise on rank ``rank`` at step ``step`` of the first epoch."""

    def __init__(self, rank: int, step: int) -> None:
        self.rank, self.step = rank, step

    def on_step_end(self, trainer: Trainer, step: int, loss: float | None) -> None:
        if trainer.context.rank == self.rank and step == self.step:
            raise RuntimeError(f"injected failure on rank {self.rank} at step {step}")


def state(trainer: Trainer) -> dict:
    if trainer.spatial > 1:  # sharded: gather to the serial shapes (collective on every rank)
        from ccs_fno.spatial import full_grads

        params, grads = trainer.model.full_state_dict(), full_grads(trainer.model)
    else:
        params = trainer.model.state_dict()
        grads = {k: p.grad for k, p in trainer.model.named_parameters() if p.grad is not None}
    return {
        "history": trainer.history,
        "params": {k: v.detach().cpu().clone() for k, v in params.items()},
        "grads": {k: g.detach().cpu().clone() for k, g in grads.items()},
        "skipped_steps": trainer.skipped_steps,
        "test_rel_l2": trainer.evaluate("test"),
    }


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    torch.set_num_threads(1)
    context = init_context(
        device="cpu", spatial_size=spec.get("spatial", 1), timeout_s=spec.get("timeout_s", 120)
    )
    out, result = Path(spec["out"]), {"rank": context.rank, "world_size": context.world_size}
    model = ModelConfig(**spec["model"])
    if spec["case"] == "train":  # several configurations, each trained from scratch
        for name, case in spec["configs"].items():
            recorder = ChunkRecorder()
            hooks = [recorder, Snapshot(spec["snapshot_epoch"], str(out / f"{name}-snapshot"))]
            config, model = TrainConfig(**case["train"]), ModelConfig(**case["model"])
            trainer = Trainer.start(spec["store"], out / name, config, model, hooks=hooks)
            trainer.fit(progress=False)
            result[name] = state(trainer) | {
                "opened_chunks": sorted(recorder.opened),
                "epoch0_samples": [int(trainer.data.split["train"][i]) for i in _epoch0(trainer)],
            }
    elif spec["case"] == "resume":  # continue a run written by another world size
        trainer = Trainer.resume(spec["run_dir"])
        trainer.fit(progress=False)
        result["resumed"] = state(trainer)
    elif spec["case"] == "skip":  # a non-finite loss on one rank only: every rank skips
        trainer = Trainer.start(spec["store"], out / "skip", TrainConfig(**spec["config"]), model)
        x, y = next(iter(trainer.train_loader))
        before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
        first = trainer.train_step(x * (1e38 if context.rank == 1 else 1.0), y)
        unchanged = all(torch.equal(v, before[k]) for k, v in trainer.model.state_dict().items())
        second = trainer.train_step(x, y)
        result["skip"] = {
            "first": first,
            "unchanged": unchanged,
            "second": second,
            "skipped": trainer.skipped_steps,
        }
    elif spec["case"] == "raise":
        hooks = [RaiseAt(spec["raise_rank"], 1)]
        Trainer.start(spec["store"], out / "raise", TrainConfig(**spec["config"]), model, hooks=hooks).fit(
            False
        )
    torch.save(result, out / f"rank{get_context().rank}.pt")
    shutdown_context()


def _epoch0(trainer: Trainer) -> list[int]:
    trainer.sampler.set_epoch(0)
    return list(trainer.sampler)


if __name__ == "__main__":
    main(sys.argv[1])
