"""The circuit breaker of a link, driven by a fake clock."""

import doctest

import pytest

from cardswitch.v1 import admin_pb2
from switch import breaker as breaker_module
from switch.breaker import CircuitBreaker


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def opened(clock: FakeClock, threshold: int = 3, open_s: float = 5.0) -> CircuitBreaker:
    breaker = CircuitBreaker(failure_threshold=threshold, open_s=open_s, clock=clock)
    for _ in range(threshold):
        breaker.record_failure()
    assert breaker.state == "OPEN"
    return breaker


def test_module_examples() -> None:
    assert doctest.testmod(breaker_module).failed == 0


def test_a_new_breaker_is_closed_and_lets_requests_through(clock: FakeClock) -> None:
    breaker = CircuitBreaker(clock=clock)
    assert (breaker.state, breaker.consecutive_failures, breaker.allow()) == ("CLOSED", 0, True)
    assert (breaker.failure_threshold, breaker.open_s) == (5, 5.0)


def test_it_opens_at_the_threshold_not_before(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failure_threshold=3, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    assert (breaker.state, breaker.consecutive_failures, breaker.allow()) == ("CLOSED", 2, True)
    breaker.record_failure()
    assert (breaker.state, breaker.consecutive_failures, breaker.allow()) == ("OPEN", 3, False)


def test_it_stays_open_until_open_s_has_passed(clock: FakeClock) -> None:
    breaker = opened(clock, open_s=5.0)
    clock.now += 4.999
    assert (breaker.allow(), breaker.state) == (False, "OPEN")


def test_once_open_s_has_passed_it_reads_half_open_before_any_request(clock: FakeClock) -> None:
    breaker = opened(clock, open_s=5.0)
    clock.now += 5.0
    assert (breaker.state, breaker.consecutive_failures) == ("HALF_OPEN", 3)


def test_after_open_s_exactly_one_probe_goes_through(clock: FakeClock) -> None:
    breaker = opened(clock, open_s=5.0)
    clock.now += 5.0
    assert (breaker.allow(), breaker.state) == (True, "HALF_OPEN")
    assert [breaker.allow() for _ in range(3)] == [False, False, False]
    assert breaker.state == "HALF_OPEN"


def test_a_successful_probe_closes_it(clock: FakeClock) -> None:
    breaker = opened(clock)
    clock.now += 5.0
    assert breaker.allow()
    breaker.record_success()
    assert (breaker.state, breaker.consecutive_failures, breaker.allow()) == ("CLOSED", 0, True)


def test_a_failed_probe_reopens_it_with_a_fresh_timer(clock: FakeClock) -> None:
    breaker = opened(clock, threshold=3, open_s=5.0)
    clock.now += 5.0
    assert breaker.allow()
    clock.now += 1.0
    breaker.record_failure()
    assert (breaker.state, breaker.consecutive_failures) == ("OPEN", 4)
    clock.now += 4.999
    assert breaker.allow() is False
    clock.now += 0.001
    assert (breaker.allow(), breaker.state) == (True, "HALF_OPEN")


def test_a_success_resets_the_count_of_consecutive_failures(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failure_threshold=3, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()
    assert (breaker.state, breaker.consecutive_failures) == ("CLOSED", 2)


def test_a_late_failure_while_open_keeps_the_timer(clock: FakeClock) -> None:
    breaker = opened(clock, threshold=3, open_s=5.0)
    clock.now += 3.0
    breaker.record_failure()
    clock.now += 2.0
    assert (breaker.consecutive_failures, breaker.allow()) == (4, True)


def test_a_probe_never_reported_is_presumed_lost_after_open_s(clock: FakeClock) -> None:
    breaker = opened(clock, open_s=5.0)
    clock.now += 5.0
    assert breaker.allow()
    clock.now += 4.999
    assert breaker.allow() is False
    clock.now += 0.001
    assert (breaker.allow(), breaker.state) == (True, "HALF_OPEN")


def test_reset_closes_it_by_hand(clock: FakeClock) -> None:
    breaker = opened(clock)
    breaker.reset()
    assert (breaker.state, breaker.consecutive_failures, breaker.allow()) == ("CLOSED", 0, True)


def test_from_proto_applies_defaults_for_zero_values(clock: FakeClock) -> None:
    defaults = CircuitBreaker.from_proto(admin_pb2.CircuitBreaker(), clock=clock)
    assert (defaults.failure_threshold, defaults.open_s) == (5, 5.0)
    custom = CircuitBreaker.from_proto(
        admin_pb2.CircuitBreaker(failure_threshold=2, open_ms=1500), clock=clock)
    assert (custom.failure_threshold, custom.open_s) == (2, 1.5)


def test_from_proto_refuses_negative_settings() -> None:
    with pytest.raises(ValueError, match=r"^breaker\.failure_threshold: must not be negative, "
                                         r"got -1$"):
        CircuitBreaker.from_proto(admin_pb2.CircuitBreaker(failure_threshold=-1))
    with pytest.raises(ValueError, match=r"^breaker\.open_ms: must not be negative, got -5$"):
        CircuitBreaker.from_proto(admin_pb2.CircuitBreaker(open_ms=-5))


def test_constructor_refuses_impossible_settings() -> None:
    with pytest.raises(ValueError, match=r"^failure_threshold: must be at least 1, got 0$"):
        CircuitBreaker(failure_threshold=0)
    with pytest.raises(ValueError, match=r"^open_s: must not be negative, got -1.0$"):
        CircuitBreaker(open_s=-1.0)


def test_to_proto_reports_settings_and_state(clock: FakeClock) -> None:
    breaker = opened(clock, threshold=3, open_s=2.5)
    assert breaker.to_proto() == admin_pb2.CircuitBreaker(
        failure_threshold=3, open_ms=2500, state=admin_pb2.BREAKER_STATE_OPEN,
        consecutive_failures=3)
