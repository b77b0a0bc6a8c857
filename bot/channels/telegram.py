"""The Telegram channel: python-telegram-bot's network layer, with our own durable delivery.

python-telegram-bot's Updater confirms an update's offset while its handler may still be running,
so a crash loses the message and a restart may deliver it twice. Here every update is written to
the SQLite inbox before the next getUpdates call confirms it, replies are written to the outbox in
the same transaction that marks the update handled, and the outbox is sent with Telegram's rate
limits respected and retried on failure. Nothing is lost and nothing is answered twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from functools import partial
from html import escape
from typing import Any

from aiohttp import web
from telegram import Bot, BotCommand, InlineKeyboardButton, InlineKeyboardMarkup, InputFile, Message, Update
from telegram.constants import ChatMemberStatus, ChatType, ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError
from telegram.request import HTTPXRequest

from bot.config import Settings
from bot.delivery import Delivery
from bot.desk import StaffDesk
from bot.dispatcher import COMMAND_DESCRIPTIONS, Dispatcher
from bot.handoff import FILE_LOST
from bot.messages import Choice, Incoming, Kind, Reply, StaffMessage, StaffPost
from bot.outlets import Outlets
from bot.render import split_text, to_html
from bot.store import Store

log = logging.getLogger(__name__)
os.environ.setdefault("PTB_TIMEDELTA", "1")  # time periods as timedelta, the form future versions use

CHANNEL = "telegram"
MESSAGE_LIMIT = 3800  # Telegram allows 4096 characters; leave room for what escaping adds
POLL_TIMEOUT = 25
UPDATE_TYPES = ["message", "edited_message", "callback_query"]
PRIVATE_INTERVAL = 1.0  # about one message per second per chat
GROUP_INTERVAL = 3.0  # twenty per minute per group
CHAT_BURST = 3
MAX_BACKOFF = 60.0
# Sends waiting inside httpx's connection pool cost time per waiting request (its queue is scanned on every
# change), so no more sends are started than the pool has connections; the rest wait here, cheaply.
SENDS_IN_FLIGHT = 16

_KINDS = (
    ("photo", Kind.PHOTO),
    ("voice", Kind.VOICE),
    ("audio", Kind.AUDIO),
    ("video", Kind.VIDEO),
    ("video_note", Kind.VIDEO),
    ("sticker", Kind.STICKER),
    ("document", Kind.DOCUMENT),
    ("animation", Kind.VIDEO),
    ("location", Kind.LOCATION),
    ("venue", Kind.LOCATION),
    ("contact", Kind.CONTACT),
)


def to_incoming(update: Update, bot_username: str) -> Incoming | None:
    """The neutral message of an update, or None for what the bot must not answer (group chatter)."""
    if update.callback_query is not None:
        query = update.callback_query
        origin = query.message.chat.id if query.message else query.from_user.id
        return Incoming(
            CHANNEL, str(origin), str(query.from_user.id), query.data or "", Kind.CHOICE, _hint(query.from_user)
        )
    edited = update.edited_message is not None
    message = update.message or update.edited_message
    if message is None or message.from_user is None or message.from_user.is_bot:
        return None
    chat, user, hint = str(message.chat.id), str(message.from_user.id), _hint(message.from_user)
    group = message.chat.type != ChatType.PRIVATE
    text = message.text or ""
    if group and not _addressed(message.text or "", bot_username, message):
        return None
    if edited:
        return Incoming(CHANNEL, chat, user, "", Kind.EDITED, hint)
    if text.startswith("/"):
        word = text[1:].split(maxsplit=1)[0] if len(text) > 1 else ""
        command, _sep, target = word.partition("@")
        if target and target.lower() != bot_username.lower():
            return None
        return Incoming(CHANNEL, chat, user, command.lower(), Kind.COMMAND, hint)
    if message.text is not None:
        if group:
            text = text.replace(f"@{bot_username}", " ").strip()
        return Incoming(CHANNEL, chat, user, text, Kind.TEXT, hint)
    for attribute, kind in _KINDS:
        if getattr(message, attribute, None):
            return Incoming(CHANNEL, chat, user, message.caption or "", kind, hint)
    return Incoming(CHANNEL, chat, user, "", Kind.OTHER, hint)


def attachment_of(message: Message) -> dict[str, str] | None:
    """A file a person sent, by Telegram's file id: fetched only when passed on to staff."""
    sent: Any = message.document or message.voice or message.audio or message.video or message.video_note
    if message.photo:
        sent = message.photo[-1]  # the largest size
    if sent is None:
        return None
    mime = getattr(sent, "mime_type", None) or ("image/jpeg" if message.photo else "application/octet-stream")
    name = getattr(sent, "file_name", None) or ("photo.jpg" if message.photo else "file" + _extension(mime))
    return {"channel": CHANNEL, "file_id": sent.file_id, "name": name[:200], "mime": mime}


def _extension(mime: str) -> str:
    return {"audio/ogg": ".ogg", "video/mp4": ".mp4", "audio/mpeg": ".mp3"}.get(mime, "")


def _hint(user: Any) -> str | None:
    code = getattr(user, "language_code", None)
    return code.split("-")[0].lower() if code else None


def _addressed(text: str, bot_username: str, message: Any) -> bool:
    """In groups the bot answers commands and messages that mention it or reply to it."""
    if text.startswith("/"):
        return True
    if bot_username and f"@{bot_username.lower()}" in text.lower():
        return True
    replied = message.reply_to_message
    return bool(replied and replied.from_user and replied.from_user.username == bot_username)


def render_messages(reply: Reply) -> list[dict[str, Any]]:
    """One reply as Telegram messages: HTML parts, buttons on the last part."""
    parts = split_text(reply.text, MESSAGE_LIMIT)
    messages: list[dict[str, Any]] = [{"html": to_html(part, reply.language)} for part in parts]
    if reply.choices:
        messages[-1]["buttons"] = _button_rows(reply.choices)
    return messages


def _button_rows(choices: tuple[Choice, ...]) -> list[list[list[str]]]:
    rows: list[list[list[str]]] = []
    for choice in choices:
        compact = choice.action.startswith(("feedback:", "lang:"))
        width = 2 if choice.action.startswith("feedback:") else 3
        if (
            compact
            and rows
            and rows[-1]
            and rows[-1][-1][1].split(":")[0] == choice.action.split(":")[0]
            and len(rows[-1]) < width
        ):
            rows[-1].append([choice.label, choice.action])
        else:
            rows.append([[choice.label, choice.action]])
    return rows


class _Pace:
    """Token buckets for Telegram's limits: overall per second, and per chat."""

    def __init__(self, per_second: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.per_second = per_second
        self._overall = (per_second, clock())
        self._chats: dict[str, tuple[float, float]] = {}

    async def wait(self, chat_id: str, group: bool) -> None:
        interval = GROUP_INTERVAL if group else PRIVATE_INTERVAL
        while True:
            now = self.clock()
            tokens, last = self._chats.get(chat_id, (CHAT_BURST, now))
            tokens = min(CHAT_BURST, tokens + (now - last) / interval)
            overall, overall_last = self._overall
            overall = min(self.per_second, overall + (now - overall_last) * self.per_second)
            if tokens >= 1 and overall >= 1:
                self._chats[chat_id] = (tokens - 1, now)
                self._overall = (overall - 1, now)
                if len(self._chats) > 50_000:
                    self._chats.clear()
                return
            self._chats[chat_id] = (tokens, now)
            self._overall = (overall, now)
            delay = max(
                (1 - tokens) * interval if tokens < 1 else 0, (1 - overall) / self.per_second if overall < 1 else 0
            )
            await asyncio.sleep(max(delay, 0.001))


def _retry_seconds(error: RetryAfter) -> float:
    value = error.retry_after  # a timedelta, as PTB_TIMEDELTA asks for below
    return value.total_seconds() if isinstance(value, dt.timedelta) else float(value)


class TelegramChannel:
    """Serves one bot account: polling or webhook in, the outbox out."""

    name = CHANNEL

    def __init__(self, settings: Settings, dispatcher: Dispatcher, store: Store) -> None:
        self.settings = settings
        self.dispatcher = dispatcher
        self.store = store
        server = settings.telegram_api_url.rstrip("/") or "https://api.telegram.org"
        self.bot = Bot(
            settings.telegram_token,
            base_url=server + "/bot",
            base_file_url=server + "/file/bot",
            request=HTTPXRequest(connection_pool_size=SENDS_IN_FLIGHT, read_timeout=20, connect_timeout=10),
            get_updates_request=HTTPXRequest(connection_pool_size=2, read_timeout=POLL_TIMEOUT + 10),
        )
        self.pace = _Pace(settings.telegram_max_per_second)
        self._in_flight = asyncio.Semaphore(SENDS_IN_FLIGHT)
        self.delivery = Delivery(store, CHANNEL, self.answer, self._send)
        self._tasks: list[asyncio.Task[None]] = []
        self._webhook: web.AppRunner | None = None
        self.username = ""
        self.staff_room: str | None = settings.staff_telegram_chat_id or None  # a forum-enabled group
        self.desk: StaffDesk | None = None
        self.outlets: Outlets | None = None

    # -- life cycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        await self._until_done(self.bot.initialize)
        self.username = self.bot.username or ""
        await self._register_commands()
        if self.settings.telegram_webhook_url:
            await self._start_webhook()
        else:
            await self._until_done(lambda: self.bot.delete_webhook(drop_pending_updates=False))
            self._tasks.append(asyncio.create_task(self._poll_forever(), name="telegram-poll"))
        self.delivery.start()
        log.info("telegram channel started")

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.delivery.stop()
        if self._webhook is not None:
            await self._webhook.cleanup()
        await self.bot.shutdown()

    def kick(self, chat_id: str) -> None:
        self.delivery.kick(chat_id)

    async def _register_commands(self) -> None:
        for language in (None, *self.settings.languages):
            gettext = self.dispatcher.catalogs.get(language or "en").gettext
            commands = [BotCommand(name, gettext(description)) for name, description in COMMAND_DESCRIPTIONS.items()]
            await self._until_done(partial(self.bot.set_my_commands, commands, language_code=language))

    async def _until_done(self, call: Callable[[], Any]) -> Any:
        """Retry a call until Telegram accepts it, waiting as asked and backing off on network errors."""
        delay = 1.0
        while True:
            try:
                return await call()
            except RetryAfter as error:
                await asyncio.sleep(_retry_seconds(error))
            except (NetworkError, TimeoutError) as error:
                if isinstance(error, BadRequest):
                    raise
                log.warning("telegram unreachable (%s); retrying in %.0f s", type(error).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF)

    # -- receiving ----------------------------------------------------------------------------------

    async def _poll_forever(self) -> None:
        offset: int | None = None
        while True:
            updates = await self._until_done(
                partial(self.bot.get_updates, offset=offset, timeout=POLL_TIMEOUT, allowed_updates=UPDATE_TYPES)
            )
            if not updates:
                continue
            self.receive([update.to_dict() for update in updates])
            offset = updates[-1].update_id + 1  # confirmed with the next call, after the updates are stored

    def receive(self, updates: list[dict[str, Any]]) -> None:
        """Store raw updates durably; duplicates are ignored by their update id."""
        rows = [
            (str(u["update_id"]), _chat_of(u), json.dumps(u, ensure_ascii=False)) for u in updates if "update_id" in u
        ]
        self.store.receive(CHANNEL, rows)
        self.delivery.notify()

    async def _start_webhook(self) -> None:
        app = web.Application(client_max_size=1 << 20)
        app.router.add_post("/telegram", self._on_webhook)
        self._webhook = web.AppRunner(app, access_log=None)
        await self._webhook.setup()
        await web.TCPSite(self._webhook, "0.0.0.0", self.settings.telegram_webhook_port).start()
        await self._until_done(
            lambda: self.bot.set_webhook(
                self.settings.telegram_webhook_url,
                secret_token=self.settings.telegram_webhook_secret or None,
                allowed_updates=UPDATE_TYPES,
            )
        )

    async def _on_webhook(self, request: web.Request) -> web.Response:
        secret = self.settings.telegram_webhook_secret
        if not secret or request.headers.get("X-Telegram-Bot-Api-Secret-Token") != secret:
            return web.Response(status=403)
        try:
            update = await request.json()
        except ValueError:
            return web.Response(status=400)
        if not isinstance(update, dict) or "update_id" not in update:
            return web.Response(status=400)
        self.receive([update])
        return web.Response(status=200)

    # -- handling -----------------------------------------------------------------------------------

    async def answer(self, update_id: str, chat_id: str, payload: str) -> list[dict[str, Any]]:
        """The Telegram messages that answer one stored update."""
        update: Update | None = None
        try:
            update = Update.de_json(json.loads(payload), self.bot)
            if update is not None and chat_id == self.staff_room:
                return await self._staff_message(update)
            incoming = to_incoming(update, self.username) if update else None
        except (ValueError, TypeError, KeyError):
            log.warning("telegram update %s could not be read; skipped", update_id)
            incoming = None
        replies: list[Reply] = []
        person = ""
        if incoming is not None and update is not None:
            person = self.store.pseudonym(CHANNEL, incoming.user_id)
            self.store.reachable_again(person)
            if update.callback_query is not None:
                await self._answer_callback(update.callback_query.id)
            incoming = replace(incoming, message_id=update_id)
            message = update.message or update.edited_message
            if message is not None and message.date is not None:
                incoming = replace(incoming, sent_at=message.date.timestamp(), attachment=attachment_of(message))
            replies = await self.dispatcher.handle(incoming)
        return [{**m, "person": person} for r in replies for m in self.render(r, chat_id)]

    def render(self, reply: Reply, chat_id: str) -> list[dict[str, Any]]:
        return [{**m, "group": _is_group(chat_id)} for m in render_messages(reply)]

    def render_staff(self, post: StaffPost) -> dict[str, Any]:
        """A post in a ticket's forum topic; staff who speak the person's language are mentioned by id."""
        html = to_html(split_text(post.text, MESSAGE_LIMIT)[0], "de")
        mentioned = [m for m in post.mentions if m.telegram_id]
        if mentioned:
            html += "\n" + " ".join(f'<a href="tg://user?id={m.telegram_id}">{escape(m.name)}</a>' for m in mentioned)
        return {
            "html": html,
            "group": True,
            "ticket": post.ticket,
            "root": post.root,
            "topic": post.text.split("\n")[0][:120],
            "file": post.attachment,
        }

    async def _staff_message(self, update: Update) -> list[dict[str, Any]]:
        """Something written in the staff group: for the staff desk, never for the matcher."""
        message = update.message
        if self.desk is None or message is None or message.from_user is None or message.from_user.is_bot:
            return []
        text = message.text or message.caption or ""
        if text.startswith("/"):  # Telegram users are used to /commands; the desk speaks !commands
            word, _sep, rest = text[1:].partition(" ")
            text = "!" + word.split("@")[0] + (" " + rest if rest else "")
        staff_message = StaffMessage(
            CHANNEL,
            str(message.from_user.id),
            text,
            str(update.update_id),
            str(message.message_thread_id) if message.is_topic_message and message.message_thread_id else None,
            is_file=message.text is None,
            attachment=attachment_of(message),
        )
        posts = await self.desk.handle(staff_message, self._in_staff_group)
        return [self.render_staff(post) for post in posts]

    async def _in_staff_group(self, user_id: str) -> bool:
        """Membership as Telegram knows it now, by numeric id; never by username."""
        assert self.staff_room is not None
        try:
            member = await self.bot.get_chat_member(self.staff_room, int(user_id))
        except TelegramError:
            log.warning("could not read a staff group member; the staff command is refused")
            return False
        if member.status in (ChatMemberStatus.OWNER, ChatMemberStatus.ADMINISTRATOR, ChatMemberStatus.MEMBER):
            return True
        return member.status == ChatMemberStatus.RESTRICTED and bool(getattr(member, "is_member", False))

    async def fetch(self, attachment: dict[str, str]) -> tuple[bytes, str, str]:
        """The bytes of a file a person sent here (Telegram lets bots fetch files up to 20 MB)."""
        file = await self.bot.get_file(attachment["file_id"])
        return bytes(await file.download_as_bytearray()), attachment["name"], attachment["mime"]

    async def _answer_callback(self, query_id: str) -> None:
        # only stops the button's spinner; the answer itself goes through the outbox
        with contextlib.suppress(TelegramError):
            await self.bot.answer_callback_query(query_id)

    # -- sending ------------------------------------------------------------------------------------

    async def _send(self, chat_id: str, _source: str, _part: int, message: dict[str, Any]) -> bool:
        """Send one queued message (and the file it passes on); False if the chat can no longer be reached."""
        markup = None
        if message.get("buttons"):
            markup = InlineKeyboardMarkup(
                [[InlineKeyboardButton(label, callback_data=data) for label, data in row] for row in message["buttons"]]
            )
        thread = await self._staff_thread(chat_id, message) if message.get("ticket") else None
        if message.get("ticket") and thread is None and not message.get("root"):
            message = {**message, "html": f"#{message['ticket']} {message['html']}"}  # the ticket is gone
        sent = await self._attempt(
            chat_id,
            message,
            lambda: self.bot.send_message(
                chat_id,
                message["html"],
                parse_mode=ParseMode.HTML,
                reply_markup=markup,
                disable_web_page_preview=True,
                message_thread_id=thread,
            ),
        )
        if sent and message.get("file"):
            await self._attempt(chat_id, message, lambda: self._send_file(chat_id, message["file"], thread))
        if not sent and message.get("relay_ticket") and self.desk is not None:
            self.desk.handoffs.person_unreachable(message["relay_ticket"])
        return sent

    async def _staff_thread(self, chat_id: str, message: dict[str, Any]) -> int | None:
        """The forum topic of a ticket in the staff group; its first post creates it."""
        known = self.store.thread_of(message["ticket"], CHANNEL)
        if known is not None or not message.get("root"):
            return int(known) if known else None
        created: list[int] = []

        async def create() -> None:
            topic = await self.bot.create_forum_topic(chat_id, message["topic"])
            created.append(topic.message_thread_id)

        if not await self._attempt(chat_id, message, create) or not created:
            return None  # not a forum: the ticket is posted into the group itself
        self.store.set_thread(message["ticket"], CHANNEL, str(created[0]))
        return created[0]

    async def _send_file(self, chat_id: str, attachment: dict[str, str], thread: int | None) -> None:
        assert self.outlets is not None
        try:
            data, name, _mime = await self.outlets.fetch(attachment)
        except Exception as error:  # the file's source is unreachable or refuses: say so rather than stall
            log.warning("a file could not be fetched to pass on (%s)", type(error).__name__)
            text = "ℹ️ " + self.dispatcher.catalogs.gettext(self.dispatcher.settings.staff_language, FILE_LOST)
            await self.bot.send_message(chat_id, text, message_thread_id=thread)
            return
        await self.bot.send_document(chat_id, InputFile(data, filename=name), message_thread_id=thread)

    async def _attempt(self, chat_id: str, message: dict[str, Any], call: Callable[[], Awaitable[Any]]) -> bool:
        """Make one call until Telegram accepts it; False if the chat can no longer be reached."""
        delay = 1.0
        while True:
            await self.pace.wait(chat_id, bool(message.get("group")))
            try:
                async with self._in_flight:
                    await call()
                return True
            except RetryAfter as error:
                await asyncio.sleep(_retry_seconds(error))
            except Forbidden:
                log.info("a telegram chat blocked the bot; its queued replies are dropped")
                if message.get("person"):
                    self.store.mark_unreachable(message["person"])
                return False
            except BadRequest as error:
                log.error("telegram refused a message (%s); it is skipped", error.message[:80])
                return True
            except (NetworkError, TimeoutError) as error:
                log.warning("sending failed (%s); retrying in %.0f s", type(error).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF)


def _chat_of(update: dict[str, Any]) -> str:
    for key in ("message", "edited_message"):
        if key in update:
            return str(update[key].get("chat", {}).get("id", ""))
    query = update.get("callback_query")
    if query:
        message = query.get("message") or {}
        return str(message.get("chat", {}).get("id") or query.get("from", {}).get("id", ""))
    return ""


def _is_group(chat_id: str) -> bool:
    return chat_id.startswith("-")
