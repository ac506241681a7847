"""Tasks of the sweep tests (imported by file path: "sweep_tasks.py:nap")."""
from __future__ import annotations

import os
import signal
import time


def nap(seed: int, seconds: float = 0.0, tag: str = "", die: bool = False) -> dict:
    """Sleep ``seconds``; with ``die`` SIGKILL the process running it (its worker)."""
    if die:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(seconds)
    return {"seed": seed, "tag": tag, "twice": 2 * seed, "pid": os.getpid()}


def broken(seed: int, **settings) -> dict:
    raise RuntimeError(f"broken task, seed {seed}")
