"""Advisory file locks for read-modify-write of shared files (a run dir, a leaderboard).

Readers need none: every file is replaced by an atomic rename, so a reader sees the
old or the new file whole. Writers that read a file, change it and write it back hold
the lock for the whole sequence, so two processes never lose each other's rows. Lock
files are created beside what they guard and never deleted (deleting one would let two
writers hold "the" lock at once)."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_local = threading.local()  # lock path -> depth held by this thread (re-entry)


@contextmanager
def locked(path: str | os.PathLike) -> Iterator[None]:
    """Holds an exclusive lock on `path` (created if missing) for the with-block. A
    thread that already holds it re-enters; anyone else waits."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = str(path.resolve())
    held: dict[str, int] = _local.__dict__.setdefault("held", {})
    if held.get(key):
        held[key] += 1
        try:
            yield
        finally:
            held[key] -= 1
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        held[key] = 1
        yield
    finally:
        held.pop(key, None)
        os.close(fd)  # closing releases the flock
