"""The h1 engine's keep-alive pool (bridge.meisa.h1): idle connections per origin, at most
`max_connections` open in all, as httpx's Limits say.

An idle connection is handed out most recently used first (the least likely to have been closed
by the server meanwhile), and dropped instead when the server closed it, or it has been idle
past `keepalive_expiry`. A request that finds every slot taken waits for one, up to the pool
timeout.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable

import httpx

from bridge.meisa.h1conn import Connection

Origin = tuple[str, str, int]  # scheme, host, port
Connect = Callable[[Origin, float | None], Awaitable[Connection]]


class Pool:
    """`Pool(limits)`: `take` an idle connection to an origin or `open` a new one; `release` it
    after the answer, or `drop` it."""

    def __init__(self, limits: httpx.Limits) -> None:
        self._max = limits.max_connections
        self._keep = limits.max_keepalive_connections
        self._expiry = limits.keepalive_expiry
        self._idle: dict[Origin, list[Connection]] = {}
        self._open = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    def take(self, origin: Origin) -> Connection | None:
        """An idle connection to `origin` still fit for a request, or None."""
        idle = self._idle.get(origin)
        if not idle:
            return None
        expiry = self._expiry
        now = idle[-1].loop.time() if expiry is not None else 0.0
        while idle:
            connection = idle.pop()
            if not connection.closed and (expiry is None or now - connection.idle_since < expiry):
                return connection
            self.drop(connection)
        return None

    async def open(
        self, origin: Origin, connect: Connect, timeouts: tuple[float | None, float | None]
    ) -> tuple[Connection, bool]:
        """A new connection to `origin` (`connect(origin, timeout)`) once a slot is free, or an
        idle one that came back meanwhile. `timeouts`: (pool, connect); TimeoutError when no
        slot came free in time. The flag says whether the connection was reused."""
        limit = self._max
        if limit is not None and self._open >= limit:
            async with asyncio.timeout(timeouts[0]):
                while self._open >= limit:
                    waiter = asyncio.get_running_loop().create_future()
                    self._waiters.append(waiter)
                    await waiter
                    connection = self.take(origin)
                    if connection is not None:
                        return connection, True
        self._open += 1
        try:
            return await connect(origin, timeouts[1]), False
        except BaseException:
            self._open -= 1
            self._wake()
            raise

    def release(self, origin: Origin, connection: Connection) -> None:
        """A request is done with `connection`: kept idle if it may carry another."""
        idle = self._idle.setdefault(origin, [])
        if connection.reusable and (self._keep is None or len(idle) < self._keep):
            connection.idle_since = connection.loop.time()
            idle.append(connection)
            if self._waiters:
                self._wake()
        else:
            self.drop(connection)

    def drop(self, connection: Connection) -> None:
        connection.close()
        self._open -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def close(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()
