"""`meisa-bridge dlq list|show|redrive --config FILE`.

Exit codes (bridge.exitcodes): FAILED when a redrive finished but some records failed again (they
are back in the DLQ); REFUSED for a usage or configuration error, or no such record; HALTED when
the key is wrong or lacks a scope.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any, TextIO

from bridge.config import BridgeConfig
from bridge.dlq_admin import records as rec_mod
from bridge.dlq_admin.records import DlqRecord, Marker, Selection
from bridge.dlq_admin.redrive import Redriver, RedriveSummary
from bridge.errors import ConfigError, HaltError, PoisonError, RetryableError, StartupRefused
from bridge.exitcodes import ExitCode
from bridge.kafka.protocols import RangeReader

ADMIN_GROUP = "meisa-bridge-dlq-admin"  # identifies the reader; it never commits


def dlq_command(args: argparse.Namespace, *, out: TextIO = sys.stdout) -> int:
    from bridge.config import load_config
    from bridge.observability import configure_logging, register_config_secrets

    try:
        # Only a real redrive calls Meisa: the others must work where ${MEISA_API_KEY} is unset.
        calls_meisa = args.action == "redrive" and not getattr(args, "dry_run", False)
        config = load_config(args.config, strict_env=calls_meisa)
        register_config_secrets(config)
        configure_logging(config.logging)
        if not config.dlq.topic:
            raise ConfigError("no dead_letter_topic in the config", field="dead_letter_topic")
        if args.action == "show":
            return show(config, args, out=out)
        selection = selection_from(args)
        if args.action == "list":
            return list_records(config, selection, args.format, out=out)
        return asyncio.run(
            redrive(config, selection, dry_run=args.dry_run, fmt=args.format, out=out)
        )
    except ConfigError as exc:
        print(f"meisa-bridge dlq: {exc}", file=sys.stderr)
        return ExitCode.REFUSED
    except (HaltError, StartupRefused) as exc:  # StartupRefused: the ledger did not load
        print(f"meisa-bridge dlq halted: {exc}", file=sys.stderr)
        return ExitCode.HALTED


def selection_from(args: argparse.Namespace) -> Selection:
    return Selection(
        partition=args.partition,
        offsets=rec_mod.parse_offsets(args.offsets) if args.offsets else None,
        error_class=args.error_class,
        rule=args.rule,
        origin_topic=args.origin_topic,
        include_redriven=bool(getattr(args, "all", False)),
    )


def load_records(config: BridgeConfig, reader: RangeReader | None = None) -> list[DlqRecord]:
    """Every record of the DLQ topic, read with `reader` (the Kafka reader unless given)."""
    assert config.dlq.topic is not None
    if reader is None:
        from bridge.kafka.ranges import KafkaRangeReader

        reader = KafkaRangeReader(config.kafka, ADMIN_GROUP)
    try:
        return rec_mod.collect(reader.scan_topic(config.dlq.topic))
    finally:
        reader.close()


def list_records(
    config: BridgeConfig,
    selection: Selection,
    fmt: str,
    *,
    out: TextIO,
    reader: RangeReader | None = None,
) -> int:
    chosen = [r for r in load_records(config, reader) if selection(r)]
    print(rec_mod.as_json(chosen) if fmt == "json" else rec_mod.table(chosen), file=out)
    return ExitCode.OK


def show(config: BridgeConfig, args: argparse.Namespace, *, out: TextIO) -> int:
    from bridge.kafka.ranges import KafkaRangeReader

    if args.partition is None or args.offset is None:
        raise ConfigError("show needs --partition and --offset", field="--partition/--offset")
    assert config.dlq.topic is not None
    reader = KafkaRangeReader(config.kafka, ADMIN_GROUP)
    try:
        raw = reader.read_one(config.dlq.topic, args.partition, args.offset)
    finally:
        reader.close()
    if raw is None:
        print(f"no record at {config.dlq.topic}/{args.partition}/{args.offset}", file=sys.stderr)
        return ExitCode.REFUSED
    item = rec_mod.decode(raw)
    if isinstance(item, Marker):
        print(f"redrive marker: offset {item.of_offset} was redriven ({item.outcome})", file=out)
        return ExitCode.OK
    print(rec_mod.show(item, _decoded_value(config, item), reveal=args.reveal), file=out)
    return ExitCode.OK


def _decoded_value(config: BridgeConfig, rec: DlqRecord) -> Any:
    """The event as the codec sees it (Avro too); the raw value when it does not decode."""
    from bridge.codecs import build_decoder

    try:
        envelope = rec.original().decode_with(build_decoder(config.codec))
    except (PoisonError, RetryableError):  # RetryableError: the schema registry is away
        return rec_mod.value_for_show(rec)
    return envelope.data


async def redrive(
    config: BridgeConfig,
    selection: Selection,
    *,
    dry_run: bool,
    fmt: str,
    out: TextIO,
    reader: RangeReader | None = None,
) -> int:
    from bridge.codecs import build_decoder

    everything = load_records(config, reader)
    chosen = [r for r in everything if selection(r)]
    decoder = build_decoder(config.codec)
    if dry_run:
        redriver = Redriver(
            decoder, config.rules, deliver=None, dead_letter=None, mark=None, clock=time.time
        )
        summary = await redriver.run(chosen)
    else:
        summary = await _redrive_for_real(config, decoder, chosen)
    _print_summary(summary, everything, dry_run=dry_run, fmt=fmt, out=out)
    failed = summary.outcomes.get("failed") and not dry_run
    return ExitCode.FAILED if failed else ExitCode.OK


async def _redrive_for_real(
    config: BridgeConfig, decoder: Any, chosen: list[DlqRecord]
) -> RedriveSummary:
    from bridge.dlq import DeadLetterProducer
    from bridge.kafka.ledger import open_ledger
    from bridge.kafka.producer import KafkaProducer
    from bridge.meisa.delivery import open_deliverer

    topic = config.dlq.topic
    assert topic is not None
    producer = KafkaProducer(config.kafka)
    dead_letters = DeadLetterProducer(producer, topic)

    def mark(rec: DlqRecord, outcome: str) -> None:
        headers = rec_mod.marker_headers(rec, outcome, int(time.time() * 1000))
        producer.send_sync(topic, partition=rec.partition, value=b"", headers=headers)

    async with (
        open_ledger(config) as ledger,
        open_deliverer(config.meisa, ledger) as deliverer,
    ):
        redriver = Redriver(
            decoder,
            config.rules,
            deliver=deliverer.deliver,
            dead_letter=dead_letters.send,
            mark=mark,
            clock=time.time,
        )
        try:
            return await redriver.run(chosen)
        finally:
            dead_letters.close()


def _print_summary(
    summary: RedriveSummary, everything: list[DlqRecord], *, dry_run: bool, fmt: str, out: TextIO
) -> None:
    already = sum(1 for r in everything if r.redriven)
    report = {
        "dry_run": dry_run,
        "selected": summary.selected,
        "already_redriven": already,
        "outcomes": summary.outcomes,
        "calls": summary.calls,
    }
    if fmt == "json":
        print(json.dumps(report), file=out)
        return
    verb = "would redrive" if dry_run else "redrove"
    print(
        f"{verb} {summary.selected} record(s) ({already} redriven earlier, not selected)", file=out
    )
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(summary.outcomes.items())) or "none"
    print(f"  outcomes: {outcomes}", file=out)
    calls = ", ".join(f"{k} {v}" for k, v in sorted(summary.calls.items())) or "none"
    print(f"  calls {'planned' if dry_run else 'sent'}: {calls}", file=out)
    if summary.outcomes.get("failed") and not dry_run:
        print("  failed records are back in the DLQ with attempts + 1", file=out)
