from __future__ import annotations

import pytest

from airflow_provider_nxcloud.ratelimit import RateLimiter


class FakeClock:
    """Time that moves only when the limiter sleeps or the test says so."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_slots_are_evenly_spaced_from_the_first_request() -> None:
    clock = FakeClock()
    limiter = RateLimiter(4, clock=clock, sleep=clock.sleep)
    sent_at = []
    for _ in range(9):
        limiter.acquire()
        sent_at.append(clock.now)

    assert sent_at == pytest.approx([100 + i * 0.25 for i in range(9)])


def test_idle_time_is_not_banked_into_a_burst() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2, clock=clock, sleep=clock.sleep)
    limiter.acquire()
    clock.now += 60  # a long pause
    limiter.acquire()
    limiter.acquire()

    assert clock.sleeps == [pytest.approx(0.5)]


@pytest.mark.parametrize("rate", [0, -1, float("nan")])
def test_rate_must_be_positive(rate: float) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        RateLimiter(rate)
