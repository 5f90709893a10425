"""The seeded fault schedule: which fault, when, against which instance, with which parameters.

`make_schedule(profile, seed)` is pure: the same profile and seed give the same schedule, which
the runner prints before it starts so that a failing run can be repeated exactly
(`make chaos SEED=...`). Targets are instance slots (`slot % running instances`), so a rerun hits
the same instances in the same order.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

# Sandbox faults, as POST /_sandbox/faults bodies. Durations are seconds of the sandbox clock.
SANDBOX_FAULTS: dict[str, dict[str, Any]] = {
    "5xx-burst": {"status": 503, "count": 150},
    "429-seconds": {"status": 429, "retry_after": 2, "rate": 0.3, "duration": 8},
    "429-http-date": {
        "status": 429,
        "retry_after": 3,
        "retry_after_format": "http-date",
        "rate": 0.3,
        "duration": 8,
    },
    "slow": {"latency_ms": 1500, "rate": 0.2, "duration": 10},
    "reset": {"drop": "reset", "rate": 0.1, "duration": 8},
}
PROCESS_FAULTS = ("kill", "zombie", "term", "scale-out", "scale-in")
OUTAGE_SECONDS = 600.0  # Meisa answers 503 for ten minutes of the sandbox's clock...
OUTAGE_REAL_SECONDS = 20.0  # ...which pass in this many real seconds
MEISA_HOUR = 3700.0  # a jump past Meisa's one-hour idempotency window


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    people: int
    poison: int
    instances: int
    window: float  # seconds over which faults are spread
    counts: dict[str, int] = field(default_factory=dict)  # fault kind -> how many
    drain_timeout: float = 600.0
    first_share: float = 0.5  # of the history produced before the instances start
    kill_every: tuple[float, float] | None = None  # also a kill every (min, max) seconds
    zombie_seconds: float | None = None  # SIGSTOP length (None: past the classic 45 s session)
    background: tuple[dict[str, Any], ...] = ()  # sandbox faults for the whole run
    # Re-sent tracks allowed, as a share of all tracks (crashes re-send their calls on the wire
    # and a few hundredths of a second of finished work; the more of the drain a kill hits, the
    # more), apart from work first done while the broker was down.
    track_budget: float = 0.005
    # The outcome topic (outcomes.topic) on, and checked by the oracle. Records hold a message's
    # commit until the broker acknowledged them, so profiles whose figures are tracked keep it off.
    outcomes: bool = False
    # Poison messages that do make a call (a sign-up Meisa refuses with a 422), on top of `poison`
    # (which cannot be decoded or mapped): these leave a `dead_lettered` outcome record.
    rejected: int = 0


ONE_OF_EACH = {
    "kill": 1,
    "zombie": 1,
    "term": 1,
    "broker": 1,
    "scale-out": 1,
    "scale-in": 1,
    "outage": 1,
    "meisa-hour": 1,
    **dict.fromkeys(SANDBOX_FAULTS, 1),
}
PROFILES = {
    "short": Profile(
        "short",
        people=400,
        poison=4,
        instances=2,
        window=150,
        counts=ONE_OF_EACH,
        outcomes=True,
        rejected=2,
    ),
    "long": Profile(
        "long",
        people=2000,
        poison=8,
        instances=3,
        window=420,
        counts={
            **dict.fromkeys(ONE_OF_EACH, 2),
            "kill": 6,
            "zombie": 2,
            "term": 3,
            "5xx-burst": 3,
            "meisa-hour": 1,
            "outage": 1,
        },
        drain_timeout=900.0,
    ),
    # The whole backlog at once, drained in seconds while the group never settles: a kill every
    # 4-8 s, a stop past the local broker's 10 s session timeout, a broker restart, and a steady
    # trickle of 503s and 429s.
    "storm": Profile(
        "storm",
        people=400,
        poison=4,
        instances=2,
        window=60,
        counts={"zombie": 1, "broker": 1, "meisa-hour": 1},
        drain_timeout=300.0,
        first_share=1.0,
        kill_every=(4.0, 8.0),
        zombie_seconds=16.0,
        # Kills land while the whole backlog drains at 1,000 events/s or more. With the calls on
        # the wire held to what the sandbox needs, such a kill re-sends a few tracks: the same
        # 0.5% as every profile (it was 5% with 64 calls always on the wire).
        background=(
            {"status": 503, "rate": 0.05},
            {"status": 429, "rate": 1 / 97, "retry_after": 1},
        ),
    ),
}


@dataclass(frozen=True, slots=True, order=True)
class Fault:
    at: float  # seconds after the instances started
    kind: str
    slot: int = 0  # which running instance (process faults)
    down: float = 0.0  # seconds until restart (kill, term), stop length (zombie), broker down

    def describe(self) -> str:  # noqa: PLR0911 (one sentence per fault kind)
        if self.kind in ("kill", "term"):
            return f"{self.kind} instance slot {self.slot}, restart after {self.down:.1f}s"
        if self.kind == "zombie":
            return f"SIGSTOP instance slot {self.slot} for {self.down:.1f}s, then SIGCONT"
        if self.kind == "broker":
            return f"broker restart, down {self.down:.1f}s"
        if self.kind == "scale-out":
            return "start one more instance"
        if self.kind == "scale-in":
            return f"SIGTERM instance slot {self.slot} for good"
        if self.kind == "outage":
            return (
                f"Meisa 503 for {OUTAGE_SECONDS:.0f}s of sandbox time "
                f"in {OUTAGE_REAL_SECONDS:.0f}s real"
            )
        if self.kind == "meisa-hour":
            return f"sandbox clock +{MEISA_HOUR:.0f}s (Meisa forgets idempotency keys)"
        return f"sandbox fault {self.kind}: {SANDBOX_FAULTS[self.kind]}"


def make_schedule(profile: Profile, seed: int, *, stop_seconds: float) -> list[Fault]:
    """Faults spread over the profile's window; a zombie stops for `stop_seconds`."""
    rng = random.Random(f"{profile.name}:{seed}")
    warmup = 5.0
    faults = []
    for kind, count in sorted(profile.counts.items()):
        for _ in range(count):
            at = round(warmup + rng.random() * (profile.window - warmup), 1)
            faults.append(_fault(kind, at, rng, stop_seconds))
    if profile.kill_every is not None:
        low, high = profile.kill_every
        at = warmup + low + rng.random() * (high - low)
        while at < profile.window:
            faults.append(_fault("kill", round(at, 1), rng, stop_seconds))
            at += low + rng.random() * (high - low)
    return _spaced(sorted(faults))


def _fault(kind: str, at: float, rng: random.Random, stop_seconds: float) -> Fault:
    slot = rng.randrange(16)
    if kind in ("kill", "term"):
        return Fault(at, kind, slot, round(1 + rng.random() * 4, 1))
    if kind == "zombie":
        return Fault(at, kind, slot, round(stop_seconds + rng.random() * 5, 1))
    if kind == "broker":
        return Fault(at, kind, 0, round(3 + rng.random() * 5, 1))
    return Fault(at, kind, slot)


def _spaced(faults: list[Fault]) -> list[Fault]:
    """Broker restarts at least 30 s apart (a restart takes several seconds of its own), and each
    scale-in at least 20 s after a scale-out, so that it never takes the last awake instance."""
    out: list[Fault] = []
    last_broker = -1e9
    scale_outs = sorted(f.at for f in faults if f.kind == "scale-out")
    for fault in faults:
        moved = fault
        if fault.kind == "broker":
            last_broker = max(fault.at, last_broker + 30)
            moved = Fault(last_broker, fault.kind, fault.slot, fault.down)
        elif fault.kind == "scale-in" and scale_outs:
            moved = Fault(max(fault.at, scale_outs.pop(0) + 20), fault.kind, fault.slot)
        out.append(moved)
    return sorted(out)


def format_schedule(faults: list[Fault]) -> str:
    return "\n".join(f"  {f.at:7.1f}s  {f.kind:<14} {f.describe()}" for f in faults)
