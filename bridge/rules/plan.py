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
from bridge.meisa.calls import MeisaCall, merge_upserts
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
    """Merge adjacent upserts of the same contact, as the pipeline does on a backlog.

    "Adjacent" is per person (external_id and email linked, bridge.identity): an upsert
    merges into that person's previous pending upsert when no other call for the same person
    came in between. The merged call keeps the position and event of the first (the pipeline
    sends it when the first's turn comes) and lists every merged event's offset in
    `coalesced_offsets`.
    """
    out: list[Row] = []
    open_upsert: dict[str, int] = {}  # lane -> index in out of its mergeable upsert
    identity = ContactIdentity()  # one person's lane across external_id and email, as live
    for row in rows:
        _, call, _ = row
        if call is None or call.traits.trigger:  # triggers run in a lane of their own
            out.append(row)
            continue
        lane = identity.key_for(call.body, fallback=call.contact_key)
        key = lane.key
        if lane.merged_from is not None:  # two lanes became one person: nothing is adjacent
            open_upsert.pop(lane.merged_from, None)
            open_upsert.pop(key, None)
        at = open_upsert.get(key)
        if call.kind == "upsert" and call.coalesce and at is not None:
            event, first, extra = out[at]
            assert first is not None
            offsets = (extra or {}).get("coalesced_offsets", [event["offset"]])
            merged = {"coalesced_offsets": [*offsets, row[0]["offset"]]}
            out[at] = (event, merge_upserts(first, call), merged)
            continue
        if call.kind == "upsert" and call.coalesce:
            open_upsert[key] = len(out)
        else:
            open_upsert.pop(key, None)
        out.append(row)
    return out


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
