"""Turning plain reply text into what chat clients show: escaped HTML, clickable links, parts that fit.

Written once for every channel: Telegram and Matrix both take this HTML.
"""

from __future__ import annotations

import html
import re

from bot.i18n import isolate_ltr

_URL = re.compile(r"https?://[^\s<>\"\u2066-\u2069]+[^\s<>\"\u2066-\u2069.,;:!?)\]]")


def to_html(text: str, language: str) -> str:
    """Escape everything, make links clickable, keep right-to-left text in order."""
    text = isolate_ltr(text, language)
    out: list[str] = []
    position = 0
    for match in _URL.finditer(text):
        out.append(html.escape(text[position : match.start()], quote=False))
        url = html.escape(match.group(0), quote=True)
        out.append(f'<a href="{url}">{url}</a>')
        position = match.end()
    out.append(html.escape(text[position:], quote=False))
    return "".join(out)


def split_text(text: str, limit: int) -> list[str]:
    """Cut text into parts of at most `limit` characters, at paragraph, then line, then word boundaries."""
    parts: list[str] = []
    current = ""
    for paragraph in text.split("\n\n"):
        candidate = f"{current}\n\n{paragraph}" if current else paragraph
        if len(candidate) <= limit:
            current = candidate
            continue
        if current:
            parts.append(current)
        chunks = [paragraph] if len(paragraph) <= limit else _split_long(paragraph, limit)
        parts.extend(chunks[:-1])
        current = chunks[-1]
    parts.append(current)
    return parts


def _split_long(piece: str, limit: int) -> list[str]:
    chunks: list[str] = []
    current = ""
    for word in re.split(r"(?<=\n)|(?<= )", piece):
        while len(word) > limit:  # one "word" longer than a message: cut it hard
            if current:
                chunks.append(current)
                current = ""
            chunks.append(word[:limit])
            word = word[limit:]
        if len(current) + len(word) > limit:
            chunks.append(current)
            current = ""
        current += word
    if current or not chunks:
        chunks.append(current)
    return [c.strip() or c for c in chunks]
