"""Durable marking (batch/checkpoint.py): the encoding, and the engine resuming from a dict checkpoint.

A fake client answers from a table of codes per id; a dict is the store. Over HTTP, with a batch
killed midway: tests/integration/test_checkpoint_sandbox.py; under Airflow: tests/deployment.
"""

from __future__ import annotations

import json
import re
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_nxcloud.batch import checkpoint as checkpoint_module
from airflow_provider_nxcloud.batch.checkpoint import (
    CHUNK,
    KEY_PREFIX,
    Progress,
    decode_chunk,
    encode_chunk,
    input_digest,
)
from airflow_provider_nxcloud.batch.engine import mark_messages
from airflow_provider_nxcloud.batch.messages import Message
from airflow_provider_nxcloud.batch.options import BatchOptions
from airflow_provider_nxcloud.batch.results import Outcome
from airflow_provider_nxcloud.client.errors import NxCloudTransientError
from tests.support import wait_until

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

PHONE = "8613800000000"
NOW = int(time.time())


class Client:
    """A ``MarkReadClient``: ids in ``transient`` fail transiently, every other id is marked."""

    business_phone = PHONE
    rate_limit_found = None

    def __init__(self, transient: set[str] | None = None) -> None:
        self.transient = transient or set()
        self.sent: list[str] = []
        self._lock = threading.Lock()

    @property
    def requests_sent(self) -> int:
        return len(self.sent)

    def ready_for_threads(self, workers: int) -> None:
        pass

    def cancel(self) -> None:
        pass

    def mark_message_as_read(
        self, message_id: str, business_phone: str | None = None, *, retry_overrides: Mapping[int, bool] = {}
    ) -> object:
        with self._lock:
            self.sent.append(message_id)
        if message_id in self.transient:
            raise NxCloudTransientError("NXCloud code -1", code=-1)
        return None


class Store(dict[str, Any]):
    """A dict as a checkpoint, with the optional ``delete``; counts the writes and their bytes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.bytes_written = 0

    def set(self, key: str, value: Any) -> None:
        self.writes += 1
        self.bytes_written += len(json.dumps(value))
        self[key] = json.loads(json.dumps(value))  # JSON in, JSON out, as a real store

    def delete(self, key: str) -> None:
        self.pop(key, None)


def ids(count: int) -> list[str]:
    return [f"wamid.c{n}" for n in range(count)]


def test_a_chunk_survives_encoding_and_garbage_is_refused() -> None:
    bits = bytes([0xFF] * 300 + [0b1010_0001] + [0] * 723)

    assert decode_chunk(encode_chunk(bits), len(bits)) == bits
    assert len(encode_chunk(bits)) < 40, "a run of marks compresses to a few bytes"
    for garbage in ("not base64!", "aGVsbG8=", encode_chunk(bits[:10])):
        with pytest.raises(ValueError, match="checkpoint chunk"):
            decode_chunk(garbage, len(bits))


def test_the_digest_follows_the_ids_their_phones_and_their_order() -> None:
    a, b = Message("wamid.a", PHONE), Message("wamid.b", PHONE)

    assert input_digest([a, b]) == input_digest([Message("wamid.a", PHONE), Message("wamid.b", PHONE)])
    assert input_digest([a, b]) != input_digest([b, a])
    assert input_digest([a]) != input_digest([Message("wamid.a", "8613900000001")])
    assert input_digest([a, b]) != input_digest([a])


def test_a_retry_sends_only_what_the_first_try_did_not_mark() -> None:
    store = Store()
    first = Client(transient={"wamid.c3", "wamid.c7"})

    one = mark_messages(first, ids(20), checkpoint=store)

    assert one.state == "failed_retryable"
    assert one.counts()["marked_earlier"] == 0
    second = Client()
    two = mark_messages(second, ids(20), checkpoint=store)

    assert sorted(second.sent) == ["wamid.c3", "wamid.c7"]
    assert two.state == "success"
    assert sorted(m.message_id for m in two.marked) == sorted(ids(20))
    assert two.counts()["marked"] == 20
    assert two.counts()["marked_earlier"] == 18
    assert two.counts()["requests"] == 2
    assert "18 marked by an earlier try" in two.describe_requests()
    assert store == {}, "a successful batch deletes its keys"


def test_a_thread_whose_newest_was_marked_is_not_sent_again() -> None:
    store = Store()
    records = [{"id": f"wamid.t{n}", "from": "15550001", "timestamp": NOW - 100 + n} for n in range(5)] + [
        {"id": "wamid.alone", "from": "15550002", "timestamp": NOW}
    ]

    one = mark_messages(Client(transient={"wamid.alone"}), records, checkpoint=store)
    assert one.counts()["marked"] == 5 and one.marked_with_newer == 4
    second = Client()
    two = mark_messages(second, records, checkpoint=store)

    assert second.sent == ["wamid.alone"]
    assert two.counts()["marked_earlier"] == 5 and two.state == "success"


def test_a_changed_input_is_a_fresh_start() -> None:
    store = Store()
    mark_messages(Client(transient={"wamid.c0"}), ids(10), checkpoint=store)
    assert store, "the failed try left its checkpoint"

    second = Client()
    # A cleared upstream returned the same ids in another order: the indices mean other messages.
    result = mark_messages(second, list(reversed(ids(10))), checkpoint=store)

    assert sorted(second.sent) == sorted(ids(10))
    assert result.counts()["marked_earlier"] == 0


def test_a_key_from_another_format_or_corrupted_is_ignored(caplog: pytest.LogCaptureFixture) -> None:
    store = Store()
    mark_messages(Client(transient={"wamid.c0"}), ids(10), checkpoint=store)
    (key,) = store
    store[key] = {**store[key], "bits": "garbage"}

    second = Client()
    mark_messages(second, ids(10), checkpoint=store)

    assert len(second.sent) == 10
    assert "ignoring checkpoint key" in caplog.text


def test_a_failing_store_never_fails_the_batch(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def get(self, key: str) -> Any:
            raise OSError("store down")

        def set(self, key: str, value: Any) -> None:
            raise OSError("store down")

    client = Client()
    result = mark_messages(client, ids(5), checkpoint=Broken())

    assert result.state == "success" and len(client.sent) == 5
    assert "could not read the checkpoint" in caplog.text
    assert "could not write the checkpoint" in caplog.text


def test_only_indices_and_a_digest_reach_the_store() -> None:
    store = Store()
    mark_messages(Client(transient={"wamid.c1"}), ids(10), checkpoint=store)

    text = json.dumps(store)
    assert "wamid" not in text and PHONE not in text
    assert set(store) == {f"{KEY_PREFIX}0"}
    assert set(store[f"{KEY_PREFIX}0"]) == {"format", "digest", "bits"}


def test_chunks_split_a_large_batch_and_flushes_write_only_changed_chunks() -> None:
    messages = [Message(f"wamid.{n}", PHONE) for n in range(CHUNK + 10)]
    store = Store()
    progress = Progress(store, messages)
    outcomes: list[Any] = [None] * len(messages)
    outcomes[CHUNK + 1] = Outcome(messages[CHUNK + 1], "marked", 0)
    progress.add([CHUNK + 1], outcomes)
    progress.flush()
    progress.flush()  # nothing new: nothing written

    assert store.writes == 1 and set(store) == {f"{KEY_PREFIX}1"}
    again = Progress(store, messages)
    assert [m.message_id for m in again.earlier] == [f"wamid.{CHUNK + 1}"]
    assert len(again.left) == len(messages) - 1


def test_the_flusher_writes_while_the_batch_runs() -> None:
    messages = [Message(f"wamid.{n}", PHONE) for n in range(3)]
    store = Store()
    progress = Progress(store, messages, interval=0.01)
    with progress.flushing():
        progress.add([0], [Outcome(messages[0], "marked", 0), None, None])
        assert wait_until(lambda: bool(store), timeout=10), "the flusher wrote nothing within 10 s"
        assert Progress(store, messages).left == messages[1:]


def test_the_file_checkpoint_of_the_docstring_resumes_a_script(tmp_path: Path) -> None:
    source = checkpoint_module.__doc__ or ""
    example = re.search(r"(    class FileCheckpoint:.*?)\n\n    result = ", source, flags=re.DOTALL)
    assert example, "the docstring's FileCheckpoint example"
    namespace: dict[str, Any] = {}
    exec("import json, pathlib\n" + re.sub(r"(?m)^    ", "", example.group(1)), namespace)
    path = tmp_path / "marked.json"

    mark_messages(Client(transient={"wamid.c4"}), ids(8), checkpoint=namespace["FileCheckpoint"](path))
    assert path.exists()
    second = Client()
    result = mark_messages(second, ids(8), checkpoint=namespace["FileCheckpoint"](path))

    assert second.sent == ["wamid.c4"]
    assert result.counts()["marked_earlier"] == 7
    assert json.loads(path.read_text()) == {}, "its delete removed the keys after success"


def test_without_a_checkpoint_nothing_changes() -> None:
    client = Client(transient={"wamid.c1"})
    mark_messages(client, ids(4), options=BatchOptions(max_workers=1))
    again = Client()
    result = mark_messages(again, ids(4), options=BatchOptions(max_workers=1))

    assert len(again.sent) == 4 and result.counts()["marked_earlier"] == 0
