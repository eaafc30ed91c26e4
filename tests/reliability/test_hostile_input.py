"""Hostile input to the operator's input handling, property-based (hypothesis).

Arbitrary JSON-like values, odd strings (any Unicode incl. lone surrogates, control and bidi
characters, 10 KB ids, SQL-looking text), odd records and webhook payloads, rendered-template
strings and deep nesting. Each is either processed or rejected with the documented one-line
``NxCloudConfigError`` (the operator: ``AirflowFailException`` with the same text) before any
request is sent; no other exception type escapes, and nothing is marked that was not in the
input. ``EXAMPLES_PURE + EXAMPLES_OPERATOR`` (>= 2,000) examples per CI run.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping
from datetime import timezone
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_nxcloud.batch.messages import MAX_MESSAGE_ID_LENGTH, normalise_messages
from airflow_provider_nxcloud.client.errors import NxCloudConfigError, NxCloudTransientError
from airflow_provider_nxcloud.hooks.nxcloud import NxCloudHook
from airflow_provider_nxcloud.operators.whatsapp import MarkWhatsAppReadOperator
from airflow_provider_nxcloud.testing import NxCloudSandbox
from airflow_provider_nxcloud.version_compat import AirflowFailException, AirflowSkipException

if TYPE_CHECKING:
    from collections.abc import Iterator

EXAMPLES_PURE = 1600
EXAMPLES_OPERATOR = 500
PHONE = "8613800000000"
NOW = 1_770_000_000.0
# What every rejection starts with: the position of the bad item, or the argument's name.
DOCUMENTED_REJECTION = re.compile(
    r"^(message_ids|business_phone|connection extra business_phone|max_message_age_days)[\[\].:\w]*[: ]"
)
ID_SHAPE = re.compile(rf"^[^\s\x00-\x1f\x7f]{{1,{MAX_MESSAGE_ID_LENGTH}}}$")
PHONE_SHAPE = re.compile(r"^[0-9]{5,20}$")

# -- strategies --

SQL_LIKE = [
    "'; DROP TABLE whatsapp_inbox; --",
    "1' OR '1'='1",
    "wamid.1'--",
    "wamid.1;DELETE/**/FROM/**/whatsapp_inbox",
    "Robert');DROP/**/TABLE/**/Students;--",
    '" OR ""="',
    "UNION SELECT password FROM connection",
    "%00",
    "${jndi:ldap://x}",
    "{{ conn.nxcloud_default.password }}",
]
CONTROL_AND_BIDI = [
    "\x00",
    "wamid.\x00x",
    "wamid.1\r\nX-Injected: 1",
    "\u202ewamid.1",
    "wamid\u2028x",
    "\ufeffwamid.1",
    "wamid.\x1b[31m",
    "\x7f",
    "\ud800",
    "wamid.\udfff",
    "wamid.\u200b",
    "\u3000wamid.1\u3000",
]
# Beyond 4300 digits str() and repr() of an int raise ValueError; built lazily, because
# hypothesis itself cannot describe a strategy holding one.
huge_ints = st.one_of(
    st.integers(4301, 6000).map(lambda digits: 10**digits),
    st.integers(4301, 6000).map(lambda digits: -(10**digits)),
    st.sampled_from([2**64, 10**16, 10**11, -1, 0]),
)

any_unicode = st.text(st.characters(exclude_categories=()), max_size=40)  # surrogates included
wamid = st.from_regex(r"\Awamid\.[A-Za-z0-9+/=_-]{1,60}\Z")
long_ids = st.builds(
    lambda char, size: char * size, st.characters(exclude_categories=()), st.integers(500, 10_240)
)
odd_strings = st.one_of(
    st.text(max_size=40),
    any_unicode,
    wamid,
    wamid.map(lambda text: f"  {text}\t"),
    long_ids,
    st.sampled_from(SQL_LIKE + CONTROL_AND_BIDI),
    st.just(""),
)
phones = st.one_of(
    st.just(PHONE),
    st.just("+86 138-0000-0000"),
    st.just(8613800000000),
    st.from_regex(r"\A\+?[0-9][0-9 ()-]{3,25}\Z"),
    st.integers(),
    huge_ints,
    odd_strings,
    st.none(),
    st.booleans(),
)
timestamps = st.one_of(
    st.none(),
    st.integers(),
    huge_ints,
    st.floats(),
    # ASCII digits plus Unicode digits int() accepts (Arabic-Indic) and refuses (superscripts).
    st.text(alphabet="0123456789\u00b2\u00b3\u00b9\u0663\u06f5 .-e", max_size=20),
    st.booleans(),
    st.datetimes(timezones=st.none() | st.just(timezone.utc)),
    st.just(int(NOW)),
    st.just(str(int(NOW) - 40 * 86_400)),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    huge_ints,
    st.floats(),
    odd_strings,
    st.binary(max_size=10),
)
record_keys = st.sampled_from(
    ["id", "message_id", "business_phone", "merchant_phone", "from", "timestamp", "messages", "type"]
)


def records(values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[Any, Any]]:
    shaped = st.fixed_dictionaries(
        {},
        optional={
            "id": st.one_of(wamid, odd_strings, values),
            "message_id": st.one_of(wamid, odd_strings, values),
            "business_phone": phones,
            "merchant_phone": phones,
            "timestamp": timestamps,
            "from": st.one_of(odd_strings, huge_ints, values),
        },
    )
    loose = st.dictionaries(st.one_of(record_keys, st.text(max_size=8)), values, max_size=5)
    return st.one_of(shaped, shaped, loose)


def webhook_payloads(values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"messages": st.lists(st.one_of(records(values), wamid, values), max_size=5)},
        optional={"business_phone": phones, "merchant_phone": phones, "messaging_product": odd_strings},
    )


json_like = st.recursive(
    st.one_of(scalars, records(scalars)),
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.tuples(children, children),
        st.frozensets(st.one_of(odd_strings, st.integers()), max_size=4),
        st.dictionaries(st.text(max_size=8), children, max_size=4),
        records(children),
        webhook_payloads(children),
    ),
    max_leaves=25,
)


def rendered(value: Any) -> str:
    """What a Jinja ``{{ ti.xcom_pull(...) }}`` renders: JSON when it can, else the repr."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        pass
    try:
        return repr(value)
    except ValueError:  # an int too long to print: Jinja could not render it either
        return "null"


def nested(depth: int, leaf: Any = "wamid.deep") -> Any:
    value: Any = leaf
    for _ in range(depth):
        value = [value]
    return value


# Ids the normaliser accepts although NXCloud would not: sent, and answered 9000 per message.
odd_but_acceptable_ids = st.text(
    st.characters(exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp")), min_size=1, max_size=30
).filter(lambda text: not re.search(r"\s", text))

acceptable_lists = st.lists(
    st.one_of(
        wamid, odd_but_acceptable_ids, st.sampled_from([t for t in SQL_LIKE if not re.search(r"\s", t)])
    ),
    min_size=1,
    max_size=20,
)
hostile_inputs = st.one_of(
    json_like,
    acceptable_lists,
    json_like.map(rendered),
    st.lists(st.one_of(wamid, odd_strings), max_size=20),
    st.lists(records(scalars), max_size=10),
    webhook_payloads(scalars),
    st.integers(1, 5_000).map(lambda depth: "[" * depth + '"wamid.deep"' + "]" * depth),
    st.integers(1, 3_000).map(nested),
    st.sampled_from(SQL_LIKE + CONTROL_AND_BIDI),
)


# -- the oracle --


def strings_in(value: Any) -> set[str]:
    """Every string in ``value`` (parsing strings that hold a list), stripped: what an id may be."""
    found: set[str] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found.add(item.strip())
            text = item.strip()
            if text[:1] in {"[", "(", "{"}:
                for parse in (json.loads, ast.literal_eval):
                    try:
                        stack.append(parse(text))
                        break
                    except Exception:  # the code under test decides what is valid
                        continue
        elif isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend(item)
    return found


def check_rejection(error: BaseException) -> str:
    text = str(error)
    assert len(text.splitlines()) == 1, f"not one line: {text!r}"
    assert DOCUMENTED_REJECTION.match(text), f"not the documented form: {text[:200]!r}"
    return text


def check_processed(value: Any, messages: list[Any]) -> None:
    allowed = strings_in(value)
    keys = [(m.message_id, m.business_phone) for m in messages]
    assert len(keys) == len(set(keys)), "a duplicate survived"
    for message in messages:
        assert ID_SHAPE.match(message.message_id), repr(message.message_id)
        assert message.message_id == message.message_id.strip()
        message.message_id.encode("utf-8")  # sendable
        assert PHONE_SHAPE.match(message.business_phone), repr(message.business_phone)
        assert message.message_id in allowed, f"{message.message_id!r} was not in the input"


# -- the properties --

# ``figures`` is deliberately shared by every example (it accumulates the counts); big inputs
# (10 KB ids, nesting thousands deep) are the point, not a generation problem.
SUPPRESSED = [
    HealthCheck.function_scoped_fixture,
    HealthCheck.too_slow,
    HealthCheck.data_too_large,
    HealthCheck.large_base_example,
]


@pytest.mark.long  # thousands of property-based examples
@settings(
    max_examples=EXAMPLES_PURE,
    deadline=None,
    suppress_health_check=SUPPRESSED,
)
@given(value=hostile_inputs, default_phone=st.one_of(st.none(), st.just(PHONE)))
def test_input_is_processed_or_rejected_in_one_line(
    value: Any, default_phone: str | None, figures: dict[str, Any]
) -> None:
    try:
        batch = normalise_messages(value, default_business_phone=default_phone, now=NOW)
    except NxCloudConfigError as error:
        check_rejection(error)
        outcome = "rejected"
    else:
        check_processed(value, batch.messages + batch.too_old)
        outcome = "processed"
    figures[outcome] = figures.get(outcome, 0) + 1
    figures["examples"] = figures.get("examples", 0) + 1


@pytest.fixture(scope="module")
def shared_sandbox() -> Iterator[NxCloudSandbox]:
    with NxCloudSandbox() as sandbox, pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW_CONN_NXCLOUD_DEFAULT", sandbox.connection_json())
        yield sandbox


class _TaskInstance:
    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        json.dumps(value)  # what Airflow would store: it must serialise
        self.pushed[key] = value


def run_operator(value: Any) -> tuple[str, Any]:
    """("rejected", error) or ("processed", the result the task pushed or returned)."""
    operator = MarkWhatsAppReadOperator(task_id="mark", message_ids=[], max_workers=4)
    # What the task runner does before execute(): lock the operator, then set the value an
    # XComArg or a template resolved to. (Not through the constructor: Airflow's own scan of
    # constructor arguments for XComArgs recurses, so a literal nested thousands deep fails
    # there, at parse time, in Airflow; an upstream value never takes that path.)
    operator._lock_for_execution = True
    operator.message_ids = value
    operator.hook = NxCloudHook(retry_wait=(0.01, 0.05))
    ti = _TaskInstance()
    try:
        returned = operator.execute(context={"ti": ti})  # type: ignore[arg-type]
    except (AirflowFailException, AirflowSkipException, NxCloudTransientError) as error:
        if "return_value" not in ti.pushed:
            assert isinstance(error, AirflowFailException), repr(error)
            return "rejected", error
        return "processed", ti.pushed["return_value"]
    return "processed", returned


@pytest.mark.long  # thousands of property-based examples
@settings(
    max_examples=EXAMPLES_OPERATOR,
    deadline=None,
    suppress_health_check=SUPPRESSED,
)
@given(value=st.one_of(hostile_inputs, acceptable_lists, acceptable_lists.map(rendered)))
def test_operator_marks_only_what_it_was_given(
    value: Any, shared_sandbox: NxCloudSandbox, figures: dict[str, Any]
) -> None:
    shared_sandbox.reset()
    kind, outcome = run_operator(value)
    requests = shared_sandbox.requests
    if kind == "rejected":
        check_rejection(outcome)
        assert requests == [], "input was rejected after something had been sent"
    else:
        expected = normalise_messages(value, default_business_phone=PHONE)
        every = expected.messages + expected.too_old
        check_processed(value, every)
        accounted = (
            outcome["marked"]
            + [entry["message_id"] for entry in outcome["skipped"] + outcome["failed"]]
            + outcome["not_attempted"]
        )
        assert sorted(accounted) == sorted(m.message_id for m in every), "a message was lost"
        asked = {(m.business_phone, m.message_id) for m in expected.messages}
        assert set(shared_sandbox.mark_counts) <= asked, "marked something that was not asked for"
        assert {(r.business_phone, r.message_id) for r in requests} <= asked
        assert set(outcome["marked"]) <= shared_sandbox.marked_ids(), "reported marked, not marked"
    figures[kind] = figures.get(kind, 0) + 1
    figures["examples"] = figures.get("examples", 0) + 1
    figures["requests_sent"] = figures.get("requests_sent", 0) + len(requests)


# -- examples that once escaped as other exception types (kept as plain regression tests) --


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([10**5000], r"message_ids\[0\]: expected a message id string .*, got int <int too long to show>"),
        ([{"id": "wamid.1", "business_phone": 10**5000}], r"is not a phone number"),
        ([{"id": "wamid.1", "timestamp": "²"}], r"timestamp: expected Unix seconds"),
        ([{"id": "wamid.1", "timestamp": 10**5000}], r"timestamp: <int too long to show> is not"),
        ('["\\ud800"]', r"message_ids\[0\]: message id '\\ud800' is not valid Unicode \(lone surrogate\)"),
        ([{10**5000: "x"}], r"record has no 'id'"),
    ],
)
def test_former_escapes_are_now_one_line_rejections(value: Any, message: str) -> None:
    with pytest.raises(NxCloudConfigError, match=message) as raised:
        normalise_messages(value, default_business_phone=PHONE, now=NOW)
    check_rejection(raised.value)


def test_huge_int_sender_is_kept_as_text_and_a_huge_int_set_member_is_rejected() -> None:
    single = normalise_messages([{"id": "wamid.1", "from": 10**5000}], default_business_phone=PHONE)
    assert single.messages[0].customer == "<int too long to show>"
    with pytest.raises(NxCloudConfigError, match=r"\[0\]\[0\]: expected a message id string .*, got int"):
        normalise_messages([frozenset({"wamid.2", 10**5000})], default_business_phone=PHONE)
