"""The Matrix channel: matrix-nio with end-to-end encryption and our own durable delivery.

matrix-nio saves the sync token before callbacks run, so a crash inside one would skip events; and
after a long outage a sync is `limited`, holding only the latest events of a room. So this channel
runs its own sync loop: each sync's events (with the gaps of limited timelines fetched back from
`prev_batch`) are stored in the SQLite inbox first, and only then is the sync position saved.
Replies go through the outbox and are sent with a transaction id derived from the event they answer,
so a send retried after a crash is not duplicated by the homeserver.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path
from typing import Any

from nio import (
    AsyncClient,
    AsyncClientConfig,
    InviteMemberEvent,
    JoinError,
    MegolmEvent,
    ReactionEvent,
    RoomMessage,
    RoomMessageEmote,
    RoomMessageNotice,
    RoomMessagesError,
    RoomMessageText,
    RoomSendError,
    SyncError,
    SyncResponse,
    WhoamiError,
)

from bot.config import Settings
from bot.delivery import Delivery
from bot.dispatcher import CHOICE_PROMPT, Dispatcher
from bot.messages import Choice, Incoming, Kind, Reply
from bot.render import split_text, to_html
from bot.store import Store

log = logging.getLogger(__name__)

CHANNEL = "matrix"
MESSAGE_LIMIT = 12000
SYNC_TIMEOUT_MS = 30000
BACKFILL_PAGES = 20
COMMAND_PREFIXES = ("!", "/")
REACTIONS = {"👍": "up", "👍️": "up", "👎": "down", "👎️": "down"}
_MSGTYPES = {
    "m.text": Kind.TEXT,
    "m.emote": Kind.TEXT,
    "m.image": Kind.PHOTO,
    "m.file": Kind.DOCUMENT,
    "m.audio": Kind.VOICE,
    "m.video": Kind.VIDEO,
    "m.location": Kind.LOCATION,
}


def _encryption_available() -> bool:
    from nio.crypto import ENCRYPTION_ENABLED

    return bool(ENCRYPTION_ENABLED)


def event_record(room_id: str, event: Any) -> dict[str, Any] | None:
    """The little we keep of a timeline event (a matrix-nio event object) until it is answered."""
    source = getattr(event, "source", None) or {}
    record = {"room": room_id, "sender": getattr(event, "sender", ""), "ts": getattr(event, "server_timestamp", 0)}
    if isinstance(event, MegolmEvent):
        return {**record, "kind": Kind.UNREADABLE.value}
    if isinstance(event, ReactionEvent):
        return {**record, "kind": Kind.FEEDBACK.value, "target": event.reacts_to, "key": event.key}
    if isinstance(event, RoomMessageNotice):
        return None  # notices are what bots send; never answer one
    if isinstance(event, RoomMessage):
        content = source.get("content") or {}
        if "m.new_content" in content:
            return {**record, "kind": Kind.EDITED.value}
        msgtype = str(content.get("msgtype") or getattr(event, "msgtype", "") or "")
        body = getattr(event, "body", "") if isinstance(event, (RoomMessageText, RoomMessageEmote)) else ""
        return {**record, "kind": _MSGTYPES.get(msgtype, Kind.OTHER).value, "body": str(body or "")}
    return None


class MatrixChannel:
    """Serves one Matrix account: direct chats with people, in encrypted rooms too."""

    def __init__(self, settings: Settings, dispatcher: Dispatcher, store: Store) -> None:
        self.settings = settings
        self.dispatcher = dispatcher
        self.store = store
        self.store_dir = Path(settings.matrix_store_dir)
        self.encrypted = _encryption_available()
        self.client: AsyncClient | None = None
        self.delivery = Delivery(store, CHANNEL, self.answer, self._send)
        self._tasks: list[asyncio.Task[None]] = []
        self._choices: dict[str, list[Choice]] = {}
        self._answers: OrderedDict[str, str] = OrderedDict()  # our event id -> answer id, for reactions
        self.synced = asyncio.Event()

    # -- life cycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        self.store_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        await self._login()
        if self.store.state("matrix:first_start") is None:
            self.store.set_state("matrix:first_start", str(int(time.time() * 1000)))
        initial = await self._initial_state()
        if self.store.state("matrix:since") is None:  # first start: begin now, with the invitations waiting
            self.store.receive(CHANNEL, self._invitations(initial))
            self.store.set_state("matrix:since", initial.next_batch)
        self._tasks.append(asyncio.create_task(self._sync_forever(), name="matrix-sync"))
        self.delivery.start()
        log.info("matrix channel started (end-to-end encryption %s)", "on" if self.encrypted else "unavailable")

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.delivery.stop()
        if self.client is not None:
            await self.client.close()

    async def _login(self) -> None:
        """Log in once and reuse the access token and device: repeated logins are rate-limited."""
        session_file = self.store_dir / "session.json"
        config = AsyncClientConfig(encryption_enabled=self.encrypted, store_sync_tokens=False, max_timeouts=None)
        session: dict[str, str] = {}
        if session_file.exists():
            session = json.loads(session_file.read_text())
            if session.get("user_id") != self.settings.matrix_user_id:
                session = {}
        self.client = client = AsyncClient(
            self.settings.matrix_homeserver,
            self.settings.matrix_user_id,
            device_id=session.get("device_id", ""),
            store_path=str(self.store_dir),
            config=config,
        )
        if not session and self.settings.matrix_access_token:
            client.access_token = self.settings.matrix_access_token
            whoami = await client.whoami()
            if isinstance(whoami, WhoamiError) or not whoami.device_id:
                raise RuntimeError("MATRIX_ACCESS_TOKEN was refused by the homeserver")
            session = {
                "user_id": whoami.user_id,
                "device_id": whoami.device_id,
                "access_token": self.settings.matrix_access_token,
            }
        elif not session:
            response = await client.login(self.settings.matrix_password, device_name="Willkommen bot")
            if not getattr(response, "access_token", None):
                raise RuntimeError(f"Matrix login failed: {getattr(response, 'message', response)}")
            session = {
                "user_id": response.user_id,
                "device_id": response.device_id,
                "access_token": response.access_token,
            }
        session_file.write_text(json.dumps(session))
        session_file.chmod(0o600)
        client.restore_login(session["user_id"], session["device_id"], session["access_token"])
        if self.encrypted and client.should_upload_keys:
            await client.keys_upload()

    async def _initial_state(self) -> SyncResponse:
        """Learn the rooms (and who is in them, for encryption) without reading old messages."""
        assert self.client is not None
        while True:
            response = await self.client.sync(
                timeout=0, full_state=True, sync_filter={"room": {"timeline": {"limit": 0}}}
            )
            if isinstance(response, SyncResponse):
                return response
            log.warning("initial matrix sync failed; retrying")
            await asyncio.sleep(2)

    # -- receiving ----------------------------------------------------------------------------------

    async def _sync_forever(self) -> None:
        assert self.client is not None
        client = self.client
        since = self.store.state("matrix:since")
        while True:
            response = await client.sync(timeout=SYNC_TIMEOUT_MS, since=since)
            if isinstance(response, SyncError) or not isinstance(response, SyncResponse):
                log.warning("matrix sync failed; retrying")
                await asyncio.sleep(2)
                continue
            await self._encryption_chores()
            records = await self._collect(response, since)
            self.store.receive(CHANNEL, records)
            since = response.next_batch
            self.store.set_state("matrix:since", since)  # only after the events are stored
            self.store.set_state("matrix:since_ts", str(int(time.time() * 1000)))
            self.delivery.notify()
            self.synced.set()

    async def _encryption_chores(self) -> None:
        assert self.client is not None
        client = self.client
        if not self.encrypted:
            return
        await client.send_to_device_messages()
        if client.should_upload_keys:
            await client.keys_upload()
        if client.should_query_keys:
            await client.keys_query()
        if client.should_claim_keys:
            await client.keys_claim(client.get_users_for_key_claiming())

    async def _collect(self, response: SyncResponse, since: str | None) -> list[tuple[str, str, str]]:
        first_start = int(self.store.state("matrix:first_start") or 0)
        rows = self._invitations(response)
        for room_id, room in response.rooms.join.items():
            events = list(room.timeline.events)
            if room.timeline.limited and since is not None:
                events = await self._backfill(room_id, room.timeline.prev_batch, first_start) + events
            for event in events:
                event_id = getattr(event, "event_id", None)
                if not event_id or getattr(event, "sender", "") == self.settings.matrix_user_id:
                    continue
                if getattr(event, "server_timestamp", 0) < first_start:
                    continue  # older than the bot's first start: never answered
                record = event_record(room_id, event)
                if record is not None:
                    rows.append((event_id, room_id, json.dumps(record, ensure_ascii=False)))
        return rows

    def _invitations(self, response: SyncResponse) -> list[tuple[str, str, str]]:
        return [
            (
                f"invite:{room_id}",
                room_id,
                json.dumps({"room": room_id, "kind": "invite", "sender": self._inviter(room_id)}),
            )
            for room_id in response.rooms.invite
        ]

    def _inviter(self, room_id: str) -> str:
        assert self.client is not None
        room = self.client.invited_rooms.get(room_id)
        for event in getattr(room, "invite_state", []) if room else []:  # pragma: no branch
            if isinstance(event, InviteMemberEvent) and event.state_key == self.settings.matrix_user_id:
                return event.sender
        return ""

    async def _backfill(self, room_id: str, prev_batch: str | None, first_start: int) -> list[Any]:
        """Events a limited sync left out: page back until known, older than the last sync, or the start."""
        assert self.client is not None
        last_sync = int(self.store.state("matrix:since_ts") or first_start) - 60_000
        missed: list[Any] = []
        token = prev_batch
        for _ in range(BACKFILL_PAGES):
            if not token:
                break
            page = await self.client.room_messages(room_id, start=token, limit=100)
            if isinstance(page, RoomMessagesError):
                log.warning("could not fetch missed matrix events; some may be answered late")
                break
            done = False
            for event in page.chunk:  # newest first
                known = self.store.is_known(CHANNEL, getattr(event, "event_id", ""))
                if known or getattr(event, "server_timestamp", 0) < min(first_start, last_sync):
                    done = True
                    break
                missed.append(event)
            if done or not page.chunk or page.end == token:
                break
            token = page.end
        missed.reverse()
        return missed

    # -- handling -----------------------------------------------------------------------------------

    async def answer(self, event_id: str, room_id: str, payload: str) -> list[dict[str, Any]]:
        """The Matrix messages that answer one stored event (or invitation)."""
        record = json.loads(payload)
        replies: list[Reply] = []
        if record.get("kind") == "invite":
            replies = await self._accept_invite(room_id, record.get("sender", ""))
        else:
            incoming = self.to_incoming(record)
            if incoming is not None:
                replies = await self.dispatcher.handle(incoming)
        return [self._render(r, room_id) for r in replies]

    async def _accept_invite(self, room_id: str, inviter: str) -> list[Reply]:
        assert self.client is not None
        server = inviter.split(":", 1)[1] if ":" in inviter else ""
        allowed = self.settings.matrix_allowed_servers
        if allowed and server not in allowed:
            await self.client.room_leave(room_id)
            log.info("declined an invitation from a homeserver that is not allowed")
            return []
        for _ in range(10):
            joined = await self.client.join(room_id)
            if not isinstance(joined, JoinError):
                break
            await asyncio.sleep(1)
        else:
            log.error("could not join a room the bot was invited to")
            return []
        return await self.dispatcher.handle(Incoming(CHANNEL, room_id, inviter, "start", Kind.COMMAND))

    def to_incoming(self, record: dict[str, Any]) -> Incoming | None:
        incoming = self._incoming(record)
        return replace(incoming, sent_at=record["ts"] / 1000) if incoming and record.get("ts") else incoming

    def _incoming(self, record: dict[str, Any]) -> Incoming | None:
        room, sender, kind = record["room"], record["sender"], record["kind"]
        if kind == Kind.FEEDBACK.value:
            verdict = REACTIONS.get(record.get("key", ""))
            answer_id = self._answers.get(record.get("target", ""))
            if verdict is None or answer_id is None:
                return None
            return Incoming(CHANNEL, room, sender, verdict, Kind.FEEDBACK, reference=answer_id)
        if kind != Kind.TEXT.value:
            return Incoming(CHANNEL, room, sender, "", Kind(kind))
        body = record.get("body", "").strip()
        choices = self._choices.get(room, [])
        if body.isdigit() and 1 <= int(body) <= len(choices):
            return Incoming(CHANNEL, room, sender, choices[int(body) - 1].action, Kind.CHOICE)
        if body[:1] in COMMAND_PREFIXES and len(body) > 1 and " " not in body.strip():
            return Incoming(CHANNEL, room, sender, body[1:].lower(), Kind.COMMAND)
        return Incoming(CHANNEL, room, sender, body)

    def _render(self, reply: Reply, room_id: str) -> dict[str, Any]:
        """A reply as an m.notice: plain body and escaped HTML, choices as a numbered list."""
        text = reply.text
        choices = [c for c in reply.choices if not c.action.startswith("feedback:")]
        if choices:
            self._choices[room_id] = choices
            intro = self.dispatcher.catalogs.gettext(reply.language, CHOICE_PROMPT)
            text += "\n\n" + intro + "\n" + "\n".join(f"{n}. {c.label}" for n, c in enumerate(choices, start=1))
        text = split_text(text, MESSAGE_LIMIT)[0]
        return {"body": text, "html": to_html(text, reply.language).replace("\n", "<br>"), "answer_id": reply.answer_id}

    # -- sending ------------------------------------------------------------------------------------

    async def _send(self, room_id: str, source: str, part: int, message: dict[str, Any]) -> bool:
        """Send until the homeserver accepts; the transaction id makes a repeated send harmless."""
        assert self.client is not None
        content = {
            "msgtype": "m.notice",
            "body": message["body"],
            "format": "org.matrix.custom.html",
            "formatted_body": message["html"],
        }
        tx_id = hashlib.sha256(f"{source}/{part}".encode()).hexdigest()[:32]
        delay = 1.0
        while True:
            if room_id not in self.client.rooms:  # joined a moment ago: the next sync brings the room
                self.synced.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.synced.wait(), SYNC_TIMEOUT_MS / 1000 + 5)
                continue
            try:
                response = await self.client.room_send(
                    room_id, "m.room.message", content, tx_id=tx_id, ignore_unverified_devices=True
                )
            except Exception as error:  # the homeserver may be gone: keep the reply and retry
                log.warning("matrix send failed (%s); retrying in %.0f s", type(error).__name__, delay)
            else:
                if not isinstance(response, RoomSendError):
                    if message.get("answer_id"):
                        self._answers[response.event_id] = message["answer_id"]
                        while len(self._answers) > 10_000:
                            self._answers.popitem(last=False)
                    return True
                if response.status_code in ("M_FORBIDDEN", "M_NOT_FOUND"):
                    log.info("a matrix room can no longer be written to; its replies are dropped")
                    return False
                retry = (response.retry_after_ms or 0) / 1000
                log.warning("matrix refused a send (%s); retrying", response.status_code)
                if retry:
                    await asyncio.sleep(retry)
                    continue
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60.0)
