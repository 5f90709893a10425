"""The finished-offsets metadata: it round-trips, never exceeds its size cap, keeps the runs
nearest the committed offset, and reads anything else as nothing."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bridge.pipeline.finished import decode, encode, merge

BASES = st.integers(min_value=0, max_value=2**62)


@st.composite
def runs(draw: st.DrawFn) -> tuple[int, list[tuple[int, int]]]:
    """A committed offset and disjoint, non-adjacent runs of finished offsets past it."""
    base = draw(BASES)
    out = []
    cursor = base + draw(st.integers(min_value=0, max_value=3))
    for _ in range(draw(st.integers(min_value=0, max_value=400))):
        length = draw(st.integers(min_value=1, max_value=5000))
        out.append((cursor, cursor + length - 1))
        cursor += length + draw(st.integers(min_value=1, max_value=10**6))
    return base, out


@given(runs())
def test_runs_round_trip_when_they_fit(case: tuple[int, list[tuple[int, int]]]) -> None:
    base, finished = case
    assert decode(base, encode(base, finished, 10**9)) == finished


@given(runs(), st.integers(min_value=0, max_value=4096))
def test_metadata_never_exceeds_the_cap_and_keeps_the_nearest_runs(
    case: tuple[int, list[tuple[int, int]]], cap: int
) -> None:
    base, finished = case
    metadata = encode(base, finished, cap)
    assert len(metadata.encode()) <= cap
    kept = decode(base, metadata)
    assert kept == finished[: len(kept)]  # a prefix: never an offset that was not finished
    if kept != finished:  # the next run would not have fitted
        assert len(encode(base, finished[: len(kept) + 1], 10**9)) > cap


def test_a_typical_held_partition_fits_thousands_of_offsets() -> None:
    # one offset in two finished over 4,000 offsets: the worst shape, 2,000 runs
    finished = [(n, n) for n in range(1, 4001, 2)]
    metadata = encode(0, finished, 4000)
    assert len(metadata) <= 4000
    assert len(decode(0, metadata)) > 1000


def test_no_runs_is_no_metadata() -> None:
    assert encode(5, [], 4000) == ""
    assert decode(5, "") == []


@given(st.text(max_size=60), BASES)
def test_anything_else_reads_as_nothing_or_runs_past_the_base(text: str, base: int) -> None:
    got = decode(base, text)
    assert all(base <= first <= last for first, last in got)
    assert got == merge(got)


def test_metadata_of_another_offset_or_version_is_ignored() -> None:
    assert decode(7, encode(7, [(9, 12)], 4000)) == [(9, 12)]
    assert decode(8, encode(7, [(9, 12)], 4000)) == []
    assert decode(7, "mb2:7:2.4") == []
    assert decode(7, "mb1:7:2.0") == []  # a run of no offset
    assert decode(7, "mb1:7:2,0") == []  # a second run must start past the first


def test_merge_joins_adjacent_and_overlapping_runs() -> None:
    assert merge([(5, 6), (1, 2), (3, 4), (6, 9), (11, 11)]) == [(1, 9), (11, 11)]
