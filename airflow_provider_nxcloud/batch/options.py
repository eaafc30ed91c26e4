"""Pure: a batch's arguments checked once (workers, age, grouping, ``code_actions``) and its policy.

The operator imports this when a DAG file is parsed, to fail bad arguments then: keep it light.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from airflow_provider_nxcloud.client.api import (
    META_KEY_PREFIX,
    CodeKey,
    classify,
    meta_key,
    setting_for,
)
from airflow_provider_nxcloud.client.config import check_positive
from airflow_provider_nxcloud.client.errors import NxCloudConfigError

if TYPE_CHECKING:
    from airflow_provider_nxcloud.batch.results import Status
    from airflow_provider_nxcloud.client.api import Meaning

MAX_WORKERS = 8
# WhatsApp marks messages read within 30 days of receipt; older ones are skipped unsent.
MAX_MESSAGE_AGE_DAYS = 30.0

# What a user may ask for a code in ``code_actions``: keyed by NXCloud code (9006), or by Meta
# code for a 9099 (``"meta:131009"``), which wins over a 9099 key.
CodeAction = Literal["retry", "skip", "fail"]
CodeActions = Mapping[CodeKey, CodeAction]

CODE_ACTIONS: dict[CodeAction, Status] = {"retry": "retryable", "skip": "skipped", "fail": "failed"}
# A final answer's meaning (``api.classify``) -> its message's status, unless ``code_actions`` says.
STATUS_OF_MEANING: dict[Meaning, Status] = {
    "marked": "marked",
    "transient": "retryable",
    "abort": "aborted",
    "number": "number_aborted",
    "message": "failed",
}


def _code_key(key: Any) -> CodeKey:
    """A ``code_actions`` key as the batch looks it up: an int, or ``"meta:<digits>"``."""
    if isinstance(key, str) and key.strip().lower().startswith(META_KEY_PREFIX):
        digits = key.strip()[len(META_KEY_PREFIX) :].strip()
        if not digits.isdigit():
            raise NxCloudConfigError(
                f'code_actions: key {key!r} is not a Meta code; use "meta:" and digits, like "meta:131009"'
            )
        return meta_key(int(digits))
    # Keys arrive as strings from JSON params and templated configs: "9006" means 9006.
    code = int(key) if isinstance(key, str) and key.strip().lstrip("-").isdigit() else key
    if isinstance(code, bool) or not isinstance(code, int):
        raise NxCloudConfigError(
            f'code_actions: key {code!r} is not an NXCloud code; use ints like 9006, or "meta:131009" '
            "for a Meta code"
        )
    if code == 0:
        raise NxCloudConfigError("code_actions: code 0 means marked and cannot be overridden")
    return code


def validate_code_actions(code_actions: Any) -> dict[CodeKey, CodeAction]:
    """Check a user's ``code_actions``; one-line errors naming the key and the fix."""
    if code_actions is None:
        return {}
    if not isinstance(code_actions, Mapping):
        raise NxCloudConfigError(
            f'code_actions must be a dict like {{9006: "skip"}}, got {type(code_actions).__name__}'
        )
    validated: dict[CodeKey, CodeAction] = {}
    for key, action in code_actions.items():
        code = _code_key(key)
        if action not in CODE_ACTIONS:
            raise NxCloudConfigError(
                f"code_actions[{code!r}]: {action!r} is not an action; use 'retry', 'skip' or 'fail'"
            )
        validated[code] = action
    return validated


@dataclass(frozen=True)
class BatchOptions:
    """A batch's arguments, checked on creation: the operator builds one when a DAG file is parsed."""

    max_workers: int = MAX_WORKERS
    code_actions: CodeActions = field(default_factory=dict)
    max_message_age_days: float | None = MAX_MESSAGE_AGE_DAYS
    one_request_per_conversation: bool = True
    # Each unit's first marked request also shows "typing..." (``typingIndicator``).
    typing_indicator: bool = False

    def __post_init__(self) -> None:
        check_positive("max_workers", self.max_workers, integer=True)
        if self.max_message_age_days is not None:
            check_positive("max_message_age_days", self.max_message_age_days, integer=False)
        if not isinstance(self.one_request_per_conversation, bool):
            raise NxCloudConfigError(
                "one_request_per_conversation must be True or False, got "
                f"{self.one_request_per_conversation!r}"
            )
        if not isinstance(self.typing_indicator, bool):
            raise NxCloudConfigError(f"typing_indicator must be True or False, got {self.typing_indicator!r}")
        object.__setattr__(self, "code_actions", validate_code_actions(self.code_actions))

    @cached_property
    def retry_overrides(self) -> dict[CodeKey, bool]:
        """For the client: the codes (and Meta codes) the user asked to retry (True) or not (False)."""
        return {code: action == "retry" for code, action in self.code_actions.items()}

    def decide(self, code: int | None, *, transient: bool, meta_code: int | None = None) -> Status:
        """What one final answer (after the client's own retries) means for its message."""
        action = setting_for(self.code_actions, code, meta_code)
        if action is not None:
            return CODE_ACTIONS[action]
        if transient:
            return "retryable"
        return STATUS_OF_MEANING[classify(code, meta=meta_code).meaning]
