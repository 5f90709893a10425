"""The human-friendly `plan --format table`: one row per call or outcome, aligned columns."""

from __future__ import annotations

from typing import Any, TextIO

import orjson

COLUMNS = ("EVENT", "TYPE", "RULE", "#", "CALL", "CONTACT", "DETAIL")
MAX_DETAIL = 90  # keep rows on one line of a wide terminal; the JSON format has everything


def _contact(body: dict[str, Any]) -> str:
    return str(body.get("external_id") or body.get("email") or body.get("to_email") or "")


def _detail(obj: dict[str, Any]) -> str:
    if "outcome" in obj:
        return f"{obj['outcome']}: {obj['reason']}"
    body = {k: v for k, v in obj["body"].items() if k not in ("email", "external_id")}
    text = orjson.dumps(body).decode()
    extras = [f"max_age={obj['max_age']:g}s"] if "max_age" in obj else []
    if "coalesced_offsets" in obj:
        extras.append("coalesced=" + ",".join(map(str, obj["coalesced_offsets"])))
    text = " ".join([*extras, text])
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 3] + "..."


def _row(obj: dict[str, Any]) -> tuple[str, ...]:
    ev = obj["event"]
    where = f"{ev['topic']}/{ev['partition']}/{ev['offset']}"
    if "outcome" in obj:
        return (where, str(ev.get("type") or "-"), "-", "-", "-", "-", _detail(obj))
    call = obj["endpoint"].replace("POST ", "")
    contact = _contact(obj["body"])
    return (where, str(ev["type"]), obj["rule"], str(obj["action"]), call, contact, _detail(obj))


def write_table(objects: list[dict[str, Any]], out: TextIO) -> None:
    rows = [COLUMNS, *(_row(o) for o in objects)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS) - 1)]
    for row in rows:
        cells = [c.ljust(w) for c, w in zip(row, widths, strict=False)]
        out.write("  ".join([*cells, row[-1]]).rstrip() + "\n")
