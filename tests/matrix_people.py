"""A person on Matrix for the tests: a second matrix-nio client, with end-to-end encryption."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from nio import (
    AsyncClient,
    AsyncClientConfig,
    MegolmEvent,
    RoomCreateResponse,
    RoomMessage,
    RoomMessageNotice,
    RoomMessageText,
)


class Person:
    """Logs in, opens a direct chat with the bot, writes, and collects what the bot answers."""

    def __init__(self, homeserver: str, user_id: str, store: Path, password: str = "password") -> None:
        store.mkdir(parents=True, exist_ok=True)
        config = AsyncClientConfig(encryption_enabled=True, store_sync_tokens=True)
        self.client = AsyncClient(homeserver, user_id, store_path=str(store), config=config)
        self.password = password
        self.notices: list[RoomMessageNotice] = []
        self.heard: list[tuple[str, Any]] = []  # (room id, event): every message from someone else
        self.rooms_of: dict[str, str] = {}  # event id -> room id
        self.undecryptable = 0
        self._task: asyncio.Task[None] | None = None

    async def login(self) -> None:
        response = await self.client.login(self.password, device_name="test phone")
        assert getattr(response, "access_token", None), response
        await self.client.sync(timeout=0, full_state=True)
        self.client.add_event_callback(self._on_notice, RoomMessageNotice)
        self.client.add_event_callback(self._on_message, RoomMessage)
        self.client.add_event_callback(self._on_undecryptable, MegolmEvent)
        self._task = asyncio.create_task(self.client.sync_forever(timeout=1000))

    async def _on_notice(self, room: Any, event: RoomMessageNotice) -> None:
        self.rooms_of[event.event_id] = room.room_id
        self.notices.append(event)

    async def _on_message(self, room: Any, event: RoomMessage) -> None:
        if event.sender != self.client.user_id:
            self.heard.append((room.room_id, event))

    def messages(self, room_id: str) -> list[Any]:
        """Every message others wrote in a room (texts, notices, files), in order."""
        return [event for room, event in self.heard if room == room_id]

    async def wait_until(self, condition: Any, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError("timed out")
            await asyncio.sleep(0.1)

    async def create_room(self, invite: list[str]) -> str:
        response = await self.client.room_create(invite=invite, name="Welcome Center staff")
        assert isinstance(response, RoomCreateResponse), response
        return response.room_id

    async def join(self, room_id: str) -> None:
        response = await self.client.join(room_id)
        assert getattr(response, "room_id", None), response

    async def say_in_thread(self, room_id: str, root: str, text: str) -> str:
        content = {
            "msgtype": "m.text",
            "body": text,
            "m.relates_to": {
                "rel_type": "m.thread",
                "event_id": root,
                "is_falling_back": True,
                "m.in_reply_to": {"event_id": root},
            },
        }
        response = await self.client.room_send(room_id, "m.room.message", content, ignore_unverified_devices=True)
        assert getattr(response, "event_id", None), response
        return str(response.event_id)

    async def _on_undecryptable(self, _room: Any, _event: MegolmEvent) -> None:
        self.undecryptable += 1

    async def open_chat(self, bot: str, encrypted: bool = False) -> str:
        state = [{"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}]
        response = await self.client.room_create(invite=[bot], is_direct=True, initial_state=state if encrypted else [])
        assert isinstance(response, RoomCreateResponse), response
        return response.room_id

    async def say(self, room_id: str, text: str) -> str:
        await self._wait_room(room_id)
        response = await self.client.room_send(
            room_id, "m.room.message", {"msgtype": "m.text", "body": text}, ignore_unverified_devices=True
        )
        assert getattr(response, "event_id", None), response
        return str(response.event_id)

    async def react(self, room_id: str, event_id: str, key: str) -> None:
        content = {"m.relates_to": {"rel_type": "m.annotation", "event_id": event_id, "key": key}}
        await self.client.room_send(room_id, "m.reaction", content, ignore_unverified_devices=True)

    async def send_image(self, room_id: str) -> None:
        await self._wait_room(room_id)
        content = {"msgtype": "m.image", "body": "photo.jpg", "url": "mxc://localhost/none"}
        await self.client.room_send(room_id, "m.room.message", content, ignore_unverified_devices=True)

    def answers(self, room_id: str) -> list[RoomMessageNotice]:
        return [n for n in self.notices if self.rooms_of.get(n.event_id) == room_id]

    async def wait_for_answers(self, room_id: str, count: int, timeout: float = 60) -> list[RoomMessageNotice]:
        deadline = time.monotonic() + timeout
        while len(self.answers(room_id)) < count:
            if time.monotonic() > deadline:
                got = [n.body[:60] for n in self.answers(room_id)]
                raise AssertionError(f"got {len(got)} answers, wanted {count}: {got}")
            await asyncio.sleep(0.1)
        return self.answers(room_id)

    async def _wait_room(self, room_id: str) -> None:
        deadline = time.monotonic() + 30
        while room_id not in self.client.rooms or len(self.client.rooms[room_id].users) < 2:
            if time.monotonic() > deadline:
                raise AssertionError("the bot did not join")
            await asyncio.sleep(0.1)

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
        await self.client.close()


def bodies(notices: list[RoomMessageNotice]) -> list[str]:
    return [n.body for n in notices]


__all__ = ["Person", "RoomMessageText", "bodies"]
