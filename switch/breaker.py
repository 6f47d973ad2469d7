"""A circuit breaker per link: stop sending to an issuer that keeps failing, probe it later.

CLOSED     requests flow; ``failure_threshold`` failures in a row open it.
OPEN       nothing is sent (the caller stands in or answers 91) until ``open_s`` has passed.
HALF_OPEN  ``open_s`` has passed: the next :meth:`CircuitBreaker.allow` lets one probe through
           and every other call is refused while it is out. The probe's success closes the
           breaker; its failure opens it again for a fresh ``open_s``.

OPEN turns into HALF_OPEN by itself when its time is up (reading :attr:`~CircuitBreaker.state`
shows it), so a caller ranking links by state puts a recovering link back in front and its next
request is the probe.

Only failures that mean the *link* is sick count, and the caller decides which: a timeout, a
refused or broken connection, garbage on the wire. An issuer's decline ("05", "51"...) is a
success here -- the issuer answered. Time comes from the injected ``clock`` (seconds, monotonic),
so the breaker does no I/O and tests drive it with a fake clock. One breaker belongs to one
event loop; it is not thread-safe.

>>> now = [0.0]
>>> breaker = CircuitBreaker(failure_threshold=2, open_s=5.0, clock=lambda: now[0])
>>> breaker.record_failure(); breaker.record_failure(); breaker.state, breaker.allow()
('OPEN', False)
>>> now[0] = 5.0
>>> breaker.state, breaker.allow(), breaker.allow()
('HALF_OPEN', True, False)
>>> breaker.record_success(); breaker.state
'CLOSED'
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from cardswitch.v1 import admin_pb2

State = Literal["CLOSED", "OPEN", "HALF_OPEN"]

DEFAULT_FAILURE_THRESHOLD = 5
DEFAULT_OPEN_S = 5.0

_STATE_PROTO: dict[State, admin_pb2.BreakerState] = {
    "CLOSED": admin_pb2.BREAKER_STATE_CLOSED,
    "OPEN": admin_pb2.BREAKER_STATE_OPEN,
    "HALF_OPEN": admin_pb2.BREAKER_STATE_HALF_OPEN,
}


class CircuitBreaker:
    """The breaker of one link; see the module docstring for its states."""

    def __init__(self, failure_threshold: int = DEFAULT_FAILURE_THRESHOLD,
                 open_s: float = DEFAULT_OPEN_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold: must be at least 1, got {failure_threshold}")
        if open_s < 0:
            raise ValueError(f"open_s: must not be negative, got {open_s}")
        self.failure_threshold = failure_threshold
        self.open_s = open_s
        self._clock = clock
        self._state: State = "CLOSED"
        self._failures = 0
        #: When it last opened.
        self._opened_at = 0.0
        #: When the probe went out; None while no probe is out.
        self._probe_at: float | None = None

    @classmethod
    def from_proto(cls, msg: admin_pb2.CircuitBreaker,
                   clock: Callable[[], float] = time.monotonic) -> CircuitBreaker:
        """A closed breaker with ``msg``'s settings; 0 means the default (5 failures, 5000 ms).

        >>> CircuitBreaker.from_proto(admin_pb2.CircuitBreaker(open_ms=250)).open_s
        0.25
        """
        if msg.failure_threshold < 0:
            raise ValueError(f"breaker.failure_threshold: must not be negative, "
                             f"got {msg.failure_threshold}")
        if msg.open_ms < 0:
            raise ValueError(f"breaker.open_ms: must not be negative, got {msg.open_ms}")
        return cls(msg.failure_threshold or DEFAULT_FAILURE_THRESHOLD,
                   msg.open_ms / 1000 if msg.open_ms else DEFAULT_OPEN_S, clock)

    def to_proto(self) -> admin_pb2.CircuitBreaker:
        """Settings and the current state, for the admin API."""
        return admin_pb2.CircuitBreaker(
            failure_threshold=self.failure_threshold, open_ms=round(self.open_s * 1000),
            state=_STATE_PROTO[self.state], consecutive_failures=self._failures)

    @property
    def state(self) -> State:
        """The state now: an OPEN breaker whose ``open_s`` has passed reads HALF_OPEN."""
        if self._state == "OPEN" and self._clock() - self._opened_at >= self.open_s:
            self._state, self._probe_at = "HALF_OPEN", None
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def allow(self) -> bool:
        """May a request be sent now? Always when CLOSED; never when OPEN; when HALF_OPEN, only
        the one probe.

        A probe whose outcome is never recorded (its task cancelled, say) is taken as lost after
        another ``open_s``, and a new probe is let through, so the link cannot stay shut forever.
        """
        state = self.state
        if state != "HALF_OPEN":
            return state == "CLOSED"
        now = self._clock()
        if self._probe_at is not None and now - self._probe_at < self.open_s:
            return False
        self._probe_at = now
        return True

    def record_success(self) -> None:
        """The link answered: close the breaker and forget earlier failures, from any state."""
        self._state, self._failures, self._probe_at = "CLOSED", 0, None

    def record_failure(self) -> None:
        """The link is sick (timeout, connection refused or broken). Opens the breaker at the
        threshold, or again on a failure while HALF_OPEN (the probe's, most likely); a failure
        while OPEN (a request sent before it opened) keeps the current timer."""
        self._failures += 1
        state = self.state
        if state == "HALF_OPEN" or (state == "CLOSED" and self._failures >= self.failure_threshold):
            self._state, self._opened_at, self._probe_at = "OPEN", self._clock(), None

    def reset(self) -> None:
        """Close by hand (admin ``LINK_ACTION_RESET_BREAKER``)."""
        self.record_success()
