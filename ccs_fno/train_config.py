"""Training configuration: the model and training dataclasses and the precision schedule.

Plain data, JSON round-trippable (``to_dict`` / ``from_dict``), validated on construction; the
``Trainer`` in ``ccs_fno.train`` consumes them and records them in the run directory.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch

from ccs_fno.nn import FNO, PRECISIONS
from ccs_fno.nn.norm import validate_norm
from ccs_fno.optim import optimizer_names

SCHEDULERS = ("cosine", "step")
DTYPES = ("float32", "float64")
GRAD_COMPRESSIONS = ("none", "fp16", "bf16")


def parse_precision_schedule(text: str) -> tuple[tuple[str, float], ...]:
    """``"half:0.7,full"`` -> ``(("half", 0.7), ("full", 1.0))``: precision until a fraction.

    Each phase but the last ends at a fraction of the epochs (strictly increasing, in (0, 1));
    the last phase runs to the end. A single precision (``"full"``) is a one-phase schedule.
    """
    phases, start = [], 0.0
    parts = [p.strip() for p in str(text).split(",")]
    for i, part in enumerate(parts):
        name, _, until = part.partition(":")
        if name not in PRECISIONS:
            raise ValueError(
                f"precision schedule {text!r}: {name!r} is not a precision; allowed: {PRECISIONS}"
            )
        last = i == len(parts) - 1
        if last != (until == ""):
            raise ValueError(
                f"precision schedule {text!r}: every phase but the last needs ':fraction' "
                "(e.g. 'half:0.7,full')"
            )
        end = 1.0
        if not last:
            try:
                end = float(until)
            except ValueError:
                end = math.nan
            if not start < end < 1.0:
                raise ValueError(
                    f"precision schedule {text!r}: phase ends must increase within (0, 1), "
                    f"got {until!r} after {start:g}"
                )
        phases.append((name, end))
        start = end
    return tuple(phases)


def precision_at(phases: tuple[tuple[str, float], ...], epoch: int, epochs: int) -> str:
    """Precision of 0-based ``epoch`` of ``epochs``: the first phase whose end lies beyond it."""
    return next(name for name, end in phases if epoch < end * epochs or end == 1.0)


def _check(name: str, value: Any, kind: type, minimum: float, strict: bool = False) -> None:
    ok_type = isinstance(value, kind) and not isinstance(value, bool)
    if kind is float:
        ok_type = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok_type or not math.isfinite(value) or value < minimum or (strict and value == minimum):
        bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
        raise ValueError(f"{name} must be a finite {kind.__name__} {bound}, got {value!r}")


@dataclass(frozen=True)
class ModelConfig:
    """Size of the FNO: ``modes`` retained frequencies per dim (z, x); an int means both."""

    width: int = 32
    modes: tuple[int, int] = (12, 12)
    n_layers: int = 4
    projection_width: int = 128
    norm: str | None = None

    def __post_init__(self) -> None:
        validate_norm(self.norm)
        modes = (self.modes, self.modes) if isinstance(self.modes, int) else tuple(self.modes)
        if len(modes) != 2:
            raise ValueError(f"modes must be an int or a (z, x) pair, got {self.modes!r}")
        object.__setattr__(self, "modes", modes)
        for name, value in (("width", self.width), ("n_layers", self.n_layers)):
            _check(name, value, int, 1)
        _check("projection_width", self.projection_width, int, 1)
        for m in modes:
            _check("modes", m, int, 1)

    def build(self, in_channels: int, out_channels: int, precision: str) -> FNO:
        return FNO(
            in_channels,
            out_channels,
            self.modes,
            width=self.width,
            n_layers=self.n_layers,
            projection_width=self.projection_width,
            precision=precision,
            norm=self.norm,
        )


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings. ``batch_size`` is the global batch: with P data-parallel processes
    each takes ``batch_size / P`` samples a step, and the run is the same for every P.
    ``optimizer`` names one of ``ccs_fno.optim`` (adamw, soap); ``lr`` per optimiser step;
    ``step_size`` (epochs) and ``gamma`` for the
    step scheduler; ``h1_weight`` weights a relative H1-seminorm term added to the relative L2
    loss; ``seed`` seeds initialisation and shuffling, ``split_seed`` the train/val/test split;
    ``calibration_fraction`` > 0 also holds out a ``calibration`` split (never trained on or used
    for model selection: for ``ccs_fno.uq.calibrate``; 0 leaves the split as it always was);
    ``device`` "auto" picks CUDA when available; ``deterministic`` asks torch for deterministic
    algorithms (needed for bit-exact resume); ``dtype`` float64 trains in double precision
    (reference runs; needs precision "full"); ``grad_compression`` fp16/bf16 sends DDP gradients
    in half precision (half the bytes; no effect on one process).
    """

    epochs: int = 50
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-4
    scheduler: str = "cosine"
    step_size: int = 10
    gamma: float = 0.5
    h1_weight: float = 0.0
    precision_schedule: str = "full"
    seed: int = 0
    split_seed: int = 0
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    calibration_fraction: float = 0.0
    num_workers: int = 0
    device: str = "auto"
    deterministic: bool = False
    optimizer: str = "adamw"
    dtype: str = "float32"
    grad_compression: str = "none"

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "step_size"):
            _check(name, getattr(self, name), int, 1)
        for name in ("seed", "split_seed", "num_workers"):
            _check(name, getattr(self, name), int, 0)
        _check("lr", self.lr, float, 0.0, strict=True)
        for name in ("weight_decay", "h1_weight"):
            _check(name, getattr(self, name), float, 0.0)
        _check("gamma", self.gamma, float, 0.0, strict=True)
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler must be one of {SCHEDULERS}, got {self.scheduler!r}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must lie in (0, 1), got {self.val_fraction!r}")
        if not 0.0 <= self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must lie in [0, 1), got {self.test_fraction!r}")
        if not 0.0 <= self.calibration_fraction < 1.0:
            raise ValueError(f"calibration_fraction must lie in [0, 1), got {self.calibration_fraction!r}")
        if not isinstance(self.deterministic, bool):
            raise ValueError(f"deterministic must be a bool, got {self.deterministic!r}")
        phases = parse_precision_schedule(self.precision_schedule)
        resolve_device(self.device)
        if self.optimizer not in optimizer_names():
            raise ValueError(f"optimizer must be one of {optimizer_names()}, got {self.optimizer!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        if self.dtype == "float64" and any(p != "full" for p, _ in phases):
            raise ValueError(
                f"dtype float64 trains in full precision only; precision schedule "
                f"{self.precision_schedule!r} uses half precision"
            )
        if self.grad_compression not in GRAD_COMPRESSIONS:
            raise ValueError(
                f"grad_compression must be one of {GRAD_COMPRESSIONS}, got {self.grad_compression!r}"
            )

    @property
    def phases(self) -> tuple[tuple[str, float], ...]:
        return parse_precision_schedule(self.precision_schedule)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {sorted(unknown)}")
        return cls(**data)


def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> CUDA if available, else CPU; anything else must name an available device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}") from None
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available; use 'cpu'")
    return resolved
