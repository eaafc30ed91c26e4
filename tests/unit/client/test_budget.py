"""The retry budget (pure logic, a fake clock): what exhausts it, what does not, and its log."""

from __future__ import annotations

import logging
import random

import pytest

from airflow_provider_nxcloud.client.budget import CAPACITY, RetryBudget
from airflow_provider_nxcloud.testing.fault_mix import ISSUE_FAULT_RATES


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _budget(clock: _Clock, **arguments: float) -> RetryBudget:
    return RetryBudget(logger=logging.getLogger("test.budget"), clock=clock, **arguments)


def test_it_runs_out_after_half_its_capacity_in_net_failures() -> None:
    budget = _budget(_Clock())
    for _ in range(int(CAPACITY / 2) - 1):
        budget.record(failed=True)
    assert not budget.exhausted
    budget.record(failed=True)
    assert budget.exhausted


def test_successes_earn_back_what_failures_spent() -> None:
    budget = _budget(_Clock())
    for _ in range(1000):  # one in two failing: a bad day, not an outage
        budget.record(failed=True)
        budget.record(failed=False)
    assert not budget.exhausted


def test_the_issue_fault_mix_never_exhausts_it() -> None:
    # testing/fault_mix.py: 26 % of requests fail at random; throttles (429) count as neither.
    rate = sum(ISSUE_FAULT_RATES.values())
    assert rate == pytest.approx(0.26)
    rng = random.Random(22)
    budget = _budget(_Clock())
    lowest = CAPACITY
    for _ in range(200_000):
        budget.record(failed=rng.random() < rate)
        lowest = min(lowest, budget.tokens)
    assert not budget.exhausted
    assert lowest > CAPACITY * 0.6, lowest


def test_exhaustion_and_recovery_are_logged_once_each(caplog: pytest.LogCaptureFixture) -> None:
    clock = _Clock()
    woken: list[bool] = []
    budget = RetryBudget(
        logger=logging.getLogger("test.budget"), clock=clock, on_exhausted=lambda: woken.append(True)
    )
    with caplog.at_level(logging.INFO, logger="test.budget"):
        for _ in range(500):
            budget.record(failed=True)
        assert budget.exhausted
        for _ in range(500):
            budget.record(failed=False)
        assert not budget.exhausted
    lines = [r.getMessage() for r in caplog.records]
    assert sum("retry budget exhausted" in line for line in lines) == 1
    assert sum("retry budget recovered" in line for line in lines) == 1
    assert woken == [True]


def test_time_refills_it_so_a_long_lived_client_recovers() -> None:
    clock = _Clock()
    budget = _budget(clock, refill_per_second=0.1)
    for _ in range(60):
        budget.record(failed=True)
    assert budget.exhausted
    clock.now += 400.0  # +40 tokens: from 40 to 80, above the 3/4 where it recovers
    assert not budget.exhausted
