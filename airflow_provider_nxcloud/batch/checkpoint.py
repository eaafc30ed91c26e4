"""
Durable marking: what a batch marked, kept in a small key/value store as it goes, so that a new
try of the same input (after a transient failure, a killed worker) sends only what is left.

The store is anything with ``get(key)`` (None when absent) and ``set(key, value)`` for JSON
values (``Checkpoint``): Airflow 3.3's task state store as it is (the operator passes it), a dict,
a file, a DB row. A file, for a script of your own::

    class FileCheckpoint:
        def __init__(self, path):
            self.path = pathlib.Path(path)

        def _load(self):
            return json.loads(self.path.read_text()) if self.path.exists() else {}

        def _save(self, document):
            temporary = self.path.with_suffix(".tmp")
            temporary.write_text(json.dumps(document))
            temporary.replace(self.path)  # a crash mid-write keeps the old file whole

        def get(self, key):
            return self._load().get(key)

        def set(self, key, value):
            self._save({**self._load(), key: value})

        def delete(self, key):  # optional: a successful batch then removes its keys
            self._save({k: v for k, v in self._load().items() if k != key})

    result = mark_messages(client, ids, checkpoint=FileCheckpoint("marked.json"))

(``NxCloudHook.mark_messages_as_read`` takes ``checkpoint`` too.) Run it again after a crash and
it sends only what the first run did not mark; ``result.marked_earlier`` counts the others.

Layout: the batch's messages, in their normalised (deterministic) order, are cut into chunks of
``CHUNK`` messages; key ``nxcloud.marked.<k>`` holds chunk ``k``'s bitmap of the messages marked,
zlib-compressed, base64, beside the digest of the whole input. A flush (at most every
``FLUSH_INTERVAL_SECONDS``, and at the end) rewrites only the chunks marked into since the last
one: about a hundred bytes a second however long the batch, at most ``ceil(n / CHUNK)`` keys, and
no write order to get right, since each key stands alone. A key with another digest (the
upstream XCom changed between tries: a cleared upstream) is ignored, so a stale checkpoint never
skips a message. Only indices and a digest are stored: no id, no credential.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import threading
import zlib
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

    from airflow_provider_nxcloud.batch.messages import Message
    from airflow_provider_nxcloud.batch.results import Outcome

# Messages per key: 20,000 ids are 3 keys of at most 1 KiB of bitmap each (before compression).
CHUNK = 8192
KEY_PREFIX = "nxcloud.marked."
FORMAT = 1
# A SIGKILL loses at most what was marked since the last flush: this long, plus a write's time.
FLUSH_INTERVAL_SECONDS = 1.0

log = logging.getLogger(__name__)


class Checkpoint(Protocol):
    """A key/value store for JSON values; a ``delete(key)`` method, if it has one, is used too."""

    def get(self, key: str) -> Any:
        """The value stored under ``key``, or None."""

    def set(self, key: str, value: Any) -> None:
        """Store ``value`` (JSON: here a small dict of strings and ints) under ``key``."""


def input_digest(messages: Sequence[Message]) -> str:
    """What the recorded indices refer to: the ordered (message id, business phone) pairs."""
    digest = hashlib.sha256(f"nxcloud-checkpoint-{FORMAT}".encode())
    for message in messages:
        # Ids hold no control characters (``normalise_messages`` refuses them): \x1f cannot collide.
        digest.update(f"\x1e{message.message_id}\x1f{message.business_phone}".encode())
    return digest.hexdigest()


def encode_chunk(bits: bytes) -> str:
    return base64.b64encode(zlib.compress(bits, 9)).decode("ascii")


def decode_chunk(text: str, size: int) -> bytes:
    """The chunk's bitmap, ``size`` bytes; ValueError if it is not one of ours."""
    try:
        bits = zlib.decompress(base64.b64decode(text, validate=True), bufsize=size)
    except (zlib.error, ValueError, TypeError) as error:
        raise ValueError(f"not a checkpoint chunk: {error}") from None
    if len(bits) != size:
        raise ValueError(f"a checkpoint chunk of {len(bits)} bytes where {size} were expected")
    return bits


class Progress:
    """
    The marked messages of one batch, read from a checkpoint at the start and written back as the
    batch goes. Without a checkpoint it records nothing and everything is left to send.
    """

    def __init__(
        self,
        checkpoint: Checkpoint | None,
        messages: Sequence[Message],
        *,
        interval: float = FLUSH_INTERVAL_SECONDS,
    ) -> None:
        self.checkpoint = checkpoint
        self.interval = interval
        self.digest = input_digest(messages) if checkpoint is not None else ""
        self.bits = bytearray((len(messages) + 7) // 8)
        self.chunks = (len(messages) + CHUNK - 1) // CHUNK
        self._dirty: set[int] = set()
        self._lock = threading.Lock()
        self._written = False
        self._read()
        # Marked in an earlier try: reported marked, not sent again.
        self.earlier = [m for i, m in enumerate(messages) if self._has(i)]
        # The rest, in input order, and where each lies in ``messages``.
        self.positions = [i for i in range(len(messages)) if not self._has(i)]
        self.left = [messages[i] for i in self.positions]

    def _has(self, index: int) -> bool:
        return bool(self.bits[index >> 3] & (1 << (index & 7)))

    def _key(self, chunk: int) -> str:
        return f"{KEY_PREFIX}{chunk}"

    def _read(self) -> None:
        if self.checkpoint is None:
            return
        stale = 0
        for chunk in range(self.chunks):
            try:
                value = self.checkpoint.get(self._key(chunk))
            except Exception as error:  # a store that fails to answer: start fresh, re-sending is harmless
                log.warning("NXCloud: could not read the checkpoint (%s); sending everything", error)
                self.bits[:] = bytes(len(self.bits))
                return
            if not isinstance(value, dict):
                continue
            start, end = chunk * CHUNK // 8, min(len(self.bits), (chunk + 1) * CHUNK // 8)
            if value.get("format") != FORMAT or value.get("digest") != self.digest:
                stale += 1
                continue
            try:
                self.bits[start:end] = decode_chunk(str(value.get("bits")), end - start)
            except ValueError as error:
                log.warning("NXCloud: ignoring checkpoint key %s: %s", self._key(chunk), error)
        if stale:
            log.info("NXCloud: the input changed since the checkpoint was written; starting afresh")

    @property
    def durable(self) -> bool:
        return self.checkpoint is not None

    def add(self, indices: Iterable[int], outcomes: Sequence[Outcome | None]) -> None:
        """Record those of ``indices`` (into ``left``) whose outcome is ``marked``; any thread."""
        if self.checkpoint is None:
            return
        with self._lock:
            for index in indices:
                outcome = outcomes[index]
                if outcome is not None and outcome.status == "marked":
                    position = self.positions[index]
                    self.bits[position >> 3] |= 1 << (position & 7)
                    self._dirty.add(position // CHUNK)

    def flush(self) -> None:
        """Write the chunks marked into since the last flush. A failed write is logged, not raised."""
        if self.checkpoint is None:
            return
        with self._lock:
            dirty, self._dirty = sorted(self._dirty), set()
            values = {chunk: self._value(chunk) for chunk in dirty}
        for chunk, value in values.items():
            try:
                self.checkpoint.set(self._key(chunk), value)
                self._written = True
            except Exception as error:
                with self._lock:
                    self._dirty.add(chunk)  # written again at the next flush
                log.warning("NXCloud: could not write the checkpoint (%s); will try again", error)

    def _value(self, chunk: int) -> dict[str, Any]:
        start, end = chunk * CHUNK // 8, min(len(self.bits), (chunk + 1) * CHUNK // 8)
        return {"format": FORMAT, "digest": self.digest, "bits": encode_chunk(bytes(self.bits[start:end]))}

    @contextlib.contextmanager
    def flushing(self) -> Iterator[None]:
        """Flush every ``interval`` in a thread while the block runs, and once more when it ends."""
        if self.checkpoint is None:
            yield
            return
        stop = threading.Event()

        def flusher() -> None:
            while not stop.wait(self.interval):
                self.flush()

        thread = threading.Thread(target=flusher, name="nxcloud-checkpoint", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
            self.flush()

    def clear(self) -> None:
        """Remove this batch's keys, when the store has ``delete``: called after a successful batch."""
        delete = getattr(self.checkpoint, "delete", None)
        if delete is None or not (self._written or self.earlier):
            return
        for chunk in range(self.chunks):
            try:
                delete(self._key(chunk))
            except Exception as error:
                log.warning("NXCloud: could not clear the checkpoint (%s)", error)
                return
