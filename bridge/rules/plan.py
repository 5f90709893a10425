"""`meisa-bridge plan`: the exact calls the rules would make for a file of events.

Input: JSON Lines; blank lines are skipped. Each line is either
- an event object, encoded as JSON and decoded through the configured codec, on topic `events`
  (or `--topic`), partition 0, offset = the line's index in the file (0-based); or
- a raw message object `{"topic", "partition", "offset", "key", "headers", "value"}` (it has a
  `value` member and at least one of the others). `value` is a JSON object/array (encoded as
  JSON), a string (its UTF-8 bytes), or `{"base64": "..."}` for binary values such as Avro.
  `headers` is an object of string values or a list of [name, value] pairs; missing
  coordinates default as for an event.

Output: one JSON object per call, or one per event that produced none, with `outcome`
(`no_match`, `decode_error`, `map_error`) and `reason`.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from bridge.codecs import Decoder
from bridge.errors import DecodeError
from bridge.events import Envelope, Record
from bridge.identity import ContactIdentity
from bridge.meisa.calls import (
    BulkKey,
    MeisaCall,
    bulk_key,
    bulk_of,
    fold_tag,
    folds_into,
    merge_upserts,
)
from bridge.meisa.models import BULK_ENROLL_MAX
from bridge.outcome import Unreadable, read_record
from bridge.rules.engine import RuleSet

RAW_KEYS = ("topic", "partition", "offset", "key", "headers")


def _bytes(value: Any) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, dict) and set(value) == {"base64"}:
        return base64.b64decode(value["base64"], validate=True)
    return orjson.dumps(value)


def _timestamp(value: Any) -> int | None:
    """Kafka timestamps are epoch milliseconds."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"timestamp must be epoch milliseconds, got {value!r}")
    return int(value)


def _headers(value: Any) -> list[tuple[str, bytes | None]]:
    if value is None:
        return []
    pairs = value.items() if isinstance(value, dict) else value
    return [(str(k), None if v is None else str(v).encode("utf-8")) for k, v in pairs]


def _message(line: str, index: int, topic: str) -> dict[str, Any]:
    """The decoder's keyword arguments for one input line; raises DecodeError."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"line {index + 1}: invalid JSON: {exc}") from None
    coords = {"topic": topic, "partition": 0, "offset": index}
    if isinstance(obj, dict) and "value" in obj and any(k in obj for k in RAW_KEYS):
        try:
            return {
                "topic": str(obj.get("topic", topic)),
                "partition": int(obj.get("partition", 0)),
                "offset": int(obj.get("offset", index)),
                "key": _bytes(obj.get("key")),
                "value": _bytes(obj["value"]),
                "headers": _headers(obj.get("headers")),
                "timestamp": _timestamp(obj.get("timestamp")),
            }
        except (TypeError, ValueError) as exc:
            raise DecodeError(f"line {index + 1}: bad raw message: {exc}") from None
    return {**coords, "key": None, "value": line.encode("utf-8"), "headers": [], "timestamp": None}


def _event_info(env: Envelope | None, msg: dict[str, Any]) -> dict[str, Any]:
    return {
        "topic": msg.get("topic"),
        "partition": msg.get("partition"),
        "offset": msg.get("offset"),
        "id": env.id if env else None,
        "type": env.type if env else None,
    }


@dataclass(frozen=True, slots=True)
class Mapped:
    """One input line through decode and map: its calls, or the outcome that made none.

    `outcome` is None when calls were made; else `no_match`, `decode_error` or `map_error`.
    """

    event: dict[str, Any]
    envelope: Envelope | None
    calls: list[MeisaCall]
    outcome: str | None = None
    reason: str = ""


def map_lines(
    lines: Iterable[str],
    rules: RuleSet,
    decoder: Decoder,
    *,
    topic: str = "events",
    replay: bool = False,
) -> Iterator[Mapped]:
    """Decode and map each non-blank line, as the live bridge does for a Kafka message."""
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        msg: dict[str, Any] = {"topic": topic, "partition": 0, "offset": index}
        try:
            msg = _message(line, index, topic)
        except DecodeError as exc:
            yield Mapped(_event_info(None, msg), None, [], "decode_error", str(exc))
            continue
        read = read_record(_record(msg), decoder, rules, replay=replay)
        env = read.envelope
        if isinstance(read, Unreadable):
            outcome = "decode_error" if read.stage == "decode" else "map_error"
            yield Mapped(_event_info(env, msg), env, [], outcome, str(read.error))
        elif env is None:
            yield Mapped(_event_info(env, msg), env, [], "no_match", "tombstone (no value)")
        elif not read.calls:
            reason = "no rule matched" if not rules.matching(env.type, env.topic) else "when false"
            yield Mapped(_event_info(env, msg), env, [], "no_match", reason)
        else:
            yield Mapped(_event_info(env, msg), env, read.calls)


def _record(msg: dict[str, Any]) -> Record:
    return Record(
        topic=msg["topic"],
        partition=msg["partition"],
        offset=msg["offset"],
        key=msg["key"],
        value=msg["value"],
        headers=tuple(msg["headers"]),
        timestamp=msg["timestamp"],
    )


def plan_lines(
    lines: Iterable[str], rules: RuleSet, decoder: Decoder, *, topic: str = "events"
) -> Iterator[tuple[dict[str, Any], MeisaCall | None, dict[str, Any] | None]]:
    """(event info, call, None) per call, or (event info, None, {outcome, reason})."""
    for mapped in map_lines(lines, rules, decoder, topic=topic):
        if mapped.outcome is not None:
            yield mapped.event, None, {"outcome": mapped.outcome, "reason": mapped.reason}
        for call in mapped.calls:
            yield mapped.event, call, None


Row = tuple[dict[str, Any], MeisaCall | None, dict[str, Any] | None]


def coalesce_rows(rows: Iterable[Row]) -> list[Row]:
    """The calls after coalescing, as the pipeline makes them on a backlog.

    "Adjacent" is per person (external_id and email linked, bridge.identity): an upsert
    merges into that person's previous pending upsert, and an add_tag folds into its
    `tag_names`, when no other call for the same person came in between. Enrolments to one
    sequence go as one bulk-enroll (up to 500) until a later call of a person in the batch
    closes it (bridge.pipeline.bulk; the window is taken as long as the file). The merged call
    keeps the position and event of the first (the pipeline sends it when the first's turn
    comes) and lists every merged event's offset in `coalesced_offsets`.
    """
    return _Coalescer().run(rows)


class _Coalescer:
    def __init__(self) -> None:
        self.out: list[Row] = []
        self.open_upsert: dict[str, int] = {}  # lane -> index in out of its mergeable upsert
        self.identity = ContactIdentity()  # one person's lane across external_id and email
        self.batches: dict[BulkKey, tuple[int, list[MeisaCall]]] = {}  # -> (index, enrolls)
        self.in_batch: dict[str, BulkKey] = {}  # lane -> the open batch holding its enrol

    def run(self, rows: Iterable[Row]) -> list[Row]:
        for row in rows:
            call = row[1]
            if call is None or call.traits.trigger:  # triggers run in a lane of their own
                self.out.append(row)
            else:
                self._call(row, call)
        return self.out

    def _call(self, row: Row, call: MeisaCall) -> None:
        lane = self.identity.key_for(call.body, fallback=call.contact_key)
        key = lane.key
        if lane.merged_from is not None:  # two lanes became one person: nothing is adjacent
            self.open_upsert.pop(lane.merged_from, None)
            self.open_upsert.pop(key, None)
        self._close(self.in_batch.get(key))  # a later call of a person in a batch sends it
        at = self.open_upsert.get(key)
        first = None if at is None else self.out[at][1]
        if first is not None and at is not None:
            if call.kind == "upsert" and call.coalesce:  # `first` is a mergeable upsert
                self._fold(at, merge_upserts(first, call), row)
                return
            if folds_into(first, call):
                self._fold(at, fold_tag(first, call), row)
                return
        if call.kind == "upsert" and call.coalesce:
            self.open_upsert[key] = len(self.out)
        else:
            self.open_upsert.pop(key, None)
        batch = bulk_key(call)
        if batch is not None and self._enrol(batch, key, call, row):
            return
        self.out.append(row)

    def _fold(self, at: int, merged: MeisaCall, row: Row) -> None:
        event, _, extra = self.out[at]
        offsets = (extra or {}).get("coalesced_offsets", [event["offset"]])
        self.out[at] = (event, merged, {"coalesced_offsets": [*offsets, row[0]["offset"]]})

    def _enrol(self, batch: BulkKey, lane: str, call: MeisaCall, row: Row) -> bool:
        """Add an enrolment to its open batch (True), or open one with it (False)."""
        self.in_batch[lane] = batch
        found = self.batches.get(batch)
        if found is None:
            self.batches[batch] = (len(self.out), [call])
            return False
        at, calls = found
        calls.append(call)
        bulk = bulk_of(calls)
        self._fold(at, bulk, row)
        if len(calls) >= BULK_ENROLL_MAX:
            self._close(batch)
        return True

    def _close(self, batch: BulkKey | None) -> None:
        if batch is None or self.batches.pop(batch, None) is None:
            return
        self.in_batch = {lane: b for lane, b in self.in_batch.items() if b != batch}


def row_json(row: Row) -> dict[str, Any]:
    event, call, outcome = row
    if call is None:
        return {"event": event, **(outcome or {})}
    out: dict[str, Any] = {
        "event": event,
        "rule": call.rule,
        "action": call.action,
        "endpoint": call.endpoint,
        "body": dict(call.body),
    }
    if call.max_age is not None:
        out["max_age"] = call.max_age
    if outcome:  # the offsets of the upserts --coalesce folded into this one
        out.update(outcome)
    return out
