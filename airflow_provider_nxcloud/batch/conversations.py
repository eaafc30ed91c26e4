"""Messages -> the units the batch sends, by WhatsApp's rules of what a read marks. Pure; no I/O.

WhatsApp marks a one-to-one message read together with every earlier message of its
conversation, so a thread's newest message is enough. What "earlier" can be known to mean:

- a conversation is (business phone, customer): only a message that has both its customer and
  its ``timestamp`` belongs to one; the others are units of their own;
- a group message (``group_id``) is read only when it is marked itself (Meta: "Marking one
  message does not mark earlier messages in the group as read"): a unit of its own, never part
  of the customer's one-to-one thread;
- timestamps are whole seconds: messages of one second have no known order, so marking one of
  them proves nothing about the others. A thread is therefore a list of *tiers*, one per second,
  newest first: every message of the newest tier is sent, and the older tiers are read once any
  of them is marked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow_provider_nxcloud.batch.messages import Message

# Indices into the batch's message list, grouped by second, newest second first. A message
# alone (a bare id, a group message, or when not grouping) is ``[[index]]``.
Tier = list[int]
Unit = list[Tier]


def conversation_key(message: Message) -> tuple[str, str] | None:
    """(business phone, customer), or None for a message that reads nothing but itself."""
    if message.group_id is not None or message.customer is None or message.timestamp is None:
        return None
    return message.business_phone, message.customer


def units_to_send(messages: Sequence[Message], *, grouped: bool) -> tuple[list[Unit], int]:
    """
    The units to send, in the order of their first message in the input, and how many one-to-one
    conversations the messages belong to (counted whether ``grouped`` or not).

    Not grouped, every message is a unit of its own, as before conversations were known.
    """
    threads: dict[tuple[str, str], list[int]] = {}
    order: list[tuple[str, str] | int] = []  # a thread's key at its first message, else the index
    for index, message in enumerate(messages):
        key = conversation_key(message) if grouped else None
        if key is None:
            order.append(index)
        elif key in threads:
            threads[key].append(index)
        else:
            threads[key] = [index]
            order.append(key)
    conversations = len(threads) if grouped else _count_conversations(messages)
    units = [[[item]] if isinstance(item, int) else _tiers(threads[item], messages) for item in order]
    return units, conversations


def _tiers(thread: list[int], messages: Sequence[Message]) -> Unit:
    by_second: dict[int, Tier] = {}
    for index in thread:
        by_second.setdefault(messages[index].timestamp or 0, []).append(index)
    return [by_second[second] for second in sorted(by_second, reverse=True)]


def _count_conversations(messages: Sequence[Message]) -> int:
    return len({key for message in messages if (key := conversation_key(message)) is not None})
