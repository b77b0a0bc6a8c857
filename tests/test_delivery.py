"""The shared delivery loop: a fault in one message delays or skips that message, never the others."""

from __future__ import annotations

import asyncio
from typing import Any

from bot.delivery import Delivery
from bot.store import Store


async def test_a_message_that_trips_a_fault_does_not_stop_the_others(store: Store) -> None:
    sent: list[dict[str, Any]] = []
    failures = {"send": 1}

    async def answer(update_id: str, _chat: str, payload: str) -> list[dict[str, Any]]:
        if payload == "poison":
            raise ValueError("a bug")
        return [{"answer": update_id}]

    async def send(_chat: str, _source: str, _part: int, message: dict[str, Any]) -> bool:
        if failures["send"]:
            failures["send"] -= 1
            raise RuntimeError("a bug while sending")
        sent.append(message)
        return True

    delivery = Delivery(store, "test", answer, send)
    store.receive("test", [("1", "chat", "hello"), ("2", "chat", "poison"), ("3", "chat", "hello again")])
    delivery.start()
    try:
        for _ in range(300):
            if len(sent) == 2:
                break
            await asyncio.sleep(0.02)
        assert sent == [{"answer": "1"}, {"answer": "3"}]  # the failed send was retried, in order
        assert store.pending("test") == [] and store.outbox("test") == []
    finally:
        await delivery.stop()
