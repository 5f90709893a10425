"""A message's state: the moves a revoke, a loss and a start may make, and those they may not."""

from __future__ import annotations

from bridge.events import Record
from bridge.pipeline.message import InFlight, MessageState


def message() -> InFlight:
    return InFlight(Record("t", 0, 0, b"k", b"v"))


def test_a_message_starts_queued_and_a_call_handed_to_delivery_starts_it() -> None:
    m = message()
    assert m.state is MessageState.QUEUED
    assert not m.stopped
    m.start()
    assert m.started
    assert not m.stopped


def test_a_revoked_message_stays_revoked_when_a_merged_call_starts_it() -> None:
    m = message()
    m.revoke()
    m.start()
    assert m.state is MessageState.REVOKED
    assert m.stopped
    assert not m.cancelled


def test_a_started_message_reached_by_a_revoke_starts_no_new_call() -> None:
    m = message()
    m.start()
    m.revoke()
    assert m.state is MessageState.REVOKED
    assert m.stopped


def test_a_cancelled_message_stays_cancelled() -> None:
    for before in ("queued", "started", "revoked"):
        m = message()
        if before == "started":
            m.start()
        if before == "revoked":
            m.revoke()
        m.cancel()
        m.start()
        m.revoke()
        assert m.state is MessageState.CANCELLED, before
        assert m.cancelled
        assert m.stopped
