"""`meisa-bridge run --config FILE`: start-up checks, wiring, signals, exit codes.

SIGTERM and SIGINT stop the bridge cleanly; SIGHUP reloads its rules (bridge.pipeline.reload).

Exit codes (bridge.exitcodes):
    OK       clean shutdown (SIGTERM/SIGINT): in-flight work drained within the grace, offsets
             committed
    REFUSED  refused to start: bad config, Meisa unreachable or the key rejected (401) at
             start-up, the key lacks scopes the rules need (the message names each scope and the
             rules), or the dead_letter_topic does not exist
    HALTED   401/403 from Meisa, the DLQ breaker tripped, a poison message with no DLQ topic, a
             DLQ write that failed, or a fatal Kafka error. Only finished offsets were committed.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from bridge.config import BridgeConfig, load_config
from bridge.errors import (
    ConfigError,
    StartupRefused,
)
from bridge.exitcodes import ExitCode
from bridge.kafka.ledger import open_ledger
from bridge.ledger import SentLedger
from bridge.meisa.calls import MeisaCall
from bridge.meisa.client import MeisaClient, default_transport
from bridge.meisa.delivery import Deliverer
from bridge.meisa.governor import RateGovernor
from bridge.meisa.models import PingInfo
from bridge.observability import (
    HealthServer,
    HealthState,
    Metrics,
    configure_logging,
    linger,
    redact,
    register_config_secrets,
    serve_refusal,
    start_tracing,
)
from bridge.observability.tracing import Tracing
from bridge.pipeline.callmetrics import attempt_metrics, governor_metrics
from bridge.pipeline.dispatcher import Deliver, Slot
from bridge.pipeline.guards import CallGuard, SuppressionList
from bridge.pipeline.inflight import InFlightLimit
from bridge.pipeline.message import Sending
from bridge.pipeline.outcomes import open_outcomes, with_attempts
from bridge.pipeline.reload import start_reloading
from bridge.pipeline.startup import bind_server, open_dead_letter, startup_check

if TYPE_CHECKING:
    import httpx

    from bridge.dlq import DeadLetterProducer, DeadLetterSink
    from bridge.pipeline.outcomes import OutcomeWriter
    from bridge.shadow import ShadowOptions, ShadowRecorder

T = TypeVar("T")
log = logging.getLogger("bridge.run")

# The cyclic garbage collector finds next to nothing here (a message's objects go by reference
# counting): at the default first threshold (700) it ran ~500 times per 100,000 events and took
# a tenth of the CPU (bench/unmapped.py). Collections now come every 50,000 net allocations.
GC_THRESHOLDS = (50_000, 20, 20)
OUTCOMES_CLOSE_SECONDS = 5.0  # after the final commit: a broker that is away holds no exit longer


def run_command(args: argparse.Namespace) -> int:
    shadow = _shadow_options(args)
    try:
        config = load_config(args.config)
        if shadow is not None:
            from bridge.shadow import shadow_config

            config = shadow_config(config, shadow)
    except ConfigError as exc:
        print(f"meisa-bridge: {exc}", file=sys.stderr)
        return ExitCode.REFUSED
    configure_logging(config.logging)
    register_config_secrets(config)
    _tune_gc()
    with asyncio.Runner(loop_factory=_loop_factory(config)) as runner:
        return runner.run(run_bridge(config, install_signals=True, shadow=shadow))


def _loop_factory(config: BridgeConfig) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop unless the config asks for the standard one (None: asyncio's default)."""
    if config.pipeline.event_loop != "uvloop":
        return None
    import uvloop

    return uvloop.new_event_loop


def _tune_gc() -> None:
    """For the process of `meisa-bridge run` only: what start-up loaded (modules, rules, config)
    lives as long as the process, so it leaves the collector's generations (`gc.freeze`) and full
    collections no longer walk it; then the thresholds above."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _early_signals() -> asyncio.Event:
    """SIGTERM/SIGINT during start-up (a pod deleted while it pings Meisa or loads the ledger)
    stop the bridge cleanly instead of killing it; `_serve` installs the running handlers."""
    from bridge.signals import stop_requested

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if stop_requested():  # it came while the process was still importing and loading
        stop.set()
    return stop


async def _start(
    client: MeisaClient, config: BridgeConfig, metrics: Metrics, stack: AsyncExitStack
) -> tuple[PingInfo, SentLedger]:
    info = await startup_check(client, config, metrics)
    ledger = await stack.enter_async_context(open_ledger(config))
    return info, ledger


async def _unless_stopped(work: Awaitable[T], stop: asyncio.Event | None) -> T | None:
    """`work`'s result, or None when `stop` is set first (the work is cancelled)."""
    if stop is None:
        return await work
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if task.done():
        return task.result()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return None


def _shadow_options(args: argparse.Namespace) -> ShadowOptions | None:
    if not getattr(args, "shadow", False):
        return None
    from bridge.shadow import ShadowOptions

    return ShadowOptions(
        group_id=args.shadow_group, output=args.shadow_output, start=args.shadow_from or "latest"
    )


async def run_bridge(
    config: BridgeConfig,
    *,
    stop: asyncio.Event | None = None,
    install_signals: bool = False,
    metrics: Metrics | None = None,
    shadow: ShadowOptions | None = None,
    tracing: Tracing | None = None,
) -> int:
    """Run until `stop` is set (or a signal, or a halt); returns the exit code.

    With `shadow` (and a config from bridge.shadow.shadow_config) calls are recorded, not made.
    `tracing` replaces what `config.tracing` says (tests pass one with an in-memory exporter).
    """
    metrics = metrics or Metrics()
    health = HealthState()
    if install_signals and stop is None:
        stop = _early_signals()
    tracing = tracing or start_tracing(config.tracing)
    client = MeisaClient(config.meisa, transport=_transport(config, metrics, shadow))
    try:
        async with AsyncExitStack() as stack:
            try:
                started = await _unless_stopped(_start(client, config, metrics, stack), stop)
                if started is None:
                    log.info("stopped during start-up; nothing was consumed")
                    return ExitCode.OK
                info, ledger = started
            except StartupRefused as exc:
                code = _refuse(exc)
                reason = f"refused to start: {exc}"
                await serve_refusal(config.server, health, metrics, reason, stop)
                return code
            health.meisa_reachable = True
            return await _serve(
                config,
                client=client,
                info=info,
                health=health,
                metrics=metrics,
                stop=stop,
                install_signals=install_signals,
                ledger=ledger,
                shadow=shadow,
                tracing=tracing,
            )
    finally:
        await client.aclose()
        await asyncio.to_thread(tracing.shutdown)  # the exporter's last batch may take a moment


def _transport(
    config: BridgeConfig, metrics: Metrics, shadow: ShadowOptions | None
) -> httpx.AsyncBaseTransport:
    """Every request is counted (it spends the key's budget); a shadow run's cannot write."""
    from bridge.meisa.transport import CountingTransport, ReadOnlyTransport

    counted = CountingTransport(default_transport(config.meisa), metrics.request)
    return counted if shadow is None else ReadOnlyTransport(counted)


def _refuse(exc: StartupRefused) -> int:
    # One plain line, not also a log record: like a config error (found before logging is set
    # up) it is the process's last word, and exit code 2 is what machines act on. Redacted like
    # a log line, since it bypasses the log filter.
    print(f"meisa-bridge: refusing to start: {redact(str(exc))}", file=sys.stderr)
    return ExitCode.REFUSED


@dataclass(frozen=True)
class _Parts:
    deliver: Deliver
    governor: RateGovernor
    guard: CallGuard
    suppression: SuppressionList
    in_flight: InFlightLimit


def _build(
    config: BridgeConfig,
    client: MeisaClient,
    info: PingInfo,
    metrics: Metrics,
    ledger: SentLedger,
    *,
    shadow: ShadowRecorder | None = None,
    tracing: Tracing,
) -> _Parts:
    suppression = SuppressionList(
        client.unsubscribed_emails, interval=config.suppression.interval_seconds
    )
    guard = CallGuard(suppressed=suppression.__contains__)
    governor = RateGovernor.from_ping(info, config.meisa, observer=governor_metrics(metrics))
    metrics.governor_throttled(None)
    metrics.governor_rate(governor.per_minute)  # None: an unlimited (sandbox) key, no gauge
    settings = config.pipeline  # a shadow run sends nothing: its answer times say nothing
    in_flight = InFlightLimit(
        settings.max_in_flight,
        adaptive=settings.adaptive_in_flight and shadow is None,
        on_change=metrics.in_flight_limit,
    )
    if shadow is not None:
        from bridge.shadow import shadow_deliver

        recorded = shadow_deliver(
            shadow,
            governor=governor,
            guard=guard,
            metrics=metrics,
            ledger=ledger,
            settings=config.meisa,
        )
        return _Parts(recorded, governor, guard, suppression, in_flight)
    deliverer = Deliverer(
        client,
        governor,
        settings=config.meisa,
        on_attempt=attempt_metrics(metrics, in_flight),
        ledger=ledger,
        guard=guard,
    )
    deliver = _waits_for_contacts(deliverer, tracing)
    return _Parts(deliver, governor, guard, suppression, in_flight)


def _waits_for_contacts(deliverer: Deliverer, tracing: Tracing) -> Deliver:
    """The pipeline's deliver: a 404 comes back at once, the dispatcher waits for the contact.
    The call's trace starts here, as the call leaves its lane."""

    async def deliver(call: MeisaCall, slot: Slot, sending: Sending) -> object:
        trace = tracing.for_call(call, sending.messages)
        return await deliverer.deliver(
            call, slot, not_found=False, event_time=sending.event_time, trace=trace
        )

    return deliver


async def _serve(
    config: BridgeConfig,
    *,
    client: MeisaClient,
    info: PingInfo,
    health: HealthState,
    metrics: Metrics,
    stop: asyncio.Event | None,
    install_signals: bool,
    ledger: SentLedger,
    shadow: ShadowOptions | None = None,
    tracing: Tracing,
) -> int:
    from bridge.codecs import build_decoder
    from bridge.kafka.source import KafkaSource
    from bridge.pipeline.pipeline import Pipeline

    dlq: DeadLetterProducer | None = None
    outcomes: OutcomeWriter | None = None
    server = HealthServer(config.server, health, metrics)
    try:
        dlq = await open_dead_letter(config) if shadow is None else None
        outcomes = await open_outcomes(config, metrics) if shadow is None else None
        bind_server(server, config)
    except StartupRefused as exc:
        if dlq is not None:
            dlq.close(0)
        return _refuse(exc)
    recorder = _recorder(shadow, metrics)
    parts = _build(config, client, info, metrics, ledger, shadow=recorder, tracing=tracing)
    pipeline = Pipeline(
        config=config,
        source=KafkaSource(config.kafka, config.topics),
        decoder=build_decoder(config.codec),
        rules=config.rules,
        deliver=parts.deliver if outcomes is None else with_attempts(parts.deliver),
        guard=parts.guard,
        dlq=_sink(dlq, recorder),
        metrics=metrics,
        health=health,
        on_share=parts.governor.set_share if config.meisa.rate_share is None else None,
        tracing=tracing,
        outcomes=outcomes,
        in_flight=parts.in_flight,
        rate=parts.governor,
    )
    if config.meisa.rate_share is not None:
        metrics.rate_share(config.meisa.rate_share)
    background = _background(server, config, parts, outcomes)
    background += start_reloading(
        config, apply=pipeline.use_rules, client=client, info=info, metrics=metrics,
        signals=install_signals, shadow=shadow is not None,
    )  # fmt: skip
    stopping = _wire_stop(config, pipeline.stop, stop, install_signals, background)
    log.info(
        "%s %s as group %r; /metrics, /healthz, /readyz on %s:%s",
        "consuming" if shadow is None else "shadow run (nothing is sent to Meisa): consuming",
        ", ".join(config.topics),
        config.kafka.get("group.id"),
        config.server.host,
        server.port,
    )
    try:
        halted = await pipeline.run()
        if halted is not None:
            await linger(config.server.halt_linger_seconds, stopping)
    finally:
        server.stop()
        if outcomes is not None:  # the records of the calls the shutdown finished, too
            await outcomes.close(OUTCOMES_CLOSE_SECONDS)
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await parts.governor.aclose()
        if dlq is not None:
            dlq.close()
        if recorder is not None:
            recorder.close()
    if halted is not None:
        print(f"meisa-bridge: halted: {type(halted).__name__}: {halted}", file=sys.stderr)
        return ExitCode.HALTED
    log.info("stopped; the offsets of finished events are committed")
    return ExitCode.OK


def _background(
    server: HealthServer, config: BridgeConfig, parts: _Parts, outcomes: OutcomeWriter | None
) -> list[asyncio.Task[None]]:
    background = [asyncio.create_task(server.serve(), name="health")]
    if config.suppression.enabled:
        background.append(asyncio.create_task(parts.suppression.run(), name="suppression"))
    if outcomes is not None:
        background.append(asyncio.create_task(outcomes.run(), name="outcomes"))
    return background


def _wire_stop(
    config: BridgeConfig,
    stop_pipeline: Callable[[], None],
    stop: asyncio.Event | None,
    install_signals: bool,
    background: list[asyncio.Task[None]],
) -> asyncio.Event:
    """Route `stop` and SIGTERM/SIGINT to the pipeline; the event returned is set by either
    (it also ends the linger after a halt)."""
    stopping = asyncio.Event()

    def stop_all() -> None:
        stopping.set()
        stop_pipeline()

    if stop is not None:
        background.append(asyncio.create_task(_relay(stop.wait(), stop_all)))
    if install_signals:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, _on_signal, sig, config, stop_all)
    return stopping


def _sink(dlq: DeadLetterProducer | None, recorder: ShadowRecorder | None) -> DeadLetterSink | None:
    """Where poison goes: the DLQ, or in a shadow run the recorder."""
    if recorder is None:
        return dlq
    from bridge.shadow import ShadowDeadLetters

    return ShadowDeadLetters(recorder)


def _recorder(shadow: ShadowOptions | None, metrics: Metrics) -> ShadowRecorder | None:
    if shadow is None:
        return None
    from bridge.shadow import ShadowRecorder

    return ShadowRecorder.open(metrics, shadow.output)


def _on_signal(sig: signal.Signals, config: BridgeConfig, stop: Callable[[], None]) -> None:
    log.info(
        "%s received: finishing in-flight calls (up to %g s), then committing offsets",
        sig.name,
        config.pipeline.shutdown_grace_seconds,
    )
    stop()


async def _relay(wait: Awaitable[object], then: Callable[[], None]) -> None:
    await wait
    then()
