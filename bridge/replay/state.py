"""The replay state file (sqlite): what makes a killed run continue where it stopped.

Tables:
    meta      key/value: the run's settings (from, to, topics) and its phase (read|send|done)
    ranges    per partition: the fixed [start, end) and `position`, the next offset to read
    contacts  per contact key: the folded state (JSON) and `done`, how many of its calls are sent
    calls     calls that do not fold (a track with on_replay: send), in read order, and `sent`
    counters  events read, decode/map errors, skips ...

The read phase folds in memory and flushes the folds together with the read positions in ONE
transaction, so the file always describes exactly the events before each position: a killed run
re-reads from there. The send phase marks each call done as it succeeds (WAL, one commit per
contact), so at most the calls in flight at a kill are sent again.
"""

from __future__ import annotations

import json
import sqlite3
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.kafka.protocols import Range
from bridge.meisa.calls import MeisaCall, is_stale
from bridge.replay.fold import ContactFold, call_from_json, call_to_json

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ranges (
    topic TEXT NOT NULL, partition INTEGER NOT NULL,
    start INTEGER NOT NULL, "end" INTEGER NOT NULL, position INTEGER NOT NULL,
    PRIMARY KEY (topic, partition));
CREATE TABLE IF NOT EXISTS contacts (
    key TEXT PRIMARY KEY, shard INTEGER NOT NULL, state TEXT NOT NULL,
    done INTEGER NOT NULL DEFAULT 0, total INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS calls (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, shard INTEGER NOT NULL, call TEXT NOT NULL,
    event_epoch REAL, sent INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

SHARDS = 64  # send workers pick shards; a contact's calls stay in one shard, so stay in order


def shard_of(key: str) -> int:
    return zlib.crc32(key.encode()) % SHARDS


@dataclass(frozen=True, slots=True)
class PendingCall:
    seq: int
    call: MeisaCall
    event_epoch: float | None


class StateStore:
    """One replay run's state. Not thread-safe: the runner owns it."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL survives a killed process (the WAL is in the OS cache); only power loss can drop
        # the last commits, and then those calls are sent again, which upserts tolerate.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    # -- meta and counters --

    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def counters(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self._db.execute("SELECT name, value FROM counters")}

    # -- ranges --

    def init_ranges(self, ranges: list[Range]) -> None:
        with self._tx():
            for r in ranges:
                self._db.execute(
                    "INSERT INTO ranges VALUES (?, ?, ?, ?, ?)",
                    (r.topic, r.partition, r.start, r.end, r.position),
                )

    def ranges(self) -> list[Range]:
        rows = self._db.execute(
            'SELECT topic, partition, start, "end", position FROM ranges ORDER BY topic, partition'
        )
        return [Range(str(t), int(p), int(s), int(e), int(pos)) for t, p, s, e, pos in rows]

    # -- the read phase --

    def flush(
        self,
        folds: Mapping[str, ContactFold],
        calls: list[tuple[MeisaCall, float | None]],
        positions: Mapping[tuple[str, int], int],
        counts: Mapping[str, int],
    ) -> None:
        """Persist folded deltas, non-foldable calls, read positions and counters atomically."""
        with self._tx():
            for key, fold in folds.items():
                self._merge_fold(key, fold)
            self._db.executemany(
                "INSERT INTO calls (shard, call, event_epoch) VALUES (?, ?, ?)",
                [(shard_of(c.contact_key), _dump(call_to_json(c)), e) for c, e in calls],
            )
            self._db.executemany(
                "UPDATE ranges SET position=? WHERE topic=? AND partition=?",
                [(pos, t, p) for (t, p), pos in positions.items()],
            )
            self._db.executemany(
                "INSERT INTO counters VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                list(counts.items()),
            )

    def _merge_fold(self, key: str, delta: ContactFold) -> None:
        row = self._db.execute("SELECT state FROM contacts WHERE key=?", (key,)).fetchone()
        if row is None:
            fold = delta
        else:
            fold = ContactFold.from_json(key, json.loads(row[0]))
            fold.combine(delta)
        self._db.execute(
            "INSERT OR REPLACE INTO contacts (key, shard, state, done, total) "
            "VALUES (?, ?, ?, 0, ?)",
            (key, shard_of(key), _dump(fold.to_json()), len(fold.calls())),
        )

    # -- the send phase --

    def pending_contacts(self, shard: int) -> Iterator[tuple[ContactFold, int]]:
        """(fold, calls already done) for every unfinished contact in a shard."""
        rows = self._db.execute(
            "SELECT key, state, done FROM contacts WHERE shard=? AND done < total ORDER BY key",
            (shard,),
        ).fetchall()
        for key, state, done in rows:
            yield ContactFold.from_json(str(key), json.loads(state)), int(done)

    def mark_contact(self, key: str, done: int, outcome: str) -> None:
        with self._tx():
            self._db.execute("UPDATE contacts SET done=? WHERE key=?", (done, key))
            self._bump(outcome)

    def pending_calls(self, shard: int) -> list[PendingCall]:
        rows = self._db.execute(
            "SELECT seq, call, event_epoch FROM calls WHERE shard=? AND sent=0 ORDER BY seq",
            (shard,),
        ).fetchall()
        return [PendingCall(int(s), call_from_json(json.loads(c)), e) for s, c, e in rows]

    def mark_call(self, seq: int, outcome: str) -> None:
        with self._tx():
            self._db.execute("UPDATE calls SET sent=1 WHERE seq=?", (seq,))
            self._bump(outcome)

    def _bump(self, name: str) -> None:
        self._db.execute(
            "INSERT INTO counters VALUES (?, 1) ON CONFLICT(name) DO UPDATE SET value = value + 1",
            (name,),
        )

    def left(self) -> tuple[int, int]:
        """(calls still to send, calls already sent) over contacts and non-foldable calls."""
        c_left, c_done = self._db.execute(
            "SELECT COALESCE(SUM(total - done), 0), COALESCE(SUM(done), 0) FROM contacts"
        ).fetchone()
        n_left, n_done = self._db.execute(
            "SELECT COALESCE(SUM(sent = 0), 0), COALESCE(SUM(sent), 0) FROM calls"
        ).fetchone()
        return int(c_left) + int(n_left), int(c_done) + int(n_done)

    def planned_by_endpoint(self, now: float) -> tuple[dict[str, int], int]:
        """Every call the run sends (or sent), by kind, and how many are stale at `now`."""
        counts: dict[str, int] = {}
        for (state,) in self._db.execute("SELECT state FROM contacts"):
            for call in ContactFold.from_json("", json.loads(state)).calls():
                counts[call.kind] = counts.get(call.kind, 0) + 1
        stale = 0
        for call_json, epoch in self._db.execute("SELECT call, event_epoch FROM calls"):
            call = call_from_json(json.loads(call_json))
            if is_stale(call, epoch, now):
                stale += 1
            else:
                counts[call.kind] = counts.get(call.kind, 0) + 1
        return counts, stale

    def contact_count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM contacts").fetchone()[0])

    def _tx(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")


def _dump(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), sort_keys=False)
