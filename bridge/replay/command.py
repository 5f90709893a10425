"""`meisa-bridge replay`: plan the range, read and fold it, then send (or, with --dry-run, print).

Exit codes: 0 complete; 1 complete, but some calls were rejected (see the log); 2 usage or
configuration error; 3 halted (the key is wrong or lacks a scope) - run again to continue.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import re
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO, cast

from bridge.config import BridgeConfig
from bridge.errors import ConfigError, HaltError, StartupRefused
from bridge.exitcodes import ExitCode
from bridge.kafka.protocols import RangeReader
from bridge.meisa.calls import SCOPES, CallKind
from bridge.meisa.models import PingInfo
from bridge.replay.budget import Budget, budget_from
from bridge.replay.progress import Progress
from bridge.replay.report import print_plan, print_summary
from bridge.replay.runner import ReadPhase, SendPhase
from bridge.replay.state import StateStore

DEFAULT_STATE_DIR = ".meisa-bridge/replay"
OpenReader = Callable[[Mapping[str, Any], str], RangeReader]
_RELATIVE = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_time(spec: str, *, now: float) -> int | None:
    """Epoch ms for `--from`/`--to`: earliest/now -> None, ISO 8601, or an age such as 7d, 12h."""
    text = spec.strip().lower()
    if text in ("earliest", "now"):
        return None
    match = _RELATIVE.match(text)
    if match:
        return int((now - int(match[1]) * _UNITS[match[2]]) * 1000)
    try:
        moment = datetime.fromisoformat(spec.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"cannot read {spec!r} as a time: use earliest, now, an ISO 8601 time "
            "(2026-01-31 or 2026-01-31T08:00:00Z) or an age like 30m, 12h, 7d",
            field="--from/--to",
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


@dataclass(frozen=True, kw_only=True)
class ReplayOptions:
    topics: tuple[str, ...]
    from_spec: str
    to_spec: str
    dry_run: bool
    state_dir: Path
    run_name: str
    output: str = "text"

    @property
    def group(self) -> str:
        return f"meisa-bridge-replay-{self.run_name}"

    def spec(self) -> str:
        return json.dumps([list(self.topics), self.from_spec, self.to_spec])


def options_from(args: argparse.Namespace, config: BridgeConfig) -> ReplayOptions:
    topics = tuple(args.topics or config.topics)
    if not topics:
        raise ConfigError("no topics: pass --topics or set topics: in the config", field="topics")
    spec = json.dumps([sorted(topics), args.from_, args.to])
    # The default name depends only on what is replayed, so the same command resumes the run.
    name = args.run_name or "run-" + hashlib.sha256(spec.encode()).hexdigest()[:10]
    if not re.fullmatch(r"[A-Za-z0-9._-]+", name):
        raise ConfigError("use letters, digits, '.', '_' and '-' only", field="--run-name")
    return ReplayOptions(
        topics=topics,
        from_spec=args.from_,
        to_spec=args.to,
        dry_run=args.dry_run,
        state_dir=Path(args.state_dir or DEFAULT_STATE_DIR),
        run_name=name,
        output=getattr(args, "format", "text"),
    )


def replay_command(args: argparse.Namespace) -> int:
    from bridge.config import load_config
    from bridge.observability import configure_logging, register_config_secrets

    try:
        # A dry run needs no key (without one it estimates from the configured or default limits),
        # so an unset ${MEISA_API_KEY} must not stop it.
        config = load_config(args.config, strict_env=not args.dry_run)
        register_config_secrets(config)
        configure_logging(config.logging)
        options = options_from(args, config)
        return run_replay(config, options)
    except ConfigError as exc:
        print(f"meisa-bridge replay: {exc}", file=sys.stderr)
        return ExitCode.REFUSED
    except (HaltError, StartupRefused) as exc:  # StartupRefused: the ledger did not load
        print(
            f"meisa-bridge replay halted: {exc}\nrun the same command again to continue",
            file=sys.stderr,
        )
        return ExitCode.HALTED


def kafka_reader(kafka: Mapping[str, Any], group: str) -> RangeReader:
    from bridge.kafka.ranges import KafkaRangeReader

    return KafkaRangeReader(kafka, group)


def run_replay(
    config: BridgeConfig,
    options: ReplayOptions,
    *,
    out: TextIO = sys.stdout,
    open_reader: OpenReader = kafka_reader,
) -> int:
    """`open_reader(kafka, group)` reads the topics (the in-memory broker's reader in tests)."""
    if options.dry_run:
        with tempfile.TemporaryDirectory(prefix="meisa-bridge-replay-") as tmp:
            return _run(config, options, Path(tmp) / "dry-run.sqlite", out, open_reader)
    path = options.state_dir / f"{options.run_name}.sqlite"
    return _run(config, options, path, out, open_reader)


def _run(
    config: BridgeConfig, options: ReplayOptions, path: Path, out: TextIO, open_reader: OpenReader
) -> int:
    store = StateStore(path)
    try:
        _prepare(store, config, options, open_reader)
        ping = asyncio.run(_ping(config)) if config.meisa.api_key else None
        budget = budget_from(config.meisa, ping)
        if ping is None and options.dry_run:
            _say_no_key(budget)
        progress = Progress(stream=sys.stderr, clock=time.monotonic, budget=budget)
        if store.get_meta("phase") == "read":
            _read(store, config, open_reader(config.kafka, options.group), progress)
        if options.dry_run:
            print_plan(store, options, budget, out=out, now=time.time())
            return ExitCode.OK
        if store.get_meta("phase") == "send":
            _check_scopes(store, ping)
            asyncio.run(_send(store, config, progress))
            store.set_meta("phase", "done")
        progress.finish()
        return print_summary(store, options, out=out)
    finally:
        store.close()


def _say_no_key(budget: Budget) -> None:
    where = "the configured limits" if budget.origin == "config" else "the spec's default limits"
    print(
        f"meisa-bridge replay: no Meisa API key (MEISA_API_KEY): the estimate uses {where}, "
        f"{budget.describe()}, not the key's own (GET /ping)",
        file=sys.stderr,
    )


def _prepare(
    store: StateStore, config: BridgeConfig, options: ReplayOptions, open_reader: OpenReader
) -> None:
    """A new run fixes its range now; a resumed run must be the same replay."""
    existing = store.get_meta("spec")
    if existing is not None:
        if existing != options.spec():
            raise ConfigError(
                f"state file {store.path} belongs to another replay ({existing}); "
                "pass a different --run-name or remove the file",
                field="--run-name",
            )
        return
    now = time.time()
    start_ms = parse_time(options.from_spec, now=now)
    end_ms = parse_time(options.to_spec, now=now)
    reader = open_reader(config.kafka, options.group)
    try:
        ranges = reader.plan_ranges(list(options.topics), start_ms, end_ms)
    finally:
        reader.close()
    store.init_ranges(ranges)
    store.set_meta("spec", options.spec())
    store.set_meta("phase", "read")


def _read(store: StateStore, config: BridgeConfig, reader: RangeReader, progress: Progress) -> None:
    """Closes `reader`."""
    from bridge.codecs import build_decoder

    ranges = store.ranges()
    total = sum(r.end - r.start for r in ranges)
    done = sum(r.position - r.start for r in ranges)
    progress.update(events_total=total, events_read=done)
    try:
        batches = reader.read_ranges(ranges, batch_size=config.pipeline.batch_size)
        ReadPhase(store, build_decoder(config.codec), config.rules, progress=progress).run(
            batches, already_read=done
        )
    finally:
        reader.close()
    store.set_meta("phase", "send")


async def _ping(config: BridgeConfig) -> PingInfo:
    from bridge.meisa.client import MeisaClient

    async with MeisaClient(config.meisa) as client:
        return await client.ping()


def _check_scopes(store: StateStore, ping: PingInfo | None) -> None:
    from bridge.meisa.scopes import check_scopes

    if ping is None:
        raise HaltError("no Meisa API key: set MEISA_API_KEY (or use --dry-run)")
    planned, _ = store.planned_by_endpoint(time.time())
    needed: dict[str, list[str]] = {}
    for kind in planned:
        needed.setdefault(SCOPES[cast(CallKind, kind)], []).append(f"replayed {kind} calls")
    check_scopes(needed, ping.scopes)


async def _send(store: StateStore, config: BridgeConfig, progress: Progress) -> None:
    from bridge.kafka.ledger import open_ledger
    from bridge.meisa.delivery import open_deliverer

    async with (
        open_ledger(config) as ledger,
        open_deliverer(config.meisa, ledger) as deliverer,
    ):
        workers = config.pipeline.max_in_flight
        await SendPhase(
            store, deliverer.deliver, clock=time.time, workers=workers, progress=progress
        ).run()
