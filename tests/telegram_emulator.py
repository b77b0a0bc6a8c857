"""A local Telegram Bot API emulator on 127.0.0.1 for the tests.

It queues updates for getUpdates (with real offset semantics: an update is confirmed by a later
call with a higher offset), records sendMessage and friends, and can inject 429s, 5xx errors,
dropped connections and blocked chats (403).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

BOT_USER = {"id": 777000111, "is_bot": True, "first_name": "Willkommen", "username": "willkommen_test_bot"}


@dataclass
class Sent:
    method: str
    params: dict[str, Any]
    at: float

    @property
    def chat_id(self) -> str:
        return str(self.params.get("chat_id"))

    @property
    def text(self) -> str:
        return str(self.params.get("text", ""))

    @property
    def buttons(self) -> list[tuple[str, str]]:
        markup = self.params.get("reply_markup") or {}
        return [(b["text"], b.get("callback_data", "")) for row in markup.get("inline_keyboard", []) for b in row]


@dataclass
class Emulator:
    token: str = "123456789:TEST-token-for-the-local-emulator-only"
    updates: list[dict[str, Any]] = field(default_factory=list)
    calls: list[Sent] = field(default_factory=list)
    faults: dict[str, list[Any]] = field(default_factory=dict)  # method -> ["drop", 500, ("429", seconds), ...]
    blocked: set[str] = field(default_factory=set)
    hang_sends: bool = False
    on_updates_delivered: Callable[[list[int]], None] | None = None
    enqueued_at: dict[int, float] = field(default_factory=dict)
    fault_rate: float = 0.0  # share of sends and polls that fail at random (502, dropped connection, 429)
    faults_injected: int = 0
    members: dict[str, set[str]] = field(default_factory=dict)  # group chat id -> member user ids
    files: dict[str, bytes] = field(default_factory=dict)  # file id -> content, for getFile and downloads
    documents: list[tuple[str, str, bytes, int | None]] = field(default_factory=list)  # chat, name, data, thread

    def __post_init__(self) -> None:
        self._ids = itertools.count(1)
        self._message_ids = itertools.count(1000)
        self._new = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_get("/file/bot{token}/{path:.*}", self._download)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    # -- what people do ---------------------------------------------------------------------------

    def add_update(self, update: dict[str, Any]) -> int:
        update_id = update.setdefault("update_id", next(self._ids))
        self.updates.append(update)
        self.enqueued_at[update_id] = time.monotonic()
        self._new.set()
        return update_id

    def user(self, user_id: int, language: str | None = "de") -> dict[str, Any]:
        user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": f"Person{user_id}"}
        if language:
            user["language_code"] = language
        return user

    def message(self, user_id: int, text: str | None = None, language: str | None = "de", **extra: Any) -> int:
        chat = extra.pop("chat", {"id": user_id, "type": "private"})
        edited = extra.pop("edited", False)
        message: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": chat,
            "from": self.user(user_id, language),
        }
        if text is not None:
            message["text"] = text
            if text.startswith("/"):
                message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        message.update(extra)
        if edited:
            message["edit_date"] = int(time.time())
        key = "edited_message" if edited else "message"
        return self.add_update({key: message})

    def press(self, user_id: int, data: str, language: str | None = "de") -> int:
        query = {
            "id": str(next(self._message_ids)),
            "from": self.user(user_id, language),
            "chat_instance": "x",
            "data": data,
            "message": {
                "message_id": 1,
                "date": int(time.time()),
                "chat": {"id": user_id, "type": "private"},
                "from": BOT_USER,
                "text": "...",
            },
        }
        return self.add_update({"callback_query": query})

    # -- what the bot did -----------------------------------------------------------------------

    def staff_message(self, user_id: int, chat_id: int, thread: int | None, text: str) -> int:
        """A staff member writes in the staff group, inside a ticket's forum topic (or outside any)."""
        chat = {"id": chat_id, "type": "supergroup", "title": "Staff", "is_forum": True}
        extra: dict[str, Any] = {"chat": chat}
        if thread is not None:
            extra.update(message_thread_id=thread, is_topic_message=True)
        return self.message(user_id, text, **extra)

    def sent(self, chat_id: int | str | None = None) -> list[Sent]:
        return [c for c in self.calls if c.method == "sendMessage" and (chat_id is None or c.chat_id == str(chat_id))]

    def called(self, method: str) -> list[Sent]:
        return [c for c in self.calls if c.method == method]

    async def wait_for(self, condition: Callable[[], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError("timed out waiting for the bot")
            await asyncio.sleep(0.02)

    # -- the API ----------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        method = request.match_info["method"]
        params = await _params(request)
        queued = self.faults.get(method)
        if self.fault_rate and method in ("sendMessage", "getUpdates") and random.random() < self.fault_rate:
            queued = [random.choice([502, "drop", ("429", 1)])]
            self.faults_injected += 1
        if queued:
            fault = queued.pop(0)
            if fault == "drop":
                assert request.transport is not None
                request.transport.close()
                return web.Response(status=500)
            if isinstance(fault, tuple) and fault[0] == "429":
                return web.json_response(
                    {
                        "ok": False,
                        "error_code": 429,
                        "description": "Too Many Requests",
                        "parameters": {"retry_after": fault[1]},
                    },
                    status=429,
                )
            return web.json_response(
                {"ok": False, "error_code": int(fault), "description": "Server error"}, status=int(fault)
            )
        if method == "getUpdates":
            return web.json_response({"ok": True, "result": await self._get_updates(params)})
        if method == "sendMessage" and str(params.get("chat_id")) in self.blocked:
            return web.json_response(
                {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}, status=403
            )
        if method == "sendMessage" and self.hang_sends:
            await asyncio.sleep(3600)
        self.calls.append(Sent(method, params, time.monotonic()))
        if method == "getMe":
            return web.json_response({"ok": True, "result": BOT_USER})
        if method == "getChatMember":
            member = str(params.get("user_id")) in self.members.get(str(params.get("chat_id")), set())
            user = {"id": int(params.get("user_id", 0)), "is_bot": False, "first_name": "Someone"}
            return web.json_response({"ok": True, "result": {"status": "member" if member else "left", "user": user}})
        if method == "createForumTopic":
            topic = {"message_thread_id": next(self._message_ids), "name": params.get("name"), "icon_color": 0}
            return web.json_response({"ok": True, "result": topic})
        if method == "getFile":
            file_id = str(params.get("file_id"))
            if file_id not in self.files:
                return web.json_response({"ok": False, "error_code": 400, "description": "file not found"}, status=400)
            file = {"file_id": file_id, "file_unique_id": file_id, "file_path": f"files/{file_id}"}
            return web.json_response({"ok": True, "result": {**file, "file_size": len(self.files[file_id])}})
        if method == "sendDocument":
            upload: Any = params.get("document")
            data = upload.file.read() if hasattr(upload, "file") else b""
            name = getattr(upload, "filename", "") or ""
            thread = params.get("message_thread_id")
            self.documents.append((str(params.get("chat_id")), name, data, int(thread) if thread else None))
        if method in ("sendMessage", "editMessageText", "sendDocument"):
            chat_id = params.get("chat_id")
            result = {
                "message_id": next(self._message_ids),
                "date": int(time.time()),
                "chat": {"id": chat_id, "type": "private"},
                "from": BOT_USER,
                "text": params.get("text", ""),
            }
            return web.json_response({"ok": True, "result": result})
        return web.json_response({"ok": True, "result": True})

    async def _download(self, request: web.Request) -> web.Response:
        file_id = request.match_info["path"].rsplit("/", 1)[-1]
        if request.match_info["token"] != self.token or file_id not in self.files:
            return web.Response(status=404)
        return web.Response(body=self.files[file_id])

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        if offset:
            self.updates = [u for u in self.updates if u["update_id"] >= offset]  # confirmed ones are gone
        timeout = min(float(params.get("timeout") or 0), 2.0)
        deadline = time.monotonic() + timeout
        while not self.updates and time.monotonic() < deadline:
            self._new.clear()
            try:
                await asyncio.wait_for(self._new.wait(), deadline - time.monotonic())
            except TimeoutError:
                break
        batch = self.updates[: int(params.get("limit") or 100)]
        if batch and self.on_updates_delivered:
            self.on_updates_delivered([u["update_id"] for u in batch])
        return batch


async def _params(request: web.Request) -> dict[str, Any]:
    if request.content_type == "application/json":
        raw: dict[str, Any] = await request.json()
    else:
        raw = dict(await request.post())
    params: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, str):
            try:
                params[key] = json.loads(value)
            except ValueError:
                params[key] = value
        else:
            params[key] = value
    return params
