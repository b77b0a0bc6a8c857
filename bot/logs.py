"""Logging that never reveals tokens, secrets or what people wrote.

Message text is never passed to a logger in this project; as a second line of defence every
handler redacts bot tokens (Telegram `<digits>:<secret>`, Matrix `syt_…`) and the HTTP client
libraries, which log request URLs containing the Telegram token, are kept at WARNING.
"""

from __future__ import annotations

import logging
import re

from bot.config import Settings

SECRET_PATTERNS = (
    re.compile(r"\b\d{5,}:[A-Za-z0-9_-]{20,}"),  # Telegram bot token
    re.compile(r"\bsyt_[A-Za-z0-9_]+"),  # Synapse access token
    re.compile(r"(access_token=|Bearer\s+)[^\s&\"']+"),
)
QUIET_LOGGERS = ("httpx", "httpcore", "telegram", "nio", "aiohttp", "peewee", "hpack")


def redact(text: str) -> str:
    for pattern in SECRET_PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + "[redacted]", text)
    return text


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def setup_logging(settings: Settings) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
