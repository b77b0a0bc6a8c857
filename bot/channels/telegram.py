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
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any

from aiohttp import web
from telegram import Bot, BotCommand, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ChatType, ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError
from telegram.request import HTTPXRequest

from bot.config import Settings
from bot.delivery import Delivery
from bot.dispatcher import COMMAND_DESCRIPTIONS, Dispatcher
from bot.messages import Choice, Incoming, Kind, Reply
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
            return Incoming(CHANNEL, chat, user, "", kind, hint)
    return Incoming(CHANNEL, chat, user, "", Kind.OTHER, hint)


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

    def __init__(self, settings: Settings, dispatcher: Dispatcher, store: Store) -> None:
        self.settings = settings
        self.dispatcher = dispatcher
        self.store = store
        base = (settings.telegram_api_url.rstrip("/") or "https://api.telegram.org") + "/bot"
        self.bot = Bot(
            settings.telegram_token,
            base_url=base,
            request=HTTPXRequest(connection_pool_size=SENDS_IN_FLIGHT, read_timeout=20, connect_timeout=10),
            get_updates_request=HTTPXRequest(connection_pool_size=2, read_timeout=POLL_TIMEOUT + 10),
        )
        self.pace = _Pace(settings.telegram_max_per_second)
        self._in_flight = asyncio.Semaphore(SENDS_IN_FLIGHT)
        self.delivery = Delivery(store, CHANNEL, self.answer, self._send)
        self._tasks: list[asyncio.Task[None]] = []
        self._webhook: web.AppRunner | None = None
        self.username = ""

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
            message = update.message or update.edited_message
            if message is not None and message.date is not None:
                incoming = replace(incoming, sent_at=message.date.timestamp())
            replies = await self.dispatcher.handle(incoming)
        return [{**m, "group": _is_group(chat_id), "person": person} for r in replies for m in render_messages(r)]

    async def _answer_callback(self, query_id: str) -> None:
        # only stops the button's spinner; the answer itself goes through the outbox
        with contextlib.suppress(TelegramError):
            await self.bot.answer_callback_query(query_id)

    # -- sending ------------------------------------------------------------------------------------

    async def _send(self, chat_id: str, _source: str, _part: int, message: dict[str, Any]) -> bool:
        """Send one message until it is delivered; False if the chat can no longer be reached."""
        markup = None
        if message.get("buttons"):
            markup = InlineKeyboardMarkup(
                [[InlineKeyboardButton(label, callback_data=data) for label, data in row] for row in message["buttons"]]
            )
        delay = 1.0
        while True:
            await self.pace.wait(chat_id, bool(message.get("group")))
            try:
                async with self._in_flight:
                    await self.bot.send_message(
                        chat_id,
                        message["html"],
                        parse_mode=ParseMode.HTML,
                        reply_markup=markup,
                        disable_web_page_preview=True,
                    )
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
