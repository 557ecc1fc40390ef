"""Build a shared thing once: the first process that needs it builds it, the others wait and use it.

Why one helper: a synthetic dataset (`data.synth.ensure`) and a feature-cache entry
(`FeatureCache.get`) are shared by runs started side by side (a sweep's jobs, on one machine or on
several sharing the folder), and both take the same steps: look; if missing, take an exclusive
`flock` on a lock file; look again (another process may have built it while this one waited);
build only if still missing. The lock goes with the process, so one that dies leaves nothing to
clean up. The builder writes atomically (a temporary name, then a rename), so a reader that finds
the thing without taking the lock never sees half of it.
"""
from __future__ import annotations

import fcntl
from pathlib import Path
from typing import Callable, TypeVar

T = TypeVar("T")


def build_once(lock: Path, find: Callable[[], T | None], build: Callable[[], T],
               wait: bool = True) -> tuple[T, bool] | None:
    """(what `find` found, False), or (`build()`, True) when it is still missing once the lock on
    `lock` is held. With `wait=False` and the lock held by another process: None at once, so the
    caller can do other work first."""
    found = find()
    if found is not None:
        return found, False
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as fh:  # closing the file releases the lock
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            return None
        found = find()  # built by another process while this one waited
        if found is not None:
            return found, False
        return build(), True
