"""Background work of the apps: one worker thread per app, its Run/Cancel buttons, a cancel flag the
work polls, and a thread limit (torch, BLAS) for work that shares a small machine with the kernel
and the browser."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

_BLAS = None


@contextmanager
def compute_threads(n: int) -> Iterator[None]:
    """Run torch and the BLAS behind numpy on ``n`` threads: one small field gains little from
    more, and on a small machine extra threads fight the simulator thread, the kernel and the
    browser (torch: 4-10x slower measured; OpenBLAS's workers also keep spinning after a small
    matrix product, taking a core from the browser for the rest of an app's update)."""
    import torch
    from threadpoolctl import ThreadpoolController

    global _BLAS
    if _BLAS is None:  # inspecting the loaded libraries costs ~ms: once
        _BLAS = ThreadpoolController()
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with _BLAS.limit(limits=n, user_api="blas"):
            yield
    finally:
        torch.set_num_threads(before)


class BackgroundRuns:
    """An app's long runs on one worker thread, one at a time.

    ``start(work)`` clears ``cancel_event``, disables ``run_button`` and enables ``cancel_button``
    until ``work`` returns or raises (then the other way round); ``submit`` queues other work
    (e.g. a verification) on the same thread without touching the buttons. ``lock`` is the app's
    lock for its state and widgets, shared by the worker and the kernel's thread."""

    def __init__(self, name: str, run_button: Any, cancel_button: Any) -> None:
        self.lock = threading.RLock()
        self.cancel_event = threading.Event()
        self.future: Future | None = None
        self._buttons = run_button, cancel_button
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    @property
    def running(self) -> bool:
        """Whether a run started by ``start`` has not finished yet."""
        return self.future is not None and not self.future.done()

    def start(self, work: Callable[..., Any], *args: Any) -> Future:
        """Run ``work(*args)`` in the background (Run disabled, Cancel enabled meanwhile)."""
        with self.lock:
            self.cancel_event.clear()
            self._set_running(True)
            self.future = self._executor.submit(self._run, work, *args)
            return self.future

    def _run(self, work: Callable[..., Any], *args: Any) -> Any:
        try:
            return work(*args)
        finally:
            with self.lock:
                self._set_running(False)

    def _set_running(self, running: bool) -> None:
        run_button, cancel_button = self._buttons
        run_button.disabled, cancel_button.disabled = running, not running

    def submit(self, work: Callable[..., Any], *args: Any) -> Future:
        """Queue ``work(*args)`` on the worker thread (the buttons stay as they are)."""
        return self._executor.submit(work, *args)

    def cancel(self) -> None:
        """Ask the running work to stop (it polls ``cancel_event``)."""
        self.cancel_event.set()

    def close(self) -> None:
        """Cancel the running work and stop the worker thread (queued work is dropped)."""
        self.cancel_event.set()
        self._executor.shutdown(wait=False, cancel_futures=True)
