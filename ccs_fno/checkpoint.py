"""Run-directory files: atomic writes, and loading checkpoints / models with clear errors.

A file is written to a temporary name in its own directory, flushed and fsynced, then moved over
the old one with ``os.replace`` (atomic on POSIX), and the directory is fsynced, so a kill at any
moment leaves either the old or the new file, never a torn one. Files are read with
``torch.load(weights_only=True)``: plain containers and tensors only, no arbitrary code.
"""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ccs_fno.nn import FNO


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Replace ``path`` by ``data`` atomically (temp file in the same directory, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_torch_file(
    path: str | os.PathLike, kind: str, version: int, required: Iterable[str]
) -> dict[str, Any]:
    """Load a file written by ``atomic_torch_save`` whose ``format`` is ``kind``, or raise.

    Missing file: FileNotFoundError. Unreadable (truncated, corrupt, not a torch file), another
    format or version, or a missing key: ValueError naming the file and what is wrong.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no {kind} file at {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many types for a damaged file
        raise ValueError(
            f"{path} is not a readable {kind} file (truncated or corrupt?): {type(err).__name__}: {err}"
        ) from None
    if not isinstance(data, Mapping) or data.get("format") != kind:
        found = data.get("format") if isinstance(data, Mapping) else type(data).__name__
        raise ValueError(f"{path} is not a {kind} file (format {found!r})")
    if data.get("format_version") != version:
        raise ValueError(
            f"{path}: unsupported {kind} format_version {data.get('format_version')!r}; "
            f"this version reads {version}"
        )
    missing = sorted(set(required) - set(data))
    if missing:
        raise ValueError(f"{path} is an incomplete {kind} file: {missing} missing")
    return dict(data)


def build_model(config: Any, path: str | os.PathLike) -> FNO:
    """``FNO(**config)``, or a ValueError naming the file whose model config is invalid."""
    if not isinstance(config, Mapping):
        raise ValueError(f"{path}: model_config must be a mapping, got {config!r}")
    try:
        return FNO(**config)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: invalid model_config {dict(config)}: {err}") from None


def load_weights(module: nn.Module, state: Any, path: str | os.PathLike, what: str) -> None:
    """``module.load_state_dict(state)`` (strict), or a ValueError saying what does not match."""
    try:
        module.load_state_dict(state)
    except (RuntimeError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"{path}: the saved {what} does not match its configuration: {err}") from None
