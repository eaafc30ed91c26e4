"""What a fault campaign injects and how it is set up: the issue's fault mix, ids, settings."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Literal

from airflow_provider_nxcloud.get_provider_info import CONN_FIELDS
from airflow_provider_nxcloud.testing.sandbox import FAULT_KINDS

# Per request: 10 % code -1, 5 % code 9001, 5 % HTTP 503, 2 % HTTP 429 (Retry-After: 1),
# 2 % dropped connections, 1 % HTML error page with status 200, 1 % slower than the timeout.
ISSUE_FAULT_RATES: dict[str, float] = {
    "-1": 0.10,
    "9001": 0.05,
    "503": 0.05,
    "429": 0.02,
    "drop": 0.02,
    "html": 0.01,
    "slow": 0.01,
}
# The hook's default, used when the connection does not say.
DEFAULT_MAX_RETRIES: int = CONN_FIELDS["max_retries"]["schema"]["default"]


def campaign_ids(count: int) -> list[str]:
    """Distinct ids shaped like WhatsApp's (``wamid.`` + base64-ish)."""
    return [f"wamid.HBgNODYxMzgwMDAwMDAwMBUCABEYEkRFTDEx{index:07d}A" for index in range(count)]


def draw_fault(rng: random.Random, rates: dict[str, float]) -> str | None:
    roll = rng.random()
    for kind in FAULT_KINDS:
        roll -= rates.get(kind, 0.0)
        if roll < 0:
            return kind
    return None


def scripted_faults(
    ids: list[str], rates: dict[str, float], seed: int, *, longest: int = 24
) -> dict[str, list[str]]:
    """Per id, the faults its requests meet in order: drawn per request until one is clean."""
    rng = random.Random(seed)
    scripts: dict[str, list[str]] = {}
    for message_id in ids:
        kinds: list[str] = []
        while len(kinds) < longest and (kind := draw_fault(rng, rates)) is not None:
            kinds.append(kind)
        if kinds:
            scripts[message_id] = kinds
    return scripts


@dataclass(kw_only=True)
class CampaignConfig:
    """One campaign's size, fault mix and settings; the defaults are the full-size run's."""

    count: int
    mode: Literal["rates", "scripted"] = "rates"
    seed: int = 12
    rates: dict[str, float] = field(default_factory=lambda: dict(ISSUE_FAULT_RATES))
    retry_after: float = 1.0
    # None: the defaults a user gets (timeout 30 s, backoff 0.5 s doubling up to 30 s).
    timeout: float | None = None
    retry_wait: tuple[float, float] | None = None
    slow_margin: float = 2.0  # the slow fault answers this long after the client's timeout
    latency: float = 0.0

    @property
    def effective_timeout(self) -> float:
        return 30.0 if self.timeout is None else self.timeout
