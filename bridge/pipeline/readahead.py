"""Read-ahead: how far each partition is read past its unfinished messages, within one bound.

Messages wait in the bridge for the rate budget: a backlog under a 60-a-minute key takes hours to
send. Reading on past it lets a later message that need not wait (a one-time code's trigger) reach
Meisa at once instead of sitting unread behind the backlog. The fetched, unfinished messages of all
partitions count against one bound in bytes (`pipeline.read_ahead_bytes`); each message counts
its key, value and headers plus `MESSAGE_OVERHEAD_BYTES` for what the bridge builds from it
(record, envelope, calls, lane entries).

Which partitions pause:

- every assigned partition has a reserve, an equal part of half the bound; one that holds no more
  than its reserve is never paused for bytes, so a quiet topic (the one-time codes) is read at
  once however large another topic's backlog is;
- the other half is shared: once the bytes held, with every reserve counted as full, reach the
  bound, the partitions holding more than their reserve pause; they resume when that sum is back
  under `RESUME_AT` of the bound (or they are back within their reserve);
- a partition also pauses at `max_messages` unfinished messages, and resumes at half.

So the bytes held stay within the bound, give or take one fetched batch. Pure: the pipeline
passes what each partition holds and applies the answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass

TopicPartition = tuple[str, int]
# What the bridge holds for a message beyond its own bytes: the Record, the InFlight, the decoded
# envelope and its calls (bench/read_ahead.py measured 3.5 KiB for the example events).
MESSAGE_OVERHEAD_BYTES = 3584
RESUME_AT = 0.75  # hysteresis: a paused partition waits until a quarter of the bound is free


@dataclass(frozen=True, slots=True)
class ReadAhead:
    """The bound in bytes over all partitions, and the cap in messages per partition."""

    bound: int
    max_messages: int

    def decide(
        self, held: Mapping[TopicPartition, tuple[int, int]], paused: Set[TopicPartition]
    ) -> tuple[list[TopicPartition], list[TopicPartition]]:
        """Which partitions to pause and which to resume, given the (bytes, messages) each
        assigned partition holds unfinished and the ones paused now."""
        if not held:
            return [], []
        reserve = self.bound // (2 * len(held))
        used = sum(max(size, reserve) for size, _ in held.values())
        pause: list[TopicPartition] = []
        resume: list[TopicPartition] = []
        for tp, (size, count) in held.items():
            if tp in paused:
                bytes_fit = size <= reserve or used <= self.bound * RESUME_AT
                if bytes_fit and count <= self.max_messages // 2:
                    resume.append(tp)
            elif (size > reserve and used >= self.bound) or count >= self.max_messages:
                pause.append(tp)
        return pause, resume
