"""One writer per store: an advisory lock file beside the store.

``store_lock(path)`` holds ``.<name>.lock`` in the store's parent directory (beside the store, so
it survives ``--overwrite`` replacing the store directory) for as long as a process creates or
generates into the store. The file records the owner (pid, host, start time, command) for the
error message a second writer gets, and the process holds an exclusive ``flock`` on it:

* the kernel drops the ``flock`` when the owner dies (even by SIGKILL), so a lock left by a dead
  process on this host is stale and is taken over by the next writer;
* on a shared or network file system ``flock`` may not reach other hosts. A lock file written by
  another host whose owner is gone cannot be told from a live one there, so it is refused with its
  owner named; remove the file by hand once sure no process on that host writes the store.

The lock is advisory (readers never take it) and re-entrant within a process (``generate`` holds it
while ``create_store`` takes it again). It guards against two ``ccs-fno generate`` runs, not
against other programs writing the directory.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_HELD: dict[Path, tuple[int, int]] = {}  # lock file -> (fd, depth): re-entrant within a process


class StoreLockedError(RuntimeError):
    """Another process writes (or a lock file of another host claims) the store."""


def lock_path(path: str | os.PathLike) -> Path:
    """The lock file of the store at ``path``: ``.<name>.lock`` beside it."""
    path = Path(path).absolute()
    return path.with_name(f".{path.name}.lock")


def read_owner(path: str | os.PathLike) -> dict[str, Any] | None:
    """The owner recorded in the lock file of the store at ``path`` (None: no lock file or empty)."""
    try:
        text = lock_path(path).read_text()
    except FileNotFoundError:
        return None
    try:
        owner = json.loads(text)
    except ValueError:
        return None
    return owner if isinstance(owner, dict) else None


def _describe(store: Path, owner: dict[str, Any] | None) -> str:
    if not owner:
        return f"store {store} is being written by another process (its lock file is still empty)"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(owner.get("created", 0.0))))
    return (
        f"store {store} is being written by pid {owner.get('pid')} on host {owner.get('host')} "
        f"since {since} ({owner.get('command', '?')})"
    )


def _acquire(store: Path) -> int:
    """Open and flock the lock file of ``store``; return its descriptor, or raise StoreLockedError."""
    file = lock_path(store)
    while True:
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(file, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:  # name the user's store, not the lock file beside it
            raise type(err)(
                err.errno, f"cannot lock the store for writing: {err.strerror}", str(store)
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreLockedError(
                f"{_describe(store, read_owner(store))}; wait for it to finish, or stop it "
                f"(a killed writer's lock is taken over automatically); lock file: {file}"
            ) from None
        try:
            same = os.fstat(fd).st_ino == os.stat(file).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the previous owner removed the file between our open and flock: retry
    owner = read_owner(store)
    if owner and owner.get("host") != socket.gethostname():
        os.close(fd)
        raise StoreLockedError(
            f"{_describe(store, owner)}, according to lock file {file}; a process on another "
            "host cannot be checked from here (locks may not reach across a shared file system): "
            "remove the lock file by hand once sure no process there writes the store"
        )
    # Free on this host: no owner, or a dead one (stale lock): take it over.
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "created": time.time(),
        "command": " ".join(Path(sys.argv[0]).name.split() + sys.argv[1:])[:300] or "python",
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(record).encode(), 0)
    os.fsync(fd)
    return fd


@contextmanager
def store_lock(path: str | os.PathLike) -> Iterator[Path]:
    """Hold the advisory write lock of the store at ``path`` (re-entrant); yield the lock file.

    Raises ``StoreLockedError`` naming the owner (pid, host, since when) if another live process
    holds it. The lock file is removed on release.
    """
    store = Path(path).absolute()
    file = lock_path(store)
    if file in _HELD:
        fd, depth = _HELD[file]
        _HELD[file] = (fd, depth + 1)
    else:
        _HELD[file] = (_acquire(store), 1)
    try:
        yield file
    finally:
        fd, depth = _HELD[file]
        if depth > 1:
            _HELD[file] = (fd, depth - 1)
        else:
            del _HELD[file]
            try:
                file.unlink()  # while still holding the flock: a waiting opener retries (inode check)
            except FileNotFoundError:
                pass
            os.close(fd)
