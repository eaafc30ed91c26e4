"""Messages -> the units the batch sends: a customer's thread newest first, or one message alone.

WhatsApp marks a message read together with every earlier message of its conversation, so one
request for the newest message of a thread is enough. A conversation is (business phone,
customer); only a message that has both its customer (``from``) and its ``timestamp`` belongs to
one, the others are units of their own. Pure; no I/O.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow_provider_nxcloud.batch.messages import Message

# Indices into the batch's message list; a thread's are newest first.
Unit = list[int]


def conversation_key(message: Message) -> tuple[str, str] | None:
    """(business phone, customer), or None for a message that cannot be placed in a thread."""
    if message.customer is None or message.timestamp is None:
        return None
    return message.business_phone, message.customer


def units_to_send(messages: Sequence[Message], *, grouped: bool) -> tuple[list[Unit], int]:
    """
    The units to send, in the order of their first message in the input, and how many
    conversations the messages belong to (counted whether ``grouped`` or not).

    Grouped, a thread is ordered newest first by ``timestamp``; within one second the message
    later in the input counts as the newer (inboxes and webhooks list messages as they arrived).
    Not grouped, every message is a unit of its own, as before conversations were known.
    """
    if not grouped:
        keys = {conversation_key(message) for message in messages}
        keys.discard(None)
        return [[index] for index in range(len(messages))], len(keys)
    units: list[Unit] = []
    threads: dict[tuple[str, str], Unit] = {}
    for index, message in enumerate(messages):
        key = conversation_key(message)
        if key is None:
            units.append([index])
        elif (thread := threads.get(key)) is not None:
            thread.append(index)
        else:
            thread = threads[key] = [index]
            units.append(thread)  # the same list: the thread's later messages join it
    for thread in threads.values():
        if len(thread) > 1:
            # (timestamp, input position), largest first: newest first, ties by input order.
            thread.sort(key=lambda i: (messages[i].timestamp, i), reverse=True)
    return units, len(threads)
