"""Launching real torchrun jobs from tests: a free port, a timeout, captured output."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Mapping


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(nproc: int, *args: str, env: Mapping[str, str], timeout: float) -> subprocess.CompletedProcess:
    """``torchrun --nproc-per-node nproc ARGS`` on this machine (c10d rendezvous on a free port).

    A hung rank fails the test after ``timeout`` seconds (TimeoutExpired), never the CI.
    """
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1"]
    command += ["--nproc-per-node", str(nproc), "--rdzv-backend", "c10d"]
    command += ["--rdzv-endpoint", f"127.0.0.1:{free_port()}", *args]
    return subprocess.run(command, env=dict(env), capture_output=True, text=True, timeout=timeout)
