"""The deployment group: each test starts its own servers; the figures they measure end the run."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable

    from _pytest.terminal import TerminalReporter

# (scenario, measure, value), in the order measured; printed after the run.
FIGURES: list[tuple[str, str, str]] = []


@pytest.fixture
def figure(request: pytest.FixtureRequest) -> Callable[[str, object], None]:
    """``figure(measure, value)`` records one measured figure under the test's scenario name."""
    scenario = request.node.name.removeprefix("test_")

    def record(measure: str, value: object) -> None:
        FIGURES.append((scenario, measure, str(value)))

    return record


def pytest_terminal_summary(terminalreporter: TerminalReporter) -> None:
    if not FIGURES:
        return
    terminalreporter.section("deployment figures")
    widths = [max(len(row[i]) for row in FIGURES) for i in range(2)]
    for scenario, measure, value in FIGURES:
        terminalreporter.write_line(f"{scenario:<{widths[0]}}  {measure:<{widths[1]}}  {value}")
