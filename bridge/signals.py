"""A stop signal that arrives before the event loop runs is remembered, not fatal.

`meisa-bridge run` installs these handlers first thing, before it imports the pipeline and loads
its config: a pod deleted in its first second (Kubernetes sends SIGTERM) then exits 0 like any
other stop. The runner reads `stop_requested()` once its loop handlers take over.
"""

from __future__ import annotations

import signal
from types import FrameType

_requested: list[int] = []


def _remember(signum: int, frame: FrameType | None) -> None:
    _requested.append(signum)


def remember_stop_signals() -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _remember)


def stop_requested() -> bool:
    return bool(_requested)
