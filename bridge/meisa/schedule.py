"""Rate scheduler: the pure core of the rate governor (`now` is passed in, nothing waits).

Budget. Meisa limits a key per minute and per hour. Each limit is a sliding-window log: a spent
token comes back exactly one window after it was spent, so no window ever holds more than the
limit (a bucket that refills continuously could allow a full burst at the end of one minute and
another at the start of the next, twice the limit inside one 60 s window, and a sliding-window
server would answer 429). `guard_seconds` widens each window a little so network jitter cannot
squeeze two requests sent 60 s apart into one server-side window. Each limit is multiplied by
`share` (this replica's part of a key shared by several bridges).

Pacing. The windows alone would let a backlog spend a whole minute's budget in a burst and then
hold everything, a waiting trigger too, until the window turns over. So grants are also paced by
a token bucket refilled continuously at the shortest window's effective rate (limit / window
length, so pacing alone never overfills a window and no budget is wasted). Only triggers may
spend the bucket's burst (`BURST_SECONDS` of tokens); other calls may spend only its top
`BACKLOG_SLACK_SECONDS` of tokens (one token at least), and leave as many tokens but one free in
the shortest window, so a trigger arriving behind any backlog finds a token at once or within one
token interval, and a backlog never runs ahead of the windows (which would stall everyone at the
window's end).

Tokens per tick. The caller that waits for the bucket wakes when it has refilled, and each
wake-up grants every token earned since the last one: a 1,000,000/min key earns a token every
60 us, far below what a timer can wake for, so one wake-up per token (as before) paced a large
key at the timer's rate (about 1,000 grants/s) instead of its own. A wake-up is at least
`TICK_SECONDS` after the previous one, and the backlog's slack holds what a late wake-up earned
meanwhile, so a loop busy for a fifth of a second loses none of the key. While callers wait, a
newcomer other than a trigger joins them for the next wake-up instead of taking a token earned
between two (the governor's `acquire`): a paced backlog then goes in one burst per tick, which an
event loop handles as it handles a drain at full speed, not in one wake-up per call.

Hour reserve. Calls other than triggers may fill the hourly window only to
`1 - TRIGGER_HOUR_RESERVE` of its limit, so a backlog that exhausts the hour still leaves room
for triggers.

429s (see bridge.meisa.aimd). A Retry-After is authoritative for what it answers: the call that
got it waits that long (the retry policy), and the budget does not shrink for it. Whether it
answers for the key or for one request, the other answers tell: while 429s are half or more of
the last 20 answers (three at least), a Retry-After stops every grant until it has run; 429s
among successes (a proxy refusing the odd request, even one in ten) hold back only their own
calls.
A 429 without one may lower the effective limits (and the pace): only when such 429s repeat or
the key evidently allows less than /ping said, at most once per window, never below one
request per window; the budget is back in full at most 90 s after the last such 429.
`state(now)` says whether calls are held back, why and until when.

Priority. Waiting callers are served strictly by priority (0 = trigger, 1 = track/enroll,
2 = upsert/tags), then in arrival order: a waiting OTP overtakes a backlog of upserts.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import deque
from dataclasses import dataclass
from typing import Literal

from bridge.meisa.aimd import Aimd

MINUTE, HOUR = 60.0, 3600.0
GUARD_SECONDS = 0.5  # client/server clock and latency slack added to each window
TRIGGER = 0  # the priority of triggers, which may use the burst and the hour reserve
# Burst for triggers: a few OTPs at once go without waiting, yet a full bucket is small enough
# that spending it costs at most a short stall when the minute window catches up.
BURST_SECONDS = 2.0
# Tokens a backlog may take below a full bucket: what the key earns in 0.35 s, so a wake-up a tick
# apart that came a quarter of a second late (a busy, CPU-starved loop) still grants all of it; a
# trigger still finds 1.65 s of burst.
BACKLOG_SLACK_SECONDS = 0.35
# The shortest sleep between two wake-ups of the governor's waiters (the tokens earned meanwhile
# go at once): 10 wake-ups/s at most, whatever the key's limit. A paced backlog then runs in
# bursts of a tenth of a second's tokens, which an event loop handles like a full-speed drain:
# at 100,000/min this cut the bridge's CPU per event by a fifth against a 5 ms tick (docs/
# rate-budget.md). A trigger that finds no token waits at most this much longer.
TICK_SECONDS = 0.1
# The windows log grants in buckets this fraction of the window long (a minute's in 30 ms, an
# hour's in 1.8 s): memory stays bounded at a 1,000,000/min key, and a bucket expires with its
# last grant, so a token comes back at most that much late, never early.
BUCKETS_PER_WINDOW = 2000
# Share of the hourly budget only triggers may use: after a backlog has spent the rest of the
# hour, 10% (100 of Meisa's default 1,000/h) is still there for OTPs and password resets.
TRIGGER_HOUR_RESERVE = 0.1
_READY_SLACK = 1e-9  # tokens: float rounding must not make a due grant wait another wake-up
# A Retry-After extending a running pause by less than this is the same pause (the 429s that
# answer requests already in flight), not a new one to report.
_SAME_PAUSE_SECONDS = 1.0
# A 429 proves the key's limit lower than /ping said when this replica sent less than this share
# of its limit in the last window: more than the off-by-one of a window boundary.
PROOF_SHARE = 0.9
# Whether a Retry-After speaks for the key or for one request: the key is refused when 429s are
# at least PAUSE_SHARE of the last PAUSE_ANSWERS answers, and PAUSE_MIN at least. A limiter
# refusing the key answers 429 to nearly everything; a proxy refusing one request in ten at
# random puts ten 429s among the last 20 answers about 7 times in a million answers (a quarter
# of them, the earlier rule, 4 times in a hundred: a pause a few times a second at 600 calls/s).
PAUSE_ANSWERS = 20
PAUSE_SHARE = 0.5
PAUSE_MIN = 3

Reason = Literal["retry_after", "repeated_429", "limit_lower"]


class _Window:
    """Grants in the last `length` seconds; `limit` of them at most.

    A sliding-window log of buckets: each [time of its last grant, grants], a new bucket every
    `length / BUCKETS_PER_WINDOW` seconds.
    """

    def __init__(self, budget: int, length: float, reserve: float = 0.0) -> None:
        self.budget = budget
        self.length = length
        self.reserve = reserve  # share of the limit kept for triggers
        self.buckets: deque[list[float]] = deque()  # [last grant time, grants]
        self._bucket_seconds = length / BUCKETS_PER_WINDOW
        self._opened = -math.inf  # when the newest bucket was opened
        self._used = 0

    def _expire(self, now: float) -> None:
        while self.buckets and self.buckets[0][0] <= now - self.length:
            self._used -= int(self.buckets.popleft()[1])

    def free_at(self, now: float, limit: int, tokens: int) -> float:
        """Earliest time (>= now) at which `tokens` more grants fit under `limit`."""
        # `_expire`'s own test first: most checks find nothing to expire, and skip a call.
        if self.buckets and self.buckets[0][0] <= now - self.length:
            self._expire(now)
        excess = self._used + tokens - limit
        if excess <= 0:
            return now
        if excess > self._used:  # more tokens than the limit: never fits whole
            return math.inf
        for at, count in self.buckets:
            excess -= int(count)
            if excess <= 0:
                return at + self.length
        return math.inf  # unreachable: the buckets hold `_used` grants

    def used(self, now: float) -> int:
        self._expire(now)
        return self._used

    def spend(self, now: float, tokens: int) -> None:
        self._used += tokens
        if self.buckets and now - self._opened < self._bucket_seconds:
            newest = self.buckets[-1]
            if now > newest[0]:  # noqa: PLR1730 (max() costs more, per grant and window)
                newest[0] = now
            newest[1] += tokens
            return
        self._opened = now
        self.buckets.append([now, float(tokens)])


@dataclass(frozen=True, slots=True)
class GovernorState:
    """Why the governor holds calls back (None: it does not), and until when (monotonic)."""

    reason: Reason | None
    until: float
    per_minute: int | None  # the effective per-minute limit now; None: the key has none

    @property
    def throttled(self) -> bool:
        return self.reason is not None


@dataclass(slots=True)  # not frozen: one per call, and a frozen one costs twice as much to make
class Waiter:
    priority: int
    seq: int
    tokens: int


@dataclass(frozen=True, slots=True)
class _Effective:
    """The limits in force for one AIMD factor and share, worked out once: `ready_at` needs them
    for every head of the queue, and they change only with the factor or the share."""

    factor: float  # the AIMD factor these were worked out for
    limits: tuple[int, ...]  # each window's budget after AIMD
    # (window, what a caller may fill of it) for triggers, and for other callers: the strictest
    # of its limits for them (the hour's trigger reserve, the room left for triggers in the
    # pacing window), the only one that matters (see `ready_at`).
    trigger: tuple[tuple[_Window, int], ...]
    other: tuple[tuple[_Window, int], ...]
    pace: tuple[float, float] | None  # (tokens per second, burst capacity); None: no limits
    backlog_need: float  # tokens the bucket must hold before another caller than a trigger goes


class RateScheduler:
    """Pure core: `request` queues, `grant(now)` returns who may go now."""

    def __init__(
        self,
        *,
        per_minute: int | None,
        per_hour: int | None,
        share: float = 1.0,
        guard_seconds: float = GUARD_SECONDS,
    ) -> None:
        # None: the key reports no such limit (the sandbox's unlimited key); no window for it.
        self._key_limits = [limit for limit in (per_minute, per_hour) if limit is not None]
        self.share = share
        self.windows = [
            _Window(max(1, math.floor(limit * share)), length + guard_seconds, reserve)
            for limit, length, reserve in (
                (per_minute, MINUTE, 0.0),
                (per_hour, HOUR, TRIGGER_HOUR_RESERVE),
            )
            if limit is not None
        ]
        self._shape = (per_minute is not None, per_hour is not None)
        smallest = min((w.budget for w in self.windows), default=1)
        self._aimd = Aimd(floor=1.0 / smallest, window=MINUTE + guard_seconds)
        self.factor = 1.0  # AIMD multiplier on both budgets, as of the last `_refresh`
        self._shrink: Reason | None = None  # why the factor was last lowered
        self.paused_until = -math.inf
        self._answers: deque[bool] = deque(maxlen=PAUSE_ANSWERS)  # True: a 429
        self._refused = 0  # 429s among `_answers`
        self._current: _Effective | None = None  # the limits as of `factor` and `share`
        self._level = math.inf  # pacing bucket tokens (clipped to its capacity; full at start)
        self._level_at = -math.inf
        self._queue: list[tuple[int, int]] = []
        self._waiters: dict[int, Waiter] = {}
        self._seq = itertools.count()

    # -- limits ------------------------------------------------------------------------------

    def set_share(self, share: float) -> None:
        """This replica's part of the key's budget changed (its partitions did)."""
        self.share = share
        for window, limit in zip(self.windows, self._key_limits, strict=True):
            window.budget = max(1, math.floor(limit * share))
        self._current = None  # worked out again at the next use

    def _limit(self, window: _Window) -> int:
        return max(1, math.floor(window.budget * self.factor))

    def allowances(self, priority: int) -> list[tuple[int, float]]:
        """(requests a caller of `priority` may make, per seconds) for each window, the shortest
        first: the key's limit times the share (one at least), after AIMD, less the hour's
        trigger reserve for other callers. Replay estimates a run's length from these."""
        found = []
        for window in self.windows:
            limit = self._limit(window)
            if priority != TRIGGER and window.reserve:
                limit = max(1, math.floor(limit * (1.0 - window.reserve)))
            found.append((limit, window.length))
        return found

    def limits(self) -> tuple[int | None, int | None]:
        """Effective (per-minute, per-hour) limits after AIMD; None where there is no limit."""
        found = iter(self._effective().limits)
        minute = next(found) if self._shape[0] else None
        hour = next(found) if self._shape[1] else None
        return minute, hour

    def pace(self) -> tuple[float, float] | None:
        """(tokens per second, burst capacity) of the pacing bucket; None without limits."""
        return self._effective().pace

    def _effective(self) -> _Effective:
        """The limits as of the current factor and share, worked out again when either changed
        (`set_share` drops them; the factor is compared, whoever changed it)."""
        current = self._current
        if current is None or current.factor != self.factor:
            current = self._current = self._work_out()
        return current

    def _work_out(self) -> _Effective:
        """Each window's limits for triggers and for other callers, and the pace they set."""
        limits = tuple(self._limit(window) for window in self.windows)
        if not self.windows:
            return _Effective(self.factor, limits, (), (), None, 0.0)
        rate = limits[0] / self.windows[0].length  # the shortest window sets the pace
        capacity = max(1.0, rate * BURST_SECONDS)
        # Tokens of the bucket's top a backlog may spend: what BACKLOG_SLACK_SECONDS earn,
        # whole, one at least (a key earning less than 4 a second: one, as a plain bucket).
        slack = max(1, math.floor(rate * BACKLOG_SLACK_SECONDS))
        other = []
        for window, limit in zip(self.windows, limits, strict=True):
            strictest = limit
            if window.reserve:
                strictest = min(strictest, max(1, math.floor(limit * (1.0 - window.reserve))))
            if window is self.windows[0]:
                # What the backlog took of the bucket's top beyond one token, it leaves free in
                # the pacing window: a trigger never waits for that window to turn.
                strictest = min(strictest, max(1, limit - slack + 1))
            other.append((window, strictest))
        trigger = tuple(zip(self.windows, limits, strict=True))
        need = capacity - slack + 1.0
        return _Effective(self.factor, limits, trigger, tuple(other), (rate, capacity), need)

    def _settle(self, now: float, pace: tuple[float, float] | None) -> None:
        """Refill the bucket up to `now` at `pace`, the current one."""
        if pace is None:
            return
        rate, capacity = pace
        if now > self._level_at:
            self._level += rate * (now - self._level_at)
            self._level_at = now
        # Full, or clipped if the pace fell (a comparison: min() costs more, twice per grant).
        if self._level > capacity:  # noqa: PLR1730
            self._level = capacity

    def _refresh(self, now: float) -> None:
        """Follow the AIMD climb back to the full budget up to `now`."""
        if self.factor < 1.0:
            self._settle(now, self._effective().pace)  # tokens earned so far at the old pace
            self.factor = self._aimd.factor(now)

    def on_rate_limited(self, now: float, retry_after: float | None) -> Reason | None:
        """A 429 at `now`; the reason when it paused or lowered the budget anew."""
        self._answer(refused=True)
        self._settle(now, self._effective().pace)
        if retry_after is not None:  # the server said how long: exactly that, nothing more
            return self._pause(now, retry_after) if self._key_refused() else None
        self._refresh(now)
        shrink = self._aimd.strike(now, under_limit=self._under_limit(now))
        self.factor = self._aimd.factor(now)
        if shrink is not None:
            self._shrink = shrink
        return shrink

    def _answer(self, *, refused: bool) -> None:
        if len(self._answers) == PAUSE_ANSWERS:
            self._refused -= self._answers[0]
        self._answers.append(refused)
        self._refused += refused

    def _key_refused(self) -> bool:
        return self._refused >= max(PAUSE_MIN, PAUSE_SHARE * len(self._answers))

    def _pause(self, now: float, retry_after: float) -> Reason | None:
        until = now + retry_after
        fresh = now >= self.paused_until or until - self.paused_until > _SAME_PAUSE_SECONDS
        self.paused_until = max(self.paused_until, until)
        return "retry_after" if retry_after > 0 and fresh else None

    def _under_limit(self, now: float) -> bool:
        """Clearly fewer requests than the limit went out in the last (shortest) window."""
        if not self.windows:
            return False
        return self.windows[0].used(now) < PROOF_SHARE * self._effective().limits[0]

    def on_success(self) -> None:
        """An answer that was not a 429 (recovery itself follows the clock, not successes)."""
        self._answer(refused=False)

    def state(self, now: float) -> GovernorState:
        self._refresh(now)
        if self.paused_until > now:
            reason: Reason | None = "retry_after"
        else:
            reason = self._shrink if self.factor < 1.0 else None
        until = max(self.paused_until, self._aimd.recovered_at())
        return GovernorState(reason, until, self.limits()[0])

    def record(self, now: float, tokens: int = 1) -> None:
        """Count requests made without a grant (the start-up ping) against the budget."""
        self._spend(now, tokens)

    def _spend(self, now: float, tokens: int) -> None:
        self._settle(now, self._effective().pace)
        if self.windows:
            self._level -= tokens  # may go negative: a 2-request call pays back its debt
        for window in self.windows:
            window.spend(now, tokens)

    # -- queue -------------------------------------------------------------------------------

    def take(self, now: float, priority: int, tokens: int = 1) -> bool:
        """Grant at once when nobody waits and the budget allows (what `request` + `grant`
        would do for a lone caller, without queueing it); False: the caller must queue."""
        if self._waiters:
            return False
        tokens = max(1, tokens)
        self._refresh(now)
        if self.ready_at(now, tokens, priority) > now:
            return False
        self._spend(now, tokens)
        return True

    def request(self, priority: int, tokens: int = 1) -> int:
        seq = next(self._seq)
        self._waiters[seq] = Waiter(priority, seq, max(1, tokens))
        heapq.heappush(self._queue, (priority, seq))
        return seq

    def cancel(self, seq: int) -> None:
        self._waiters.pop(seq, None)  # its heap entry is skipped lazily

    def waiting(self) -> int:
        return len(self._waiters)

    def _head(self) -> Waiter | None:
        while self._queue:
            waiter = self._waiters.get(self._queue[0][1])
            if waiter is not None:
                return waiter
            heapq.heappop(self._queue)
        return None

    def ready_at(self, now: float, tokens: int, priority: int = TRIGGER) -> float:
        # Asked for every grant and every newcomer: comparisons rather than max() and min()
        # calls, which cost more than the rest of a window's check.
        effective = self._effective()
        at = self._paced_at(now, tokens, priority, effective)  # now at the earliest
        if self.paused_until > at:  # noqa: PLR1730
            at = self.paused_until
        for window, limit in effective.trigger if priority == TRIGGER else effective.other:
            # A request bigger than the limit (a 2-request tag call under AIMD) waits for an
            # empty window instead of never. Capped so, a request waits until no more than
            # `limit - tokens` (or none) of the window's grants are left: a smaller limit never
            # frees the window earlier, so the strictest limit alone says when it has room.
            free = window.free_at(now, limit, tokens if tokens < limit else limit)
            if free > at:  # noqa: PLR1730
                at = free
        return at

    def _paced_at(self, now: float, tokens: int, priority: int, effective: _Effective) -> float:
        """When the bucket holds enough: triggers may spend the burst, others need it full."""
        pace = effective.pace
        if pace is None:
            return now
        rate, capacity = pace
        self._settle(now, pace)
        # Others need the top of the bucket: what one late wake-up earned goes at once.
        need = min(tokens, capacity) if priority == TRIGGER else effective.backlog_need
        short = need - self._level
        return now if short <= _READY_SLACK else now + short / rate

    def grant(self, now: float) -> tuple[list[int], float | None]:
        """Grant the head of the queue while the budget allows.

        Returns (granted seqs in order, time to call again or None when nobody waits).
        """
        granted: list[int] = []
        self._refresh(now)
        while (head := self._head()) is not None:
            at = self.ready_at(now, head.tokens, head.priority)
            if at > now:
                return granted, at
            heapq.heappop(self._queue)
            del self._waiters[head.seq]
            # Record what is really sent, even past an AIMD-lowered limit: later grants wait.
            self._spend(now, head.tokens)
            granted.append(head.seq)
        return granted, None
