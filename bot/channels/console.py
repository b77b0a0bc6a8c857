"""The local console channel: a conversation in the terminal through the same dispatcher."""

from __future__ import annotations

import asyncio
import sys
from typing import TextIO

from bot.dispatcher import Dispatcher
from bot.messages import Choice, Incoming, Kind, Reply
from bot.safety import clean


def parse_line(line: str, choices: list[Choice]) -> Incoming:
    """A typed line: "/command", the number of a shown choice, or a question."""
    text = line.strip()
    if text.isdigit() and 1 <= int(text) <= len(choices):
        return Incoming("console", "console", "console", choices[int(text) - 1].action, Kind.CHOICE)
    if text.startswith("/") and len(text) > 1 and " " not in text:
        return Incoming("console", "console", "console", text[1:], Kind.COMMAND)
    return Incoming("console", "console", "console", text)


def render(reply: Reply, first: int = 1) -> str:
    """Plain text for a terminal, choices numbered from `first`; control characters never reach it."""
    lines = [clean(reply.text, 10**6).text]
    lines += [f"  [{number}] {choice.label}" for number, choice in enumerate(reply.choices, start=first)]
    return "\n".join(lines)


async def chat(
    dispatcher: Dispatcher, source: TextIO = sys.stdin, out: TextIO = sys.stdout, prompt: bool = True
) -> None:
    """Talk to the bot until end of input; type /help, /language or a number to press a button."""
    choices: list[Choice] = []
    loop = asyncio.get_running_loop()
    while True:
        if prompt:
            out.write("> ")
            out.flush()
        line = await loop.run_in_executor(None, source.readline)
        if not line:
            return
        replies = await dispatcher.handle(parse_line(line, choices))
        choices = [c for reply in replies for c in reply.choices]
        first = 1
        for reply in replies:
            out.write(render(reply, first) + "\n\n")
            first += len(reply.choices)
        out.flush()
