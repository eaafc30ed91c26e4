"""Pure: a batch's arguments checked once (workers, age, grouping, ``code_actions``) and its policy.

The operator imports this when a DAG file is parsed, to fail bad arguments then: keep it light.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from airflow_provider_nxcloud.client.api import CONFIGURATION_CODES, TRANSIENT_CODES, is_auth_code
from airflow_provider_nxcloud.client.errors import NxCloudConfigError

if TYPE_CHECKING:
    from airflow_provider_nxcloud.batch.results import Status

# What a user may ask for a code in ``code_actions``.
CodeAction = Literal["retry", "skip", "fail"]
CodeActions = Mapping[int, CodeAction]

CODE_ACTIONS: dict[CodeAction, Status] = {"retry": "retryable", "skip": "skipped", "fail": "failed"}


def check_positive(name: str, value: Any, *, integer: bool) -> None:
    """One-line error for an argument that must be a positive int (or number)."""
    kind = "int" if integer else "number"
    valid_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not valid_type or not value > 0:
        raise NxCloudConfigError(f"{name} must be a positive {kind}, got {value!r}")


def validate_code_actions(code_actions: Any) -> dict[int, CodeAction]:
    """Check a user's ``code_actions``; one-line errors naming the key and the fix."""
    if code_actions is None:
        return {}
    if not isinstance(code_actions, Mapping):
        raise NxCloudConfigError(
            f'code_actions must be a dict like {{9006: "skip"}}, got {type(code_actions).__name__}'
        )
    validated: dict[int, CodeAction] = {}
    for key, action in code_actions.items():
        # Keys arrive as strings from JSON params and templated configs: "9006" means 9006.
        code = int(key) if isinstance(key, str) and key.strip().lstrip("-").isdigit() else key
        if isinstance(code, bool) or not isinstance(code, int):
            raise NxCloudConfigError(f"code_actions: key {code!r} is not an NXCloud code; use ints like 9006")
        if code == 0:
            raise NxCloudConfigError("code_actions: code 0 means marked and cannot be overridden")
        if action not in CODE_ACTIONS:
            raise NxCloudConfigError(
                f"code_actions[{code}]: {action!r} is not an action; use 'retry', 'skip' or 'fail'"
            )
        validated[code] = action
    return validated


@dataclass(frozen=True)
class BatchOptions:
    """A batch's arguments, checked once: the operator checks them when the DAG file is parsed."""

    max_workers: int = 8
    code_actions: Mapping[int, CodeAction] = field(default_factory=dict)
    max_message_age_days: float | None = 30
    one_request_per_conversation: bool = True

    @classmethod
    def checked(
        cls,
        *,
        max_workers: Any = 8,
        code_actions: Any = None,
        max_message_age_days: Any = 30,
        one_request_per_conversation: Any = True,
    ) -> BatchOptions:
        check_positive("max_workers", max_workers, integer=True)
        if max_message_age_days is not None:
            check_positive("max_message_age_days", max_message_age_days, integer=False)
        if not isinstance(one_request_per_conversation, bool):
            raise NxCloudConfigError(
                f"one_request_per_conversation must be True or False, got {one_request_per_conversation!r}"
            )
        return cls(
            max_workers,
            validate_code_actions(code_actions),
            max_message_age_days,
            one_request_per_conversation,
        )

    @cached_property
    def retry_codes(self) -> frozenset[int]:
        """The codes the client should retry, after the user's ``code_actions``."""
        retry = {code for code, action in self.code_actions.items() if action == "retry"}
        no_retry = {code for code, action in self.code_actions.items() if action != "retry"}
        return frozenset((TRANSIENT_CODES | retry) - no_retry)

    def decide(self, code: int | None, *, transient: bool) -> Status:
        """What one final answer (after the client's own retries) means for its message."""
        if code == 0:
            return "marked"
        if code is not None and code in self.code_actions:
            return CODE_ACTIONS[self.code_actions[code]]
        if transient or code in TRANSIENT_CODES:
            return "retryable"
        if code is None or is_auth_code(code) or code in CONFIGURATION_CODES:
            # No code (a redirect, a 404, TLS) or a credentials/account problem: the same for every
            # message, so sending more would only repeat it.
            return "aborted"
        return "failed"
