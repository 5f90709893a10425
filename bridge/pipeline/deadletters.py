"""The dead-letter step: the DLQ breaker over finished messages, and poison to the DLQ.

Every finished message is counted in the breaker (bridge.dlq.DlqBreaker): a bad deploy that
turns every message into poison halts the bridge instead of draining the topic into the DLQ.
Poison is written to the sink (the DLQ producer, or a shadow run's recorder) on a task of its
own; `on_written` runs once the broker acknowledged the record, and the message is done then.
No dead-letter topic configured, or a write that fails, halts: the offset never moves past
poison without a word. A record waits at the stall fence (bridge.pipeline.fence) as a Meisa call
does: a process woken from a freeze must not write one for a partition it has lost meanwhile
(its new owner writes its own), so a message cancelled by then writes none.

A pipeline stage (bridge.pipeline.stage): `close()` takes no new poison (a message poisoned
after it is left unfinished and read again), `join(grace)` waits for the writes under way,
`terminate()` cancels those still running.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from bridge.dlq import DeadLetter, DeadLetterSink, DlqBreaker
from bridge.errors import DeadLetterWriteFailed, HaltError, NoDeadLetterTopic
from bridge.observability import Metrics
from bridge.pipeline.message import InFlight

log = logging.getLogger("bridge.pipeline")


class DeadLetters:
    name = "dead letters"

    def __init__(
        self,
        *,
        sink: DeadLetterSink | None,
        fence: Callable[[], Awaitable[None]],
        breaker: DlqBreaker,
        metrics: Metrics,
        halt: Callable[[HaltError], None],
        on_written: Callable[[InFlight], Awaitable[None]],
    ) -> None:
        self._sink = sink
        self._fence = fence
        self._breaker = breaker
        self._metrics = metrics
        self._halt = halt
        self._on_written = on_written
        self._fill: tuple[float, float] | None = None  # last reported to the metrics
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    def count(self, poison: bool) -> bool:
        """Count a finished message in the breaker; False when it tripped (halted)."""
        try:
            self._breaker.record(poison)
        except HaltError as exc:
            self._halt(exc)
            return False
        finally:
            fill = self._breaker.fill()
            if fill != self._fill:  # a gauge write per change, not per message
                self._fill = fill
                self._metrics.dlq_breaker(*fill)
        return True

    def send(self, message: InFlight) -> None:
        """Write the poison message's record (in the background)."""
        if self._closed:
            return
        task = asyncio.create_task(self._write(message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def close(self) -> None:
        self._closed = True

    async def join(self, grace: float | None = None) -> bool:
        """Wait up to `grace` seconds for the writes under way; False if some are left."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=grace)
        return not self._tasks

    async def terminate(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _write(self, message: InFlight) -> None:
        failure = message.failure
        assert failure is not None
        r = message.record
        if self._sink is None:
            self._halt(NoDeadLetterTopic(f"{r.topic}/{r.partition}@{r.offset}: {failure.error}"))
            return
        await self._fence()
        if message.cancelled:  # its partition was lost while the fence held it
            return
        letter = DeadLetter(r, failure, trace_id=message.trace.trace_id)
        try:
            await self._sink.send(letter)
        except HaltError as exc:
            self._halt(exc)
            return
        except Exception as exc:  # never leave the offset stuck without a word
            self._halt(DeadLetterWriteFailed(f"DLQ write: {type(exc).__name__}: {exc}"))
            return
        log.warning(
            "%s %s partition %d offset %d (%s, rule %s): %s",
            self._sink.verb,
            r.topic,
            r.partition,
            r.offset,
            failure.stage,
            repr(failure.rule) if failure.rule else "-",  # no rule: it did not decode
            failure.error,
            extra=message.trace.log_fields(),
        )
        self._metrics.dlq(r.topic, failure.stage)
        await self._on_written(message)
