"""Finished offsets past the committed one, as the metadata string of a Kafka offset commit.

The committed offset is the first unfinished message of a partition; messages after it may be
finished already (other people's calls run ahead of a slow one, a call parked on a 404 holds its
message for minutes). Their offsets go into the commit's metadata, so the next owner of the
partition skips them instead of sending their calls again, as Confluent's Parallel Consumer does.

Format, version 1 (ASCII, numbers in lower-case base 36):

    mb1:<base>:<run>,<run>,...      run = <gap> or <gap>.<length>

`base` is the committed offset the metadata belongs to; a reader whose committed offset differs
(an offset reset by a tool) ignores it. Runs are inclusive offset ranges in increasing order:
the first starts `gap` after `base`, each next one `gap` after the previous one's end + 1, and
spans `length` offsets (1 when omitted). A range may cover offsets that hold no message (a
transaction marker, a compacted record): no such offset is ever delivered.

When the runs do not fit in `max_bytes`, those nearest `base` are kept: a dropped run only means
its messages are sent again, as without metadata. Anything that does not parse reads as nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

VERSION = "mb1"
Run = tuple[int, int]  # first and last offset, inclusive
DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def _b36_digits(n: int) -> str:
    out = ""
    while True:
        n, d = divmod(n, 36)
        out = DIGITS[d] + out
        if not n:
            return out


# Gaps and lengths are mostly small: the one- and two-digit numbers are looked up, not computed.
_SMALL = [_b36_digits(n) for n in range(36 * 36)]


def _b36(n: int) -> str:
    return _SMALL[n] if n < 1296 else _b36_digits(n)


def encode(base: int, runs: Iterable[Run], max_bytes: int) -> str:
    """`runs` (sorted, disjoint, not adjacent, none below `base`) as metadata of at most
    `max_bytes` bytes, the runs nearest `base` first; "" when there is none or none fits."""
    tokens: list[str] = []
    cursor = base
    for first, last in runs:
        tokens.append(token(first - cursor, last - first + 1))
        cursor = last + 1
    return join(base, tokens, max_bytes)


def token(gap: int, length: int) -> str:
    """One run's text: it starts `gap` after the cursor and spans `length` offsets."""
    return _b36(gap) if length == 1 else f"{_b36(gap)}.{_b36(length)}"


def join(base: int, tokens: list[str], max_bytes: int) -> str:
    """The metadata of the runs' `token`s, the first one's gap counted from `base`: the runs
    nearest `base` that fit in `max_bytes`. A partition's tokens are kept as its runs change
    (bridge.pipeline.offsets), so a commit only joins them."""
    if not tokens:
        return ""
    head = f"{VERSION}:{_b36(base)}:"
    body = ",".join(tokens)
    room = max_bytes - len(head)
    if len(body) > room:  # cut at the last comma that fits
        cut = body.rfind(",", 0, room + 1) if room > 0 else -1
        body = body[:cut] if cut > 0 else ""
    return head + body if body else ""


def decode(base: int, metadata: str) -> list[Run]:
    """The runs `metadata` holds for committed offset `base`; [] when it is not ours, belongs to
    another offset or does not parse."""
    fields = metadata.split(":")
    if len(fields) != 3 or fields[0] != VERSION or _int(fields[1]) != base or not fields[2]:
        return []
    runs: list[Run] = []
    cursor = base
    for token in fields[2].split(","):
        run = _run(token, cursor, first=not runs)
        if run is None:
            return []
        runs.append(run)
        cursor = run[1] + 1
    return runs


def _run(token: str, cursor: int, *, first: bool) -> Run | None:
    gap_text, _, length_text = token.partition(".")
    gap = _int(gap_text)
    length = _int(length_text) if length_text else 1
    if gap is None or length is None or length < 1 or (gap < 1 and not first):
        return None
    return cursor + gap, cursor + gap + length - 1


def _int(text: str) -> int | None:
    if not text or any(c not in DIGITS for c in text):
        return None
    return int(text, 36)


def merge(runs: Sequence[Run]) -> list[Run]:
    """Sorted runs with overlapping or adjacent ones joined."""
    out: list[Run] = []
    for first, last in sorted(runs):
        if out and first <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], last))
        else:
            out.append((first, last))
    return out
