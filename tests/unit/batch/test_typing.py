"""Which requests of a batch carry the typing indicator, and the appkey check (pure logic)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from airflow_provider_nxcloud.batch.options import BatchOptions
from airflow_provider_nxcloud.client.errors import NxCloudConfigError
from tests.unit.batch.fakes import NO_OVERRIDES, FakeClient, failed, marked, record, run

if TYPE_CHECKING:
    from collections.abc import Mapping


def test_each_thread_shows_typing_once_with_its_newest_message() -> None:
    client = FakeClient()
    messages = [
        record("a1", customer="a", age=30), record("a2", customer="a", age=10),
        record("b1", customer="b", age=20), record("b2", customer="b", age=5),
    ]  # fmt: skip

    result = run(messages, client, typing_indicator=True)

    assert sorted(client.typing) == ["a2", "b2"]
    assert sorted(client.sent) == ["a2", "b2"]
    assert result.counts()["typing_indicators"] == 2
    assert result.state == "success"


def test_bare_ids_and_group_messages_each_carry_it_as_each_is_sent_on_its_own() -> None:
    client = FakeClient()
    messages = ["bare", record("g1", group_id="G", age=20), record("g2", group_id="G", age=10)]

    result = run(messages, client, typing_indicator=True)

    assert sorted(client.typing) == ["bare", "g1", "g2"]
    assert result.counts()["typing_indicators"] == 3


def test_of_a_same_second_tie_only_the_first_carries_it_and_every_one_is_marked() -> None:
    client = FakeClient()

    result = run([record("t1"), record("t2"), record("old", age=60)], client, typing_indicator=True)

    assert client.sent == ["t1", "t2"]
    assert client.typing == ["t1"]
    assert marked(result) == ["t1", "t2", "old"]
    assert result.counts()["typing_indicators"] == 1


def test_when_the_carrier_is_not_marked_the_next_sent_carries_it() -> None:
    client = FakeClient({"t1": 9099, "new": 9099})

    tie = run([record("t1"), record("t2")], client, typing_indicator=True)
    assert client.typing == ["t1", "t2"]
    assert tie.counts()["typing_indicators"] == 1

    fallback_client = FakeClient({"new": 9099})
    fallback = run([record("new", age=0), record("older", age=60)], fallback_client, typing_indicator=True)
    assert fallback_client.typing == ["new", "older"], "the newest was deleted: the next newest shows it"
    assert failed(fallback) == {"new": (9099, "failed")}
    assert fallback.counts()["typing_indicators"] == 1


def test_a_transient_failure_shows_nothing_and_sends_no_older_message() -> None:
    client = FakeClient({"new": -1})

    result = run([record("new"), record("older", age=60)], client, typing_indicator=True)

    assert client.sent == ["new"]
    assert client.typing == ["new"]
    assert result.counts()["typing_indicators"] == 0
    assert result.state == "failed_retryable"


def test_one_request_per_message_puts_it_on_every_request() -> None:
    client = FakeClient()

    result = run(
        [record("m1", age=20), record("m2", age=10)],
        client,
        typing_indicator=True,
        one_request_per_conversation=False,
    )

    assert sorted(client.typing) == ["m1", "m2"]
    assert result.counts()["typing_indicators"] == 2


@pytest.mark.parametrize("messages", [["wamid.1", record("m1")], []])
def test_without_an_appkey_it_is_a_configuration_error_before_any_request(messages: list[object]) -> None:
    client = FakeClient(appkey=None)

    with pytest.raises(NxCloudConfigError, match="set the connection's appkey extra"):
        run(messages, client, typing_indicator=True)
    assert client.sent == []


def test_off_by_default_and_a_client_without_the_argument_still_works() -> None:
    class EarlierClient(FakeClient):
        """A ``MarkReadClient`` written before the typing indicator existed."""

        def mark_message_as_read(  # type: ignore[override]
            self,
            message_id: str,
            business_phone: str | None = None,
            *,
            retry_overrides: Mapping[int, bool] = NO_OVERRIDES,
        ) -> object:
            return super().mark_message_as_read(message_id, business_phone, retry_overrides=retry_overrides)

    client = EarlierClient(appkey=None)

    result = run([record("m1"), "bare"], client)

    assert result.state == "success"
    assert client.typing == []
    assert result.counts()["typing_indicators"] == 0


def test_the_flag_is_checked() -> None:
    assert BatchOptions().typing_indicator is False
    with pytest.raises(NxCloudConfigError, match="typing_indicator must be True or False, got 'yes'"):
        BatchOptions(typing_indicator="yes")  # type: ignore[arg-type]
