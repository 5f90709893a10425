"""One contact identity across topics: which lane a call belongs to, and who already exists.

Meisa matches a contact by `external_id` first, then by email. Events of one person often carry
only one of them: a sign-up carries both, a usage event only the user id, an OTP only the email.
`ContactIdentity` gives every call a lane key so that all of one person's calls share one queue:

- a call with an external_id belongs to lane `x:<external_id>`; if it also carries an email, the
  email is linked to that lane, so a later email-only call (an OTP, a tag by email) joins it;
- an email-only call belongs to the lane its email is linked to, else to lane `m:<email>`;
- a new external_id seen with an email that already has a lane joins that lane;
- when a call links two lanes that both exist (an email-only lane and an external_id lane, or a
  person who changed address), `key_for` reports the merge so the dispatcher folds the queues;
  the folded calls keep their order of arrival. A lane only serialises calls, so folding two
  lanes that turn out to be two people (an address that changed hands) costs some concurrency,
  never correctness.

Memory is bounded: at most `capacity` tokens (an external_id or an email is one token; a person
costs one or two), evicted least-recently-used first. A token whose lane has work queued or in
flight is never evicted while idle tokens remain, so a person's link only disappears after the
person has been quiet for `capacity` other tokens; an evicted link only means a later
email-only call runs in its own lane again, with the 404 wait as the safety net.

`KnownContacts` remembers, with the same bound, lanes whose contact Meisa already has (an upsert,
a track or a tag succeeded): their tracks need no wait for an upsert.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_CAPACITY = 100_000  # tokens; ~200 bytes each, so about 20 MB at the bound


@dataclass(frozen=True, slots=True)
class LaneKey:
    """The lane of a call, and a lane that is now the same person (to fold into `key`)."""

    key: str
    merged_from: str | None = None


def _ext(body: Mapping[str, Any]) -> str | None:
    value = body.get("external_id")
    return None if value in (None, "") else f"x:{value}"


def _email(body: Mapping[str, Any]) -> str | None:
    value = body.get("email") or body.get("to_email")
    if not value:
        return None
    return f"m:{str(value).strip().lower()}"


class ContactIdentity:
    """Token (external_id or email) -> lane key, with links learnt from calls. One event loop."""

    def __init__(
        self,
        capacity: int = DEFAULT_CAPACITY,
        *,
        busy: Callable[[str], bool] = lambda key: False,
    ) -> None:
        self.capacity = max(2, capacity)
        self._busy = busy
        self._lanes: OrderedDict[str, str] = OrderedDict()

    def __len__(self) -> int:
        return len(self._lanes)

    def key_for(self, body: Mapping[str, Any], fallback: str = "") -> LaneKey:
        """The lane for a call body; links its external_id and email when it carries both."""
        ext, email = _ext(body), _email(body)
        if ext is None and email is None:
            return LaneKey(f"?:{fallback}")
        if ext is None:
            assert email is not None
            return LaneKey(self._get(email) or self._put(email, email))
        lane = self._get(ext)
        linked = None if email is None else self._get(email)
        if lane is None:  # a new external_id joins the lane its email already has, if any
            lane = self._put(ext, linked or ext)
        if email is None or linked == lane:
            return LaneKey(lane)
        self._put(email, lane)
        return LaneKey(lane, merged_from=linked)

    def _get(self, token: str) -> str | None:
        lane = self._lanes.get(token)
        if lane is not None:
            self._lanes.move_to_end(token)
        return lane

    def _put(self, token: str, lane: str) -> str:
        self._lanes[token] = lane
        self._lanes.move_to_end(token)
        self._evict()
        return lane

    def _evict(self) -> None:
        # Oldest first; a token of a busy lane goes to the back once, so a full map of busy
        # lanes still stops after one pass (the bound then holds as soon as they go quiet).
        passes = len(self._lanes)
        while len(self._lanes) > self.capacity and passes > 0:
            token, lane = self._lanes.popitem(last=False)
            passes -= 1
            if self._busy(lane):
                self._lanes[token] = lane
        while len(self._lanes) > self.capacity:
            self._lanes.popitem(last=False)


class KnownContacts:
    """Lanes whose contact Meisa is known to have, least recently used evicted past `capacity`."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = max(1, capacity)
        self._keys: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: str) -> None:
        self._keys[key] = None
        self._keys.move_to_end(key)
        while len(self._keys) > self.capacity:
            self._keys.popitem(last=False)

    def discard(self, key: str) -> None:
        self._keys.pop(key, None)
