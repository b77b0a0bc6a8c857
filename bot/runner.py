"""`welcomebot run`: every configured channel in one event loop, or the console when none is."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import Any

from bot.config import Settings
from bot.store import Store
from bot.wiring import build_dispatcher

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
    channels: list[Any] = []
    if settings.telegram_enabled:
        from bot.channels.telegram import TelegramChannel

        channels.append(TelegramChannel(settings, dispatcher, dispatcher.store))
    if settings.matrix_enabled:
        from bot.channels.matrix import MatrixChannel

        channels.append(MatrixChannel(settings, dispatcher, dispatcher.store))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    for channel in channels:
        await channel.start()
    log.info("running %d channel(s); stop with Ctrl-C", len(channels))
    purge = asyncio.create_task(_purge_daily(dispatcher.store, settings))
    await stop.wait()
    purge.cancel()
    for channel in channels:
        await channel.stop()
    return 0


async def _purge_daily(store: Store, settings: Settings) -> None:
    """Retention is enforced by the running bot too, not only by `welcomebot purge`."""
    while True:
        removed = store.purge(settings.retention_people_days)
        if removed:
            log.info("retention: removed %d inactive people", removed)
        await asyncio.sleep(3600)
