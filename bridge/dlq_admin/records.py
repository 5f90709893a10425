"""DLQ records as values: the error headers decoded, the original message restored, filters.

A crash between the DLQ write and the commit of the original offset writes the same message to
the DLQ again after the restart. `collect` shows one record per original message (topic,
partition, offset) and attempt count: the first copy, with `copies` counting them; a redrive of
any copy counts for the message. A message redriven and dead-lettered again carries one more
attempt and is a record of its own.

Redrive bookkeeping is kept in the DLQ topic itself: after a record is redriven, a marker record
(empty value, header `meisa-bridge.redrive.of` = the record's offset) is written to the SAME
partition. A marker always follows the record it marks, lives as long under retention, and needs
no other topic or consumer group; `list` hides markers and shows the records they mark as
redriven, and `redrive` skips them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

from bridge import dlq, errors
from bridge.events import Headers, Record

REDRIVE_OF = "meisa-bridge.redrive.of"  # marker header: the DLQ offset (same partition) redriven
REDRIVE_OUTCOME = "meisa-bridge.redrive.outcome"  # ok | skipped | failed
REDRIVE_TIME = "meisa-bridge.redrive.time"  # epoch ms
_OURS = frozenset(dlq.DLQ_HEADERS)


def _last(headers: Headers, name: str) -> str:
    """The last value of a header (the DLQ's own headers are appended after the original ones)."""
    value = ""
    for key, raw in headers:
        if key == name and raw is not None:
            value = raw.decode("utf-8", "replace")
    return value


def _int(text: str, default: int = 0) -> int:
    try:
        return int(text)
    except ValueError:
        return default


@dataclass(frozen=True, slots=True)
class DlqRecord:
    """One dead-lettered message: where it sits in the DLQ, why it failed, where it came from."""

    partition: int
    offset: int
    error_class: str
    error_message: str
    rule: str
    stage: str
    origin_topic: str
    origin_partition: int
    origin_offset: int
    origin_timestamp: int | None
    attempts: int
    dlq_timestamp: int | None
    key: bytes | None
    value: bytes | None
    headers: Headers  # the original message's headers, without the DLQ's
    redriven: str | None = None  # the marker's outcome once redriven
    copies: int = 1  # DLQ records of the same original message (a crash can write two)

    @property
    def origin(self) -> str:
        return f"{self.origin_topic}/{self.origin_partition}/{self.origin_offset}"

    def original(self) -> Record:
        """The original message at its ORIGINAL topic/partition/offset, so default idempotency
        keys come out as they did the first time it was read."""
        return Record(
            topic=self.origin_topic,
            partition=self.origin_partition,
            offset=self.origin_offset,
            key=self.key,
            value=self.value,
            headers=self.headers,
            timestamp=self.origin_timestamp,
        )

    def summary(self) -> dict[str, Any]:
        """JSON-ready fields (no key, value or headers: those are shown by `dlq show`)."""
        data = asdict(self)
        for name in ("key", "value", "headers"):
            del data[name]
        data["origin"] = self.origin
        data["status"] = f"redriven:{self.redriven}" if self.redriven else "pending"
        return data


@dataclass(frozen=True, slots=True)
class Marker:
    partition: int
    of_offset: int
    outcome: str


def decode(raw: Record) -> DlqRecord | Marker:
    headers = raw.headers
    marked = _last(headers, REDRIVE_OF)
    if marked:
        return Marker(raw.partition, _int(marked, -1), _last(headers, REDRIVE_OUTCOME))
    ts = _last(headers, dlq.TIMESTAMP)
    return DlqRecord(
        partition=raw.partition,
        offset=raw.offset,
        error_class=_last(headers, dlq.ERROR_CLASS),
        error_message=_last(headers, dlq.ERROR_MESSAGE),
        rule=_last(headers, dlq.RULE),
        stage=_last(headers, dlq.STAGE),
        origin_topic=_last(headers, dlq.TOPIC),
        origin_partition=_int(_last(headers, dlq.PARTITION), -1),
        origin_offset=_int(_last(headers, dlq.OFFSET), -1),
        origin_timestamp=_int(ts) if ts else None,
        attempts=_int(_last(headers, dlq.ATTEMPTS), 1),
        dlq_timestamp=raw.timestamp,
        key=raw.key,
        value=raw.value,
        headers=tuple((k, v) for k, v in headers if k not in _OURS),
    )


def collect(raws: Iterable[Record]) -> list[DlqRecord]:
    """DLQ records in (partition, offset) order, each with its redrive outcome if marked."""
    records: list[DlqRecord] = []
    marks: dict[tuple[int, int], str] = {}
    for raw in raws:
        item = decode(raw)
        if isinstance(item, Marker):
            marks[(item.partition, item.of_offset)] = item.outcome or "ok"
        else:
            records.append(item)
    by_origin: dict[tuple[str, int, int, int], DlqRecord] = {}  # insertion order: first copies
    for rec in sorted(records, key=lambda r: (r.partition, r.offset)):
        mark = marks.get((rec.partition, rec.offset))
        # A copy written again across a crash repeats the origin and the attempts; a message that
        # failed again after a redrive comes back with attempts + 1 and is a record of its own.
        origin = (rec.origin_topic, rec.origin_partition, rec.origin_offset, rec.attempts)
        if rec.origin_offset < 0:  # no origin headers: never folded with another record
            origin = ("", rec.partition, -1 - rec.offset, 0)
        seen = by_origin.get(origin)
        if seen is None:
            by_origin[origin] = replace(rec, redriven=mark)
        else:
            by_origin[origin] = replace(
                seen, copies=seen.copies + 1, redriven=seen.redriven or mark
            )
    return list(by_origin.values())


def marker_headers(rec: DlqRecord, outcome: str, now_ms: int) -> list[tuple[str, bytes]]:
    return [
        (REDRIVE_OF, str(rec.offset).encode()),
        (REDRIVE_OUTCOME, outcome.encode()),
        (REDRIVE_TIME, str(now_ms).encode()),
    ]


@dataclass(frozen=True, kw_only=True)
class Selection:
    """Which records a command applies to. Offsets are DLQ offsets, both ends inclusive."""

    partition: int | None = None
    offsets: tuple[int, int] | None = None
    error_class: str | None = None
    rule: str | None = None
    origin_topic: str | None = None
    include_redriven: bool = False

    def __call__(self, rec: DlqRecord) -> bool:
        checks = (
            self.include_redriven or rec.redriven is None,
            self.partition is None or rec.partition == self.partition,
            self.offsets is None or self.offsets[0] <= rec.offset <= self.offsets[1],
            self.error_class is None or error_class_matches(rec.error_class, self.error_class),
            self.rule is None or rec.rule == self.rule,
            self.origin_topic is None or rec.origin_topic == self.origin_topic,
        )
        return all(checks)


def error_class_matches(actual: str, wanted: str) -> bool:
    """Exact name, or a subclass in the error tree (MappingError matches SpecFieldError)."""
    if actual.lower() == wanted.lower():
        return True
    base, cls = getattr(errors, wanted, None), getattr(errors, actual, None)
    return isinstance(base, type) and isinstance(cls, type) and issubclass(cls, base)


def parse_offsets(text: str) -> tuple[int, int]:
    """`A-B`, `A-` (to the end) or `A` (just one)."""
    first, sep, last = text.partition("-")
    try:
        start = int(first)
        end = int(last) if last else (2**63 - 1 if sep else start)
    except ValueError:
        raise errors.ConfigError(f"expected A-B, got {text!r}", field="--offsets") from None
    return start, end


# -- rendering --

COLUMNS = ("partition", "offset", "status", "stage", "error_class", "rule", "origin", "attempts")


def _time(ms: int | None) -> str:
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def table(records: list[DlqRecord], *, message_width: int = 60) -> str:
    rows = [
        [
            *(str(r.summary()[c]) for c in COLUMNS),
            _time(r.dlq_timestamp),
            r.error_message[:message_width],
        ]
        for r in records
    ]
    head = [*(c.upper().replace("_", " ") for c in COLUMNS), "TIME", "MESSAGE"]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows, strict=False)]
    lines = [
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
        for row in [head, *rows]
    ]
    lines.append(f"{len(records)} record(s)")
    return "\n".join(lines)


def as_json(records: list[DlqRecord]) -> str:
    return json.dumps([r.summary() for r in records], indent=2)


def show(rec: DlqRecord, decoded: Any, *, reveal: bool) -> str:
    """Headers decoded, then the original value pretty-printed (emails masked unless `reveal`)."""
    from bridge.observability import mask_email

    body = {
        **rec.summary(),
        "origin_time": _time(rec.origin_timestamp),
        "key": rec.key.decode("utf-8", "replace") if rec.key is not None else None,
        "headers": {k: (v.decode("utf-8", "replace") if v else v) for k, v in rec.headers},
        "value": decoded,
    }
    text = json.dumps(body, indent=2, ensure_ascii=False, default=str)
    return text if reveal else mask_email(text)


def value_for_show(rec: DlqRecord) -> Any:
    """The value as JSON when it is JSON, else as text, else as hex."""
    if rec.value is None:
        return None
    try:
        return json.loads(rec.value)
    except ValueError:
        pass
    try:
        return rec.value.decode("utf-8")
    except UnicodeDecodeError:
        return rec.value.hex()
