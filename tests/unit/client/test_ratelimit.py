from __future__ import annotations

import logging

import pytest

from airflow_provider_nxcloud.client.ratelimit import (
    AdaptiveRateLimiter,
    Cubic,
    RateLimiter,
    RateMeter,
    TokenBucket,
)


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


# -- the adaptive limiter's parts: pure, on explicit times --


def test_meter_measures_from_the_first_send_before_a_bucket_closes() -> None:
    meter = RateMeter()
    meter.start(10.0)
    for _ in range(5):
        meter.record(10.05)  # the first round trip's answers

    # botocore reports 0 here; 5 answers in the first 50 ms are 100/s.
    assert meter.rate(10.05) == pytest.approx(100)


def test_meter_takes_its_first_bucket_unsmoothed_then_smooths() -> None:
    meter = RateMeter()
    meter.start(0.0)
    for i in range(20):  # 40/s for the first 0.5 s
        meter.record(i * 0.025)
    assert meter.rate(0.5) == pytest.approx(40)
    for i in range(5):  # 10/s for the next 0.5 s
        meter.record(0.5 + i * 0.1)

    assert meter.rate(1.0) == pytest.approx(0.8 * 10 + 0.2 * 40)


def test_meter_spreads_a_count_over_idle_buckets() -> None:
    meter = RateMeter()
    meter.start(0.0)
    for _ in range(10):
        meter.record(0.1)

    assert meter.rate(2.0) == pytest.approx(10 / 2.0)


def test_cubic_cuts_to_beta_and_grows_back_to_the_rate_throttled_at() -> None:
    cubic = Cubic()
    assert cubic.cut(40, now=0.0) == pytest.approx(28)
    k = (40 * 0.3 / 0.4) ** (1 / 3)

    assert cubic.limit(0.0) == pytest.approx(28)
    assert cubic.limit(k / 2) < 40
    assert cubic.limit(k) == pytest.approx(40)
    assert cubic.limit(k + 2) == pytest.approx(40 + 0.4 * 8)


def test_token_bucket_lines_callers_up_at_its_rate() -> None:
    bucket = TokenBucket(rate=10, now=0.0)
    places = [bucket.take(0.0) for _ in range(3)]

    assert [bucket.wait(p, 0.0) for p in places] == pytest.approx([0.1, 0.2, 0.3])
    assert bucket.wait(places[0], 0.1) == 0


def test_token_bucket_rechecks_places_taken_before_a_rate_change() -> None:
    bucket = TokenBucket(rate=10, now=0.0)
    third = [bucket.take(0.0) for _ in range(3)][-1]
    bucket.set_rate(1, now=0.1)  # throttled: one token was made at 10/s, the rest come at 1/s

    assert bucket.wait(third, 0.1) == pytest.approx(2.0)
    bucket.set_rate(20, now=0.2)
    assert bucket.wait(third, 0.2) == pytest.approx(1.9 / 20)


def test_token_bucket_saves_at_most_one_second_and_never_goes_below_the_floor() -> None:
    bucket = TokenBucket(rate=4, now=0.0)
    places = [bucket.take(60.0) for _ in range(5)]  # a minute idle saved 4 tokens, not 240
    assert [bucket.wait(p, 60.0) for p in places] == pytest.approx([0, 0, 0, 0, 0.25])
    bucket.set_rate(0.01, now=60.0)

    assert bucket.rate == 0.5


# -- the adaptive limiter: threads waiting on a fake clock --


class FakeWaitClock(FakeClock):
    def wait(self, condition: object, seconds: float) -> None:
        self.sleep(seconds)


def _limiter(clock: FakeWaitClock, **kwargs: float) -> AdaptiveRateLimiter:
    return AdaptiveRateLimiter(clock=clock, wait=clock.wait, **kwargs)  # type: ignore[arg-type]


def test_adaptive_limiter_costs_nothing_until_the_first_throttle() -> None:
    clock = FakeWaitClock()
    limiter = _limiter(clock)
    for _ in range(100):
        sent = limiter.acquire()
        clock.now += 0.001
        limiter.record(sent, throttled=False)

    assert clock.sleeps == []
    assert not limiter.engaged
    assert limiter.limit_found is None


def test_first_throttle_cuts_near_the_accepted_rate_and_spaces_sends() -> None:
    clock = FakeWaitClock()
    limiter = _limiter(clock)
    sent = [limiter.acquire() for _ in range(32)]  # 32 workers at once
    clock.now += 0.05
    for at in sent[:2]:
        limiter.record(at, throttled=False)
    for at in sent[2:]:
        limiter.record(at, throttled=True)  # 30 refusals of one burst: one cut, not 30

    assert limiter.limit_found == pytest.approx(2 / 0.05)
    assert limiter.rate == pytest.approx(0.7 * 40)
    before = clock.now
    limiter.acquire()
    limiter.acquire()
    assert clock.now - before == pytest.approx(2 / 28)


def test_a_first_cut_from_an_estimate_does_not_climb_back_to_it() -> None:
    # The first round trip's rate includes the account's burst: returning to it overshoots.
    cubic = Cubic()
    assert cubic.cut(100, now=0.0, estimate=True) == pytest.approx(70)
    assert cubic.limit(1.0) == pytest.approx(70 + 0.4)
    assert cubic.w_max == 100
    cubic.cut(66, now=2.0)  # a measured rate: the curve returns to it

    assert cubic.limit(2.0 + (66 * 0.3 / 0.4) ** (1 / 3)) == pytest.approx(66)


def test_a_throttle_before_anything_was_accepted_does_not_cut_to_the_floor() -> None:
    clock = FakeWaitClock()
    limiter = _limiter(clock)
    sent = limiter.acquire()
    clock.now += 0.05
    limiter.record(sent, throttled=True)

    assert not limiter.engaged


def test_the_limit_grows_back_between_throttles_under_the_ceiling() -> None:
    clock = FakeWaitClock()
    limiter = _limiter(clock, ceiling=30.0)
    first = limiter.acquire()
    clock.now += 0.49
    for _ in range(20):
        limiter.record(first, throttled=False)  # 40/s accepted in the first 0.5 s
    limiter.record(limiter.acquire(), throttled=True)
    assert limiter.rate == pytest.approx(0.7 * 20 / 0.49)
    for _ in range(100):  # answers at ~30/s for 10 s
        clock.now += 0.1
        limiter.record(clock.now, throttled=False)
        limiter.record(clock.now, throttled=False)
        limiter.record(clock.now, throttled=False)

    assert limiter.rate == pytest.approx(30)  # CUBIC is above 40 by now; the ceiling holds


def test_cancel_releases_a_waiting_thread() -> None:
    clock = FakeWaitClock()
    limiter = _limiter(clock)
    first = limiter.acquire()
    clock.now += 0.05
    limiter.record(first, throttled=False)
    limiter.record(limiter.acquire(), throttled=True)
    limiter.cancel()

    before = clock.now
    for _ in range(10):
        limiter.acquire()
    assert clock.now == before


def test_engaging_and_big_moves_of_the_limit_found_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeWaitClock()
    limiter = _limiter(clock)
    first = limiter.acquire()
    clock.now += 0.499
    for _ in range(20):
        limiter.record(first, throttled=False)

    def answers(per_step: int, steps: int) -> None:
        for step in range(1, steps + 1):
            clock.now += 0.2
            for _ in range(per_step):
                limiter.record(clock.now, throttled=False)
            limiter.record(clock.now, throttled=step % 10 == 0)

    clock.now += 0.1  # the first 0.5 s bucket is closed: 40/s measured, not estimated
    with caplog.at_level(logging.INFO, logger="airflow_provider_nxcloud.client.ratelimit"):
        limiter.record(limiter.acquire(), throttled=True)
        answers(8, 30)  # accepted at 40/s, throttled now and then: nothing new to say
        quiet = len(caplog.records)
        answers(2, 20)  # the account's limit fell to about 10/s

    assert quiet == 1
    assert caplog.records[0].levelname == "WARNING"
    assert "at 40.0 requests/s" in caplog.records[0].getMessage()
    assert [r.levelname for r in caplog.records[1:]] == ["INFO"]
    assert "throttled at 1" in caplog.records[1].getMessage()
