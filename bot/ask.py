"""`welcomebot ask`: one JSON question per line in, one JSON answer per line out, every line answered.

This is how evaluations drive the bot, so the output format is a stable contract:
{"topic", "lang", "confidence", "answer", "alternatives", "handoff"} and "error" for a bad line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, BinaryIO, TextIO

from bot.dispatcher import Dispatcher
from bot.messages import Incoming

MAX_LINE_BYTES = 1 << 20


def read_lines(source: BinaryIO, limit: int = MAX_LINE_BYTES) -> Iterator[tuple[str | None, str | None]]:
    """Yield (line, error) pairs; a line longer than `limit` bytes is skipped whole and reported."""
    while True:
        chunk = source.readline(limit)
        if not chunk:
            return
        if not chunk.endswith(b"\n") and len(chunk) >= limit:
            while chunk and not chunk.endswith(b"\n"):
                chunk = source.readline(limit)
            yield None, f"line longer than {limit} bytes"
            continue
        yield chunk.decode("utf-8", "replace").rstrip("\r\n"), None


def _result(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "topic": None,
        "lang": None,
        "confidence": 0.0,
        "answer": "",
        "alternatives": [],
        "handoff": False,
    }
    return {**base, **fields}


async def answer_line(dispatcher: Dispatcher, line: str, number: int) -> dict[str, Any]:
    """Answer one line as a new, independent person."""
    try:
        request = json.loads(line)
    except (json.JSONDecodeError, RecursionError):
        return _result(error="line is not valid JSON")
    if not isinstance(request, dict):
        return _result(error="line must be a JSON object")
    text, hint = request.get("text"), request.get("lang")
    if not isinstance(text, str):
        return _result(error='"text" must be a string')
    if hint is not None and not isinstance(hint, str):
        return _result(error='"lang" must be a string')
    incoming = Incoming("ask", f"ask-{number}", f"ask-{number}", text, language_hint=hint)
    replies = await dispatcher.handle(incoming)
    first = replies[0]
    result = _result(
        topic=first.topic,
        lang=first.language,
        confidence=round(first.confidence, 3),
        answer="\n\n".join(r.text for r in replies),
        alternatives=list(first.alternatives),
        handoff=any(r.handoff for r in replies),
    )
    if not text.strip():
        result["error"] = "empty text"
    return result


async def run(dispatcher: Dispatcher, source: BinaryIO, out: TextIO) -> int:
    count = 0
    for count, (line, error) in enumerate(read_lines(source), start=1):
        result = _result(error=error) if line is None else await answer_line(dispatcher, line, count)
        out.write(json.dumps(result, ensure_ascii=False) + "\n")
        out.flush()
    return count
