"""What upstream tasks hand us -> validated, de-duplicated messages. Pure; no I/O.

Accepted: ids, lists/tuples/sets (nested, as mapped upstreams give), records shaped like NXCloud's
inbound webhook messages (``id``/``message_id``, ``business_phone``/``merchant_phone``, ``from``
or ``from_user_id``, ``timestamp``, ``group_id``), whole webhook payloads (``messages[]`` plus a
top-level business phone and ``contacts[]``), and a string holding a JSON or Python list (what a
Jinja ``xcom_pull`` renders to). The whole input is
checked before anything is sent: one bad item raises NxCloudConfigError naming its position.
"""

from __future__ import annotations

import ast
import json
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow_provider_nxcloud.client.errors import NxCloudConfigError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

MAX_MESSAGE_ID_LENGTH = 512
# Unix seconds above this are taken as milliseconds (databases often store those).
_MILLISECONDS_FROM = 10**11
_BAD_ID_CHARACTERS = re.compile(r"[\s\x00-\x1f\x7f]")
_PHONE_SEPARATORS = re.compile(r"[\s\-().]")
_PHONE = re.compile(r"^[0-9]{5,20}$")
_PHONE_HINT = "use digits with the country code, e.g. 8613800000000"
_UNIX_SECONDS_TEXT = re.compile(r"^[0-9]{1,16}$")


@dataclass(frozen=True, slots=True)
class Message:
    """One inbound message to mark read."""

    message_id: str
    business_phone: str
    timestamp: int | None = None
    # ``from``, else the business-scoped user id (``from_user_id``) of a username user whose
    # phone number WhatsApp withholds; None: unknown, the message is sent on its own.
    customer: str | None = None
    # Set for a message written in a WhatsApp group: WhatsApp reads it only when it is marked.
    group_id: str | None = None


@dataclass
class NormalisedInput:
    """Distinct messages to send, those skipped locally as too old, and duplicates dropped."""

    messages: list[Message] = field(default_factory=list)
    too_old: list[Message] = field(default_factory=list)
    duplicates: int = 0
    max_age_days: float | None = None


def _text(value: Any, convert: Callable[[Any], str] = str) -> str:
    """``convert(value)``, except for ints too long to convert (Python refuses > 4300 digits)."""
    try:
        return convert(value)
    except ValueError:
        return f"<{type(value).__name__} too long to show>"


def _shown(value: Any) -> str:
    text = _text(value, repr)
    return text if len(text) <= 60 else text[:57] + "..."


def normalise_business_phone(value: Any, where: str) -> str:
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise NxCloudConfigError(f"{where}: expected a phone number string, got {type(value).__name__}")
    digits = _PHONE_SEPARATORS.sub("", _text(value)).removeprefix("+")
    if not _PHONE.match(digits):
        raise NxCloudConfigError(f"{where}: {_shown(value)} is not a phone number; {_PHONE_HINT}")
    return digits


def _message_id(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise NxCloudConfigError(
            f"{where}: expected a message id string, got {type(value).__name__} {_shown(value)}"
        )
    message_id = value.strip()
    if not message_id:
        raise NxCloudConfigError(f"{where}: empty message id; remove it or fix the upstream task")
    if len(message_id) > MAX_MESSAGE_ID_LENGTH:
        raise NxCloudConfigError(
            f"{where}: message id has {len(message_id)} characters; WhatsApp ids have at most "
            f"{MAX_MESSAGE_ID_LENGTH}"
        )
    if _BAD_ID_CHARACTERS.search(message_id):
        raise NxCloudConfigError(
            f"{where}: message id {_shown(message_id)} contains whitespace or control characters"
        )
    try:
        message_id.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, e.g. from JSON "\\ud800": it cannot be sent
        raise NxCloudConfigError(
            f"{where}: message id {_shown(message_id)} is not valid Unicode (lone surrogate)"
        ) from None
    return message_id


def _timestamp(value: Any, where: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return int(aware.timestamp())
    number: float
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and _UNIX_SECONDS_TEXT.match(value.strip()):
        # ASCII digits only: str.isdigit() also accepts "²", which int() refuses.
        number = int(value.strip())
    else:
        raise NxCloudConfigError(
            f"{where}.timestamp: expected Unix seconds (int or digit string), got {_shown(value)}"
        )
    if not 0 <= number < 10**16:  # also rejects NaN and infinities
        raise NxCloudConfigError(f"{where}.timestamp: {_shown(value)} is not a Unix time")
    return int(number / 1000 if number >= _MILLISECONDS_FROM else number)


def _optional_text(value: Any) -> str | None:
    # An empty value is no value: a record without a customer is sent on its own, like a bare id.
    return (_text(value).strip() or None) if value is not None else None


def _customer(record: Mapping[str, Any]) -> str | None:
    """``from``, else ``from_user_id``: the same person, by phone or by business-scoped user id."""
    return _optional_text(record.get("from")) or _optional_text(record.get("from_user_id"))


def _parse_list_string(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise NxCloudConfigError(
            f"message_ids: the string {_shown(text)} looks like a list but is neither JSON nor a Python "
            "literal; pass the XComArg itself instead of a template, or render valid JSON"
        ) from None


def _phone_of(record: Mapping[str, Any]) -> Any:
    for key in ("business_phone", "merchant_phone"):
        if record.get(key) not in (None, ""):
            return record[key]
    return None


@dataclass(frozen=True, slots=True)
class _Payload:
    """What a webhook payload gives its messages: the business phone, and the customer's user id."""

    phone: Any = None
    user_id: str | None = None


_NO_PAYLOAD = _Payload()


def _payload_user_id(contacts: Any) -> str | None:
    """
    The one business-scoped user id of a payload's ``contacts``, for its messages without ``from``
    (Meta's own example of a username user's message has none). Several different ids: no one
    can tell whose message is whose, so none is taken (each such message is sent on its own).
    """
    if not isinstance(contacts, (list, tuple)):
        return None
    ids = {
        str(contact["user_id"]).strip()
        for contact in contacts
        if isinstance(contact, Mapping) and contact.get("user_id") not in (None, "")
    }
    return ids.pop() if len(ids) == 1 else None


def _children(where: str, elements: Iterable[Any], payload: _Payload) -> Iterator[tuple[str, Any, _Payload]]:
    # A function, not an inline generator expression, so ``where`` is bound now, not when consumed.
    for index, child in enumerate(elements):
        yield f"{where}[{index}]", child, payload


def _items(value: Any) -> Iterator[tuple[str, Any, _Payload]]:
    """(position, leaf, what the webhook payload around it gives), depth first, in order."""
    if isinstance(value, str):
        stripped = value.strip()
        if not stripped:
            return
        if stripped[:1] in {"[", "(", "{"}:
            value = _parse_list_string(stripped)
        else:
            yield "message_ids", value, _NO_PAYLOAD
            return
    # An explicit stack instead of recursion: hostile nesting must not overflow Python's stack.
    stack: list[Iterator[tuple[str, Any, _Payload]]] = [iter([("message_ids", value, _NO_PAYLOAD)])]
    while stack:
        entry = next(stack[-1], None)
        if entry is None:
            stack.pop()
            continue
        where, item, payload = entry
        if item is None:
            continue  # a mapped upstream that returned nothing
        if isinstance(item, Mapping) and isinstance(item.get("messages"), (list, tuple)):
            inner = _Payload(_phone_of(item) or payload.phone, _payload_user_id(item.get("contacts")))
            stack.append(_children(f"{where}.messages", item["messages"], inner))
        elif isinstance(item, (str, Mapping)):
            yield where, item, payload
        elif isinstance(item, Iterable) and not isinstance(item, (bytes, bytearray)):
            elements = sorted(item, key=_text) if isinstance(item, (set, frozenset)) else item
            stack.append(_children(where, elements, payload))
        else:
            raise NxCloudConfigError(
                f"{where}: expected a message id string or a record with 'id', got "
                f"{type(item).__name__} {_shown(item)}"
            )


def normalise_messages(
    value: Any,
    *,
    default_business_phone: str | None = None,
    fallback_business_phone: Callable[[], str | None] | None = None,
    max_age_days: float | None = 30,
    now: float | None = None,
) -> NormalisedInput:
    """
    Validate and flatten ``value`` into distinct messages.

    The business phone of each message is the record's own, else the webhook payload's, else
    ``default_business_phone``, else what ``fallback_business_phone()`` returns (called at most
    once, only when needed: it may look up the connection). ``max_age_days`` is positive or None
    (``BatchOptions.checked`` checks it).
    """
    result = NormalisedInput(max_age_days=max_age_days)
    default_phone = (
        normalise_business_phone(default_business_phone, "business_phone")
        if default_business_phone is not None
        else None
    )
    fallback_resolved = False
    oldest_allowed = (time.time() if now is None else now) - max_age_days * 86400 if max_age_days else None
    seen: set[tuple[str, str]] = set()

    for where, item, payload in _items(value):
        raw_phone: Any = payload.phone
        timestamp: int | None = None
        customer: str | None = None
        group_id: str | None = None
        if isinstance(item, Mapping):
            raw_id = item.get("message_id") if item.get("message_id") is not None else item.get("id")
            if raw_id is None:
                raise NxCloudConfigError(
                    f"{where}: record has no 'id' or 'message_id' (keys: {_shown(sorted(map(_text, item)))})"
                )
            message_id = _message_id(raw_id, f"{where}.id")
            raw_phone = _phone_of(item) or payload.phone
            timestamp = _timestamp(item.get("timestamp"), where)
            customer = _customer(item) or payload.user_id
            group_id = _optional_text(item.get("group_id"))
        else:
            message_id = _message_id(item, where)
        if raw_phone is not None:
            phone = normalise_business_phone(raw_phone, f"{where}.business_phone")
        else:
            if default_phone is None and not fallback_resolved and fallback_business_phone is not None:
                fallback_resolved = True
                fallback = fallback_business_phone()
                if fallback:
                    default_phone = normalise_business_phone(fallback, "connection extra business_phone")
            if default_phone is None:
                raise NxCloudConfigError(
                    f"{where}: no business_phone; set it on the record, the operator's business_phone, "
                    "or the connection's business_phone extra"
                )
            phone = default_phone
        key = (message_id, phone)
        if key in seen:
            result.duplicates += 1
            continue
        seen.add(key)
        message = Message(message_id, phone, timestamp, customer, group_id)
        if oldest_allowed is not None and timestamp is not None and timestamp < oldest_allowed:
            result.too_old.append(message)
        else:
            result.messages.append(message)
    return result
