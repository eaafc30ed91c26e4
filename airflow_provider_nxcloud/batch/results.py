"""What happened to each message of a batch: ``Outcome``, ``BatchResult`` and its XCom shape."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from airflow_provider_nxcloud.batch.messages import Message

# Where one message ended. ``retryable`` fails the task with Airflow retries; ``aborted`` (a
# credentials or account problem, the same for every message) also stops the batch;
# ``number_aborted`` (a business number's problem) stops that number's messages only.
Status = Literal["marked", "skipped", "retryable", "failed", "aborted", "number_aborted"]
BatchState = Literal["success", "skipped", "failed", "failed_retryable"]


@dataclass(frozen=True, slots=True)
class Outcome:
    message: Message
    status: Status
    code: int | None = None
    reason: str = ""
    # Marked without a request of its own: by this newer message of its conversation.
    via: Message | None = None
    # Marked by a ``typingIndicator`` request: the customer saw "typing...".
    typing_indicator: bool = False
    # Meta's code, when NXCloud passed a Meta error on (code 9099).
    meta_code: int | None = None

    @property
    def cause(self) -> str:
        """What the answer was, for grouping failures: ``Meta 130429``, ``code 9000``."""
        if self.meta_code is not None:
            return f"Meta {self.meta_code}"
        # HTTP 5xx, the network, TLS, a setting: the reason says which.
        return f"code {self.code}" if self.code is not None else "no NXCloud code"


@dataclass
class BatchResult:
    """What happened to every message; ``to_dict()`` is the operator's XCom value."""

    marked: list[Message] = field(default_factory=list)
    skipped: list[Outcome] = field(default_factory=list)
    failed: list[Outcome] = field(default_factory=list)
    not_attempted: list[Message] = field(default_factory=list)
    # Why the not-attempted messages of a business number were not sent (its number, the whole
    # batch stopped): one line per number, not per id.
    not_attempted_reasons: dict[str, str] = field(default_factory=dict)
    duplicates: int = 0
    abort: Outcome | None = None
    elapsed_seconds: float = 0.0
    # Requests the client sent for this batch (retries included), and the conversations its
    # messages belong to.
    requests: int = 0
    conversations: int = 0
    # Of ``marked``, those marked by a newer message's request (each with that message): the
    # requests one request per conversation saved.
    marked_via: dict[Message, Message] = field(default_factory=dict)
    # Of ``marked``, those an earlier try marked (read from the checkpoint): not sent again.
    marked_earlier: int = 0
    # The rate NXCloud throttled at (requests/s), a value for ``max_requests_per_second`` next time.
    rate_limit_per_second: float | None = None
    # Requests that marked their message and showed the customer "typing..." (at most one a unit).
    typing_indicators: int = 0

    @property
    def marked_with_newer(self) -> int:
        return len(self.marked_via)

    @property
    def total(self) -> int:
        return len(self.marked) + len(self.skipped) + len(self.failed) + len(self.not_attempted)

    @property
    def state(self) -> BatchState:
        """success / skipped (nothing marked, nothing failed) / failed / failed_retryable."""
        if self.abort is not None or any(o.status != "retryable" for o in self.failed):
            return "failed"
        if self.failed or self.not_attempted:
            return "failed_retryable"
        if not self.marked:
            return "skipped"
        return "success"

    def counts(self) -> dict[str, int]:
        return {
            "total": self.total,
            "marked": len(self.marked),
            "skipped": len(self.skipped),
            "failed": len(self.failed),
            "not_attempted": len(self.not_attempted),
            "duplicates": self.duplicates,
            "requests": self.requests,
            "conversations": self.conversations,
            "marked_earlier": self.marked_earlier,
            "typing_indicators": self.typing_indicators,
            "marked_with_newer": self.marked_with_newer,
        }

    def failures_by_cause(self) -> str:
        """The failures grouped by what was answered, most first: ``Meta 130429 x 931, code 9000 x 2``."""
        causes = Counter(outcome.cause for outcome in self.failed)
        return ", ".join(f"{cause} x {count}" for cause, count in causes.most_common())

    def summary(self) -> str:
        counts = self.counts()
        shown = ("marked", "skipped", "failed", "not_attempted", "duplicates")
        parts = [f"{counts[k]} {k.replace('_', ' ')}" for k in shown]
        if self.failed:
            parts[2] += f" ({self.failures_by_cause()})"
        return f"{counts['total']} messages: {', '.join(parts)}"

    def describe_requests(self) -> str:
        """What the task log says about requests, and how many one request per conversation saved."""
        earlier = f"; {self.marked_earlier} marked by an earlier try, not sent again" * bool(
            self.marked_earlier
        )
        return (
            f"{self.requests} requests (retries included) for {self.conversations} conversations; "
            f"{self.marked_with_newer} requests saved by marking messages through a newer one of "
            f"their conversation{earlier}"
        )

    def describe_failure(self) -> str:
        """One paragraph saying why the batch did not succeed and what to do."""
        if self.abort is not None:
            first = self.abort
            return (
                f"Stopped sending after message {first.message.message_id} (business phone "
                f"{first.message.business_phone}, {first.cause}): {first.reason}. {self.summary()}."
            )
        failed = ""
        if self.failed:
            first = self.failed[0]
            plural = "s" if len(self.failed) != 1 else ""
            failed = (
                f"{len(self.failed)} message{plural} failed: {self.failures_by_cause()}. "
                f"First: {first.message.message_id}: {first.reason}. "
            )
        stopped = "".join(f"Business phone {p}: {r}. " for p, r in self.not_attempted_reasons.items())
        return f"{failed}{stopped}{self.summary()}."

    def to_dict(self) -> dict[str, Any]:
        def entry(outcome: Outcome) -> dict[str, Any]:
            return {
                "message_id": outcome.message.message_id,
                "business_phone": outcome.message.business_phone,
                "code": outcome.code,
                "meta_code": outcome.meta_code,
                "reason": outcome.reason,
            }

        document: dict[str, Any] = {
            "marked": [m.message_id for m in self.marked],
            # Which newer message's request marked an id; the others in ``marked`` had their own.
            "marked_with_newer": {m.message_id: via.message_id for m, via in self.marked_via.items()},
            "skipped": [entry(o) for o in self.skipped],
            "failed": [{**entry(o), "retryable": o.status == "retryable"} for o in self.failed],
            "not_attempted": [m.message_id for m in self.not_attempted],
            "counts": self.counts(),
        }
        # Only when NXCloud throttled: a downstream ``@task -> dict`` pushes each key as an XCom
        # of its own (multiple_outputs), and Airflow 3.0's API refuses a None XCom value (422).
        if self.rate_limit_per_second is not None:
            document["rate_limit_per_second"] = self.rate_limit_per_second
        if self.not_attempted_reasons:
            document["not_attempted_reasons"] = dict(self.not_attempted_reasons)
        return document
