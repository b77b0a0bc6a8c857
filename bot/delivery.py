"""Durable delivery, shared by every chat channel: what arrived is answered once, what is due is sent.

A channel stores raw updates in the inbox and calls `notify()`. This loop hands each stored update
to the channel's `answer` (which returns the messages to send), records them in the outbox in the
same transaction that marks the update handled, and drains each chat's outbox in order through the
channel's `send`. A crash at any point leaves either the update or its replies stored, never neither.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from bot.store import Store

log = logging.getLogger(__name__)

Answer = Callable[[str, str, str], Awaitable[list[dict[str, Any]]]]  # (update id, chat id, payload) -> messages
Send = Callable[[str, str, int, dict[str, Any]], Awaitable[bool]]  # (chat, source, part, message) -> delivered


class Delivery:
    """Processes one channel's inbox in arrival order and sends its outbox, one sender per chat."""

    def __init__(self, store: Store, channel: str, answer: Answer, send: Send) -> None:
        self.store = store
        self.channel = channel
        self.answer = answer
        self.send = send
        self._work = asyncio.Event()
        self._senders: dict[str, asyncio.Task[None]] = {}
        self._processor: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        self._processor = asyncio.create_task(self._process_forever(), name=f"{self.channel}-process")
        for chat_id in {row[1] for row in self.store.outbox(self.channel)}:  # left over from before a restart
            self.kick(chat_id)
        self.notify()

    async def stop(self, grace: float = 10.0) -> None:
        """Stop taking work, but let each chat finish the message it is sending: a message cut off
        mid-send may have arrived, and would be sent again after the restart."""
        self._stopping = True
        if self._processor is not None:
            self._processor.cancel()
        senders = list(self._senders.values())
        if senders:
            await asyncio.wait(senders, timeout=grace)
        for task in senders:
            task.cancel()
        await asyncio.gather(*[t for t in (self._processor, *senders) if t is not None], return_exceptions=True)

    def notify(self) -> None:
        """New updates are in the inbox."""
        self._work.set()

    def kick(self, chat_id: str) -> None:
        """Make sure a sender drains this chat's outbox (once started; start() drains what is queued)."""
        if self._processor is None:
            return
        task = self._senders.get(chat_id)
        if task is None or task.done():
            self._senders[chat_id] = asyncio.create_task(self._drain(chat_id), name=f"{self.channel}-send")

    def forget(self, chat_id: str) -> None:
        """The chat cannot be reached any more: drop what is queued for it."""
        self.store.drop_chat(self.channel, chat_id)

    async def _process_forever(self) -> None:
        while True:
            await self._work.wait()
            self._work.clear()
            while batch := self.store.pending(self.channel):
                for update_id, chat_id, payload in batch:
                    try:
                        messages = await self.answer(update_id, chat_id, payload)
                    except Exception as error:  # one message that trips a fault must not stop the channel
                        log.error("an update could not be handled (%s); it is skipped", type(error).__name__)
                        messages = []
                    self.store.handled(self.channel, update_id, chat_id, [json.dumps(m) for m in messages])
                    if messages:
                        self.kick(chat_id)

    async def _drain(self, chat_id: str) -> None:
        delay = 1.0
        try:
            while rows := self.store.outbox(self.channel, chat_id, limit=20):
                for outbox_id, _chat, source, part, body in rows:
                    if self._stopping:
                        return
                    try:
                        delivered = await self.send(chat_id, source, part, json.loads(body))
                    except Exception as error:  # a fault of ours must delay a message, never drop it
                        log.error("sending failed unexpectedly (%s); retrying in %.0f s", type(error).__name__, delay)
                        await asyncio.sleep(delay)
                        delay = min(delay * 2, 300.0)
                        break
                    if not delivered:
                        self.forget(chat_id)
                        return
                    self.store.sent(outbox_id)
        finally:
            # a finished sender is forgotten, so the map holds only chats with something to send
            if self._senders.get(chat_id) is asyncio.current_task():
                del self._senders[chat_id]
