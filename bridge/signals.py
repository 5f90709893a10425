"""A signal that arrives before the event loop runs is remembered, not fatal.

`meisa-bridge run` installs these handlers first thing, before it imports the pipeline and loads
its config: a pod deleted in its first second (Kubernetes sends SIGTERM) then exits 0 like any
other stop, and a SIGHUP sent while it starts (its default action would end the process) reloads
the rules once the bridge runs. The runner reads `stop_requested()` and `hangup_requested()` once
its loop handlers take over.
"""

from __future__ import annotations

import signal
from types import FrameType

_requested: list[int] = []
_hangups: list[int] = []


def _remember(signum: int, frame: FrameType | None) -> None:
    _requested.append(signum)


def _remember_hangup(signum: int, frame: FrameType | None) -> None:
    _hangups.append(signum)


def remember_stop_signals() -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _remember)
    signal.signal(signal.SIGHUP, _remember_hangup)


def stop_requested() -> bool:
    return bool(_requested)


def hangup_requested() -> bool:
    """A SIGHUP came before the runner's own handler: reload once it runs."""
    return bool(_hangups)
