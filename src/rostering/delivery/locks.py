"""One delivery at a time per destination, across DAGs, tasks and processes on every worker sharing the state dir.

A vendor's nightly run and a re-delivery from the ``rostering_operations`` DAG call the same delivery code. Run at
the same time against one SFTP folder, the second one's sweep of leftover temporary files would remove the first
one's upload in progress, and two CERS uploads would race to replace the same groups. So every delivery holds an
exclusive lock keyed by its destination (transport kind + connection id + remote folder or import path)::

    with destination_lock("sftp://stmath_sftp/~"):
        ...  # connect, finish an interrupted set, sweep, upload, rename

The lock is an ``fcntl.flock`` on ``<state dir>/locks/<destination>.lock`` (rostering.paths.state_dir(), the shared
volume when workers are on several hosts): the kernel releases it when the holder exits or is killed, so a crashed
task never blocks the next delivery. A waiter gives up after ``timeout_s`` with ``DestinationBusyError`` -- a
``TimeoutError``, so a task retry tries again later.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import logging
import os
import re
import time
from pathlib import Path
from typing import Iterator

from rostering.errors import ValueFreeError
from rostering.paths import state_dir

__all__ = ["DEFAULT_TIMEOUT_S", "DestinationBusyError", "destination_lock", "lock_path"]

log = logging.getLogger(__name__)

#: Longer than an SFTP set takes; a CERS delivery that follows its imports for longer makes the waiter retry later.
DEFAULT_TIMEOUT_S = 900.0
_POLL_S = 0.2
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class DestinationBusyError(ValueFreeError, TimeoutError):
    """Another delivery to the same destination held the lock for longer than the wait allowed. Transient."""


def lock_path(key: str) -> Path:
    """``<state>/locks/<readable part of the key>.<hash>.lock``: the hash keeps distinct keys apart."""
    readable = _UNSAFE.sub("_", key).strip("_")[:80]
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
    folder = state_dir() / "locks"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder / f"{readable}.{digest}.lock"


@contextlib.contextmanager
def destination_lock(key: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> Iterator[None]:
    """Hold the exclusive lock of destination ``key`` for the ``with`` block; wait at most ``timeout_s`` for it."""
    path = lock_path(key)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        _acquire(fd, key, timeout_s)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _acquire(fd: int, key: str, timeout_s: float) -> None:
    # Polled rather than a blocking flock: a blocking call cannot time out without signals (main thread only).
    deadline = time.monotonic() + timeout_s
    waiting = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if waiting:
                log.info("Got the delivery lock of %s", key)
            return
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
        if time.monotonic() >= deadline:
            raise DestinationBusyError(
                f"another delivery to {key} still holds its lock after {timeout_s:.0f} s; nothing was sent. "
                "It is retried later; if no delivery is running, check the processes holding the lock file "
                f"{lock_path(key).name} under the state dir's locks/"
            )
        if not waiting:
            log.info("Another delivery to %s is in progress; waiting up to %.0f s for it to finish", key, timeout_s)
            waiting = True
        time.sleep(min(_POLL_S, max(0.0, deadline - time.monotonic())))
