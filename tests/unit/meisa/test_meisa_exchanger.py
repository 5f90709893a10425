"""Which transports give the client a direct exchange (bridge.meisa.wire.exchanger): the counting
wrapper passes its engine's through and counts it; a shadow run's read-only guard offers none,
so every request goes through the guard."""

from __future__ import annotations

from collections.abc import Sequence

import httpx

from bridge.meisa.transport import CountingTransport, ReadOnlyTransport
from bridge.meisa.wire import Answer, Exchange, exchanger


class Engine(httpx.AsyncBaseTransport):
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, bytes | None]] = []

    def exchanger(self) -> Exchange:
        return self.exchange

    async def exchange(
        self, method: str, url: str, headers: Sequence[tuple[str, str]], content: bytes | None
    ) -> Answer:
        self.sent.append((method, url, content))
        return Answer(200, b"{}", lambda name: None)


async def test_the_counting_wrapper_counts_every_direct_exchange() -> None:
    engine, counted = Engine(), []
    exchange = exchanger(CountingTransport(engine, counted.append))
    assert exchange is not None
    answer = await exchange("POST", "http://m/x/", [], b"{}")
    assert answer.status == 200
    assert counted == ["POST"]
    assert engine.sent == [("POST", "http://m/x/", b"{}")]


def test_a_shadow_runs_guard_and_plain_transports_offer_no_direct_exchange() -> None:
    engine = Engine()
    assert exchanger(ReadOnlyTransport(CountingTransport(engine, lambda _: None))) is None
    mock = httpx.MockTransport(lambda request: httpx.Response(200))
    assert exchanger(CountingTransport(mock, lambda _: None)) is None
    assert exchanger(mock) is None
