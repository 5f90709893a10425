"""`status` output: a table for people, one JSON object for scripts (`--json`)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from bridge.kafka.protocols import GroupMember, TopicPartition
from bridge.status.model import BridgeView, Pace, Status


def duration(seconds: float | None) -> str:
    """1h02m, 3m05s, 42s; 'not shrinking' for None."""
    if seconds is None:
        return "not shrinking"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def as_json(status: Status) -> str:
    doc: dict[str, Any] = {
        "group": status.group.group,
        "protocol": status.group.protocol,
        "state": status.group.state,
        "assignor": status.group.assignor,
        "lag": status.lag,
        "partitions": [asdict(p) for p in status.partitions],
        "missing_topics": status.missing_topics,
        "members": [_member_json(m) for m in status.group.members],
        "dead_letter": None if status.dead_letters is None else asdict(status.dead_letters),
        "pace": None if status.pace is None else asdict(status.pace),
        "bridge": None if status.bridge is None else _bridge_json(status.bridge, status.lag),
    }
    return json.dumps(doc, indent=2)


def _member_json(m: GroupMember) -> dict[str, Any]:
    doc = asdict(m)
    doc["assignment"] = [list(tp) for tp in m.assignment]
    doc["target"] = None if m.target is None else [list(tp) for tp in m.target]
    return doc


def _bridge_json(view: BridgeView, lag: int) -> dict[str, Any]:
    doc: dict[str, Any] = {"url": view.url, "reachable": view.budget is not None}
    doc["error"] = view.error
    if view.budget is not None:
        doc.update(asdict(view.budget))
        doc["eta_at_budget_seconds"] = view.budget.eta_at_budget(lag)
    return doc


def as_text(status: Status) -> str:
    lines = [_group_line(status), ""]
    if status.partitions:
        lines += _partition_table(status)
    lines.append(f"total lag {status.lag:,}")
    if status.missing_topics:
        lines.append(f"topics that do not exist: {', '.join(status.missing_topics)}")
    lines += ["", *_members(status.group.members)]
    dlq = status.dead_letters
    if dlq is not None:
        size = "does not exist" if dlq.records is None else f"{dlq.records:,} records"
        lines.append(f"dead-letter topic {dlq.topic}: {size}")
    if status.pace is not None:
        lines.append(_pace(status.pace))
    if status.bridge is not None:
        lines += _bridge(status.bridge, status.lag)
    return "\n".join(lines)


def _group_line(status: Status) -> str:
    g = status.group
    if g.state == "dead":
        return f"group {g.group}: not known to the broker (no member, nothing committed)"
    n = len(g.members)
    assignor = f", assignor {g.assignor}" if g.assignor else ""
    members = f"{n} member{'s' * (n != 1)}"
    return f"group {g.group}: {g.protocol} protocol, {g.state}, {members}{assignor}"


def _partition_table(status: Status) -> list[str]:
    short = {m.member_id: _member_name(i) for i, m in enumerate(status.group.members)}
    rows = [("TOPIC", "PARTITION", "COMMITTED", "END", "LAG", "MEMBER")]
    for p in status.partitions:
        committed = "-" if p.committed is None else str(p.committed)
        owner = "-" if p.owner is None else short.get(p.owner, p.owner)
        rows.append((p.topic, str(p.partition), committed, str(p.end), f"{p.lag:,}", owner))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def _member_name(index: int) -> str:
    return f"#{index + 1}"


def _members(members: tuple[GroupMember, ...]) -> list[str]:
    if not members:
        return ["members: none (no bridge is running in this group)"]
    lines = ["members:"]
    for i, m in enumerate(members):
        lines.append(
            f"  {_member_name(i)} {m.member_id} client {m.client_id} host {m.host}: "
            f"{_tps(m.assignment) or 'no partitions'}"
        )
        if m.target is not None and m.target != m.assignment:
            lines.append(f"     moving to: {_tps(m.target) or 'no partitions'}")
    return lines


def _tps(tps: tuple[TopicPartition, ...]) -> str:
    by_topic: dict[str, list[int]] = {}
    for topic, partition in tps:
        by_topic.setdefault(topic, []).append(partition)
    return ", ".join(f"{t}[{','.join(map(str, ps))}]" for t, ps in sorted(by_topic.items()))


def _pace(pace: Pace) -> str:
    if pace.eta_seconds is None:
        eta = "the lag is not shrinking"
    else:
        eta = "caught up" if pace.eta_seconds == 0 else f"lag gone in {duration(pace.eta_seconds)}"
    return (
        f"pace over {pace.seconds:.1f} s: {pace.committed_per_second:,.1f} messages/s committed, "
        f"{pace.arriving_per_second:,.1f}/s arriving; {eta}"
    )


def _bridge(view: BridgeView, lag: int) -> list[str]:
    if view.budget is None:
        return [f"bridge metrics at {view.url}: not reachable ({view.error})"]
    b = view.budget
    key = " and ".join(
        f"{v:g}/{w}" for v, w in ((b.key_per_minute, "min"), (b.key_per_hour, "h")) if v
    )
    share = "" if b.share is None else f", share {b.share:.2f}"
    mine = "unlimited" if b.per_minute is None else f"{b.per_minute:g}/min"
    lines = [
        f"bridge metrics at {view.url}:",
        f"  this replica's budget {mine}{share} of the key's {key or 'unknown limits'}; "
        f"throttled: {b.throttled or 'no'}; halted: {'yes' if b.halted else 'no'}",
    ]
    if b.requests_per_event is not None:
        at_budget = b.eta_at_budget(lag)
        tail = "" if at_budget is None else f"; at the key's full budget: {duration(at_budget)}"
        lines.append(f"  {b.requests_per_event:.2f} Meisa requests per message{tail}")
    return lines
