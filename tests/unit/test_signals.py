"""A stop signal before the event loop runs is remembered instead of killing the process."""

from __future__ import annotations

import os
import signal

from bridge import signals


def test_a_sigterm_before_the_loop_is_remembered() -> None:
    old = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        signals.remember_stop_signals()
        assert not signals.stop_requested()
        os.kill(os.getpid(), signal.SIGTERM)  # the process lives on
        assert signals.stop_requested()
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        signals._requested.clear()
