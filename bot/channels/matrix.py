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
import io
import json
import logging
import time
from collections import OrderedDict
from dataclasses import replace
from html import escape
from pathlib import Path
from typing import Any

from nio import (
    AsyncClient,
    AsyncClientConfig,
    DownloadError,
    InviteMemberEvent,
    JoinedMembersError,
    JoinError,
    MegolmEvent,
    ReactionEvent,
    RoomMessage,
    RoomMessageEmote,
    RoomMessageNotice,
    RoomMessagesError,
    RoomMessageText,
    RoomResolveAliasError,
    RoomSendError,
    SyncError,
    SyncResponse,
    UploadError,
    WhoamiError,
)
from nio.crypto.attachments import decrypt_attachment

from bot.config import Settings
from bot.delivery import Delivery
from bot.desk import StaffDesk
from bot.dispatcher import CHOICE_PROMPT, Dispatcher
from bot.handoff import FILE_LOST
from bot.messages import Choice, Incoming, Kind, Reply, StaffMessage, StaffPost
from bot.outlets import Outlets
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
        record = {**record, "kind": _MSGTYPES.get(msgtype, Kind.OTHER).value, "body": str(body or "")}
        thread = _thread_of(content)
        if thread:
            record["thread"] = thread
        if content.get("url") or isinstance(content.get("file"), dict):
            record["file"] = {
                "channel": CHANNEL,
                "url": str(content.get("url") or ""),
                "encrypted": json.dumps(content["file"]) if isinstance(content.get("file"), dict) else "",
                "name": str(content.get("body") or "file")[:200],
                "mime": str((content.get("info") or {}).get("mimetype") or "application/octet-stream"),
            }
        return record
    return None


def _thread_of(content: dict[str, Any]) -> str | None:
    """The event a message answers in a thread, or by a plain reply: a ticket's thread in the staff room."""
    relation = content.get("m.relates_to") or {}
    if not isinstance(relation, dict):
        return None
    if relation.get("rel_type") == "m.thread" and relation.get("event_id"):
        return str(relation["event_id"])
    replied = relation.get("m.in_reply_to") or {}
    return str(replied["event_id"]) if isinstance(replied, dict) and replied.get("event_id") else None


class MatrixChannel:
    """Serves one Matrix account: direct chats with people, in encrypted rooms too."""

    name = CHANNEL

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
        staff_room = settings.staff_matrix_room
        self.staff_room: str | None = staff_room if staff_room.startswith("!") else None  # an alias: at start
        self.desk: StaffDesk | None = None
        self.outlets: Outlets | None = None

    # -- life cycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        self.store_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        await self._login()
        if self.store.state("matrix:first_start") is None:
            self.store.set_state("matrix:first_start", str(int(time.time() * 1000)))
        if self.settings.staff_matrix_room:
            await self._join_staff_room(self.settings.staff_matrix_room)
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

    async def _join_staff_room(self, room: str) -> None:
        assert self.client is not None
        if room.startswith("#"):
            resolved = await self.client.room_resolve_alias(room)
            if isinstance(resolved, RoomResolveAliasError):
                raise RuntimeError(f"STAFF_MATRIX_ROOM {room} is not known to the homeserver")
            room = resolved.room_id
        joined = await self.client.join(room)
        if isinstance(joined, JoinError):
            raise RuntimeError("the bot cannot join STAFF_MATRIX_ROOM: invite it to the staff room first")
        self.staff_room = room

    def kick(self, chat_id: str) -> None:
        self.delivery.kick(chat_id)

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
        if room_id == self.staff_room:
            return await self._staff_message(event_id, record)
        if record.get("kind") == "invite":
            replies = await self._accept_invite(room_id, record.get("sender", ""))
        else:
            incoming = self.to_incoming(record, event_id)
            if incoming is not None:
                replies = await self.dispatcher.handle(incoming)
        return [body for reply in replies for body in self.render(reply, room_id)]

    async def _staff_message(self, event_id: str, record: dict[str, Any]) -> list[dict[str, Any]]:
        """Something written in the staff room: for the staff desk, never for the matcher."""
        if self.desk is None or record.get("kind") in ("invite", Kind.FEEDBACK.value, Kind.UNREADABLE.value):
            return []
        message = StaffMessage(
            CHANNEL,
            record["sender"],
            record.get("body", ""),
            event_id,
            record.get("thread"),
            is_file=record["kind"] != Kind.TEXT.value,
            attachment=record.get("file"),
        )
        posts = await self.desk.handle(message, self._in_staff_room)
        return [self.render_staff(post) for post in posts]

    async def _in_staff_room(self, user_id: str) -> bool:
        """Membership as the homeserver knows it now, not as a cached display name suggests."""
        assert self.client is not None and self.staff_room is not None
        members = await self.client.joined_members(self.staff_room)
        if isinstance(members, JoinedMembersError):
            log.warning("could not read the staff room's members; the staff command is refused")
            return False
        return any(member.user_id == user_id for member in members.members)

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

    def to_incoming(self, record: dict[str, Any], event_id: str | None = None) -> Incoming | None:
        incoming = self._incoming(record)
        if incoming is None:
            return None
        return replace(
            incoming,
            sent_at=record["ts"] / 1000 if record.get("ts") else None,
            message_id=event_id,
            attachment=record.get("file"),
        )

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

    def render(self, reply: Reply, room_id: str) -> list[dict[str, Any]]:
        """A reply as an m.notice: plain body and escaped HTML, choices as a numbered list."""
        text = reply.text
        choices = [c for c in reply.choices if not c.action.startswith("feedback:")]
        if reply.handoff:  # from now on a number is an answer to staff, not the choice of an old menu
            self._choices.pop(room_id, None)
        if choices:
            self._choices[room_id] = choices
            intro = self.dispatcher.catalogs.gettext(reply.language, CHOICE_PROMPT)
            text += "\n\n" + intro + "\n" + "\n".join(f"{n}. {c.label}" for n, c in enumerate(choices, start=1))
        text = split_text(text, MESSAGE_LIMIT)[0]
        return [
            {"body": text, "html": to_html(text, reply.language).replace("\n", "<br>"), "answer_id": reply.answer_id}
        ]

    def render_staff(self, post: StaffPost) -> dict[str, Any]:
        """A post in a ticket's thread; staff who speak the person's language are mentioned by their id."""
        text = split_text(post.text, MESSAGE_LIMIT)[0]
        html = to_html(text, "de").replace("\n", "<br>")
        mentioned = [m for m in post.mentions if m.matrix_id]
        if mentioned:
            text += "\n" + " ".join(m.matrix_id for m in mentioned)
            pills = (f'<a href="https://matrix.to/#/{m.matrix_id}">{escape(m.name)}</a>' for m in mentioned)
            html += "<br>" + " ".join(pills)
        return {
            "body": text,
            "html": html,
            "ticket": post.ticket,
            "root": post.root,
            "mentions": [m.matrix_id for m in mentioned],
            "file": post.attachment,
        }

    # -- sending ------------------------------------------------------------------------------------

    async def _send(self, room_id: str, source: str, part: int, message: dict[str, Any]) -> bool:
        """Send one queued message (and the file it passes on); False if the room is gone for good."""
        tx_id = hashlib.sha256(f"{source}/{part}".encode()).hexdigest()[:32]
        content: dict[str, Any] = {
            "msgtype": "m.text" if message.get("root") or message.get("mentions") else "m.notice",
            "body": message["body"],
            "format": "org.matrix.custom.html",
            "formatted_body": message["html"],
            "m.mentions": {"user_ids": message.get("mentions", [])},  # nothing else in the text notifies anyone
        }
        if message.get("ticket"):
            self._into_thread(content, message)
        event_id = await self._deliver(room_id, content, tx_id)
        if event_id is None:
            if message.get("relay_ticket") and self.desk is not None:
                self.desk.handoffs.person_unreachable(message["relay_ticket"])
            return False
        if message.get("root"):
            self.store.set_thread(message["ticket"], CHANNEL, event_id)
        if message.get("answer_id"):
            self._answers[event_id] = message["answer_id"]
            while len(self._answers) > 10_000:
                self._answers.popitem(last=False)
        if message.get("file"):
            file_content = await self._file_content(room_id, message)
            if message.get("ticket"):
                self._into_thread(file_content, message)
            await self._deliver(room_id, file_content, tx_id + "f")
        return True

    def _into_thread(self, content: dict[str, Any], message: dict[str, Any]) -> None:
        """Place a staff-room post in its ticket's thread (the ticket's first post starts it)."""
        if message.get("root"):
            return
        root = self.store.thread_of(message["ticket"], CHANNEL)
        if root is None:  # the ticket is gone (the person deleted their data): say which it was
            content["body"] = f"#{message['ticket']} {content['body']}"
            content["formatted_body"] = f"#{message['ticket']} {content['formatted_body']}"
            return
        content["m.relates_to"] = {
            "rel_type": "m.thread",
            "event_id": root,
            "is_falling_back": True,
            "m.in_reply_to": {"event_id": root},
        }

    async def _deliver(self, room_id: str, content: dict[str, Any], tx_id: str) -> str | None:
        """Send until the homeserver accepts; the transaction id makes a repeated send harmless."""
        assert self.client is not None
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
            except Exception as error:  # the homeserver may be gone: keep the message and retry
                log.warning("matrix send failed (%s); retrying in %.0f s", type(error).__name__, delay)
            else:
                if not isinstance(response, RoomSendError):
                    return str(response.event_id)
                if response.status_code in ("M_FORBIDDEN", "M_NOT_FOUND"):
                    log.info("a matrix room can no longer be written to; its messages are dropped")
                    return None
                retry = (response.retry_after_ms or 0) / 1000
                log.warning("matrix refused a send (%s); retrying", response.status_code)
                if retry:
                    await asyncio.sleep(retry)
                    continue
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60.0)

    # -- files passed on in a hand-off ---------------------------------------------------------------

    async def _file_content(self, room_id: str, message: dict[str, Any]) -> dict[str, Any]:
        """Upload a file a person sent (from any channel) into the staff room, encrypted if the room is."""
        assert self.client is not None and self.outlets is not None
        attachment = message["file"]
        delay = 1.0
        for _attempt in range(8):
            try:
                data, name, mime = await self.outlets.fetch(attachment)
                room = self.client.rooms.get(room_id)
                encrypt = bool(room and room.encrypted)
                uploaded, keys = await self.client.upload(
                    io.BytesIO(data), content_type=mime, filename=name, filesize=len(data), encrypt=encrypt
                )
            except Exception as error:  # the source or the homeserver may be down for a moment
                log.warning("passing on a file failed (%s); retrying", type(error).__name__)
            else:
                if not isinstance(uploaded, UploadError):
                    content: dict[str, Any] = {"msgtype": _msgtype(mime), "body": name, "info": {"mimetype": mime}}
                    content["info"]["size"] = len(data)
                    if keys:
                        content["file"] = {**keys, "url": uploaded.content_uri}
                    else:
                        content["url"] = uploaded.content_uri
                    return content
                log.warning("the homeserver refused a file upload (%s); retrying", uploaded.status_code)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
        text = "ℹ️ " + self.dispatcher.catalogs.gettext(self.dispatcher.settings.staff_language, FILE_LOST)
        return {"msgtype": "m.notice", "body": text, "m.mentions": {}}

    async def fetch(self, attachment: dict[str, str]) -> tuple[bytes, str, str]:
        """The bytes of a file a person sent here, decrypted if it came encrypted."""
        assert self.client is not None
        encrypted = json.loads(attachment["encrypted"]) if attachment.get("encrypted") else None
        response = await self.client.download(mxc=encrypted["url"] if encrypted else attachment["url"])
        if isinstance(response, DownloadError):
            raise RuntimeError(f"download refused: {response.status_code}")
        data = response.body if isinstance(response.body, bytes) else Path(response.body).read_bytes()
        if encrypted:
            data = decrypt_attachment(data, encrypted["key"]["k"], encrypted["hashes"]["sha256"], encrypted["iv"])
        return data, attachment["name"], attachment["mime"]


def _msgtype(mime: str) -> str:
    for prefix, msgtype in (("image/", "m.image"), ("audio/", "m.audio"), ("video/", "m.video")):
        if mime.startswith(prefix):
            return msgtype
    return "m.file"
