"""`welcomebot run`: every configured channel in one event loop, or the console when none is."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import Any

from bot.config import Settings
from bot.dispatcher import Dispatcher
from bot.handoff import Handoffs
from bot.outlets import Outlets
from bot.store import Store
from bot.wiring import build_dispatcher, build_handoffs

log = logging.getLogger(__name__)

HOW_TO_CONFIGURE = """No chat platform is configured, so the bot runs here in the console.
To serve Telegram, set TELEGRAM_BOT_TOKEN in .env (see README.md, "Telegram").
To serve Matrix, set MATRIX_HOMESERVER, MATRIX_USER_ID and MATRIX_PASSWORD (see README.md, "Matrix").
Type a question, /help, /language, or the number of a choice. End with Ctrl-D.
"""


async def run(settings: Settings) -> int:
    dispatcher = build_dispatcher(settings)
    if not (settings.telegram_enabled or settings.matrix_enabled):
        from bot.channels.console import chat

        print(HOW_TO_CONFIGURE, file=sys.stderr)
        await chat(dispatcher)
        return 0
    service = Service(settings, dispatcher)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await service.start()
    log.info("running %d channel(s); stop with Ctrl-C", len(service.channels))
    await stop.wait()
    await service.stop()
    return 0


class Service:
    """Every configured channel, wired to one dispatcher and to the staff rooms; started and stopped together."""

    def __init__(self, settings: Settings, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self.settings = settings
        self.channels: list[Any] = []
        if settings.matrix_enabled:  # first: it joins the staff room the others post into
            from bot.channels.matrix import MatrixChannel

            self.channels.append(MatrixChannel(settings, dispatcher, dispatcher.store))
        if settings.telegram_enabled:
            from bot.channels.telegram import TelegramChannel

            self.channels.append(TelegramChannel(settings, dispatcher, dispatcher.store))
        outlets = Outlets(dispatcher.store)
        for channel in self.channels:
            outlets.register(channel.name, channel)
        desk = build_handoffs(settings, dispatcher, outlets)  # validates the staff file before anything starts
        for channel in self.channels:
            channel.desk, channel.outlets = desk, outlets
        self._chores: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        for channel in self.channels:
            await channel.start()
        self._chores.append(asyncio.create_task(_purge_hourly(self.dispatcher.store, self.settings)))
        if self.dispatcher.handoffs is not None:
            self._chores.append(asyncio.create_task(_close_inactive(self.dispatcher.handoffs)))

    async def stop(self) -> None:
        for chore in self._chores:
            chore.cancel()
        await asyncio.gather(*self._chores, return_exceptions=True)
        for channel in self.channels:
            await channel.stop()


async def _purge_hourly(store: Store, settings: Settings) -> None:
    """Retention is enforced by the running bot too, not only by `welcomebot purge`."""
    while True:
        removed = store.purge(settings.retention_people_days, settings.retention_handoff_days)
        if removed:
            log.info("retention: removed %d inactive people and old transcripts", removed)
        await asyncio.sleep(3600)


async def _close_inactive(handoffs: Handoffs) -> None:
    while True:
        closed = handoffs.expire()
        if closed:
            log.info("closed %d hand-offs without activity", closed)
        await asyncio.sleep(60)
