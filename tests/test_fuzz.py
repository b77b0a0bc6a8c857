"""Generated input thrown at the dispatcher and at `ask`: nothing escapes, everything gets an answer."""

from __future__ import annotations

import asyncio
import io
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot import ask
from bot.dispatcher import Dispatcher
from bot.messages import Incoming, Kind

TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=())
    | st.sampled_from(list("\u202e\u2066\u200b\x00\ufeffاءکی")),
    max_size=300,
) | st.sampled_from(["", " ", "/", "!", "👍", "x" * 5000, "@room", "<b>", "Kita", "112"])


@settings(max_examples=10_000, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(
    text=TEXT,
    kind=st.sampled_from(list(Kind)),
    hint=st.sampled_from([None, "de", "ar", "xx", ""]),
    user=st.integers(0, 50),
)
def test_dispatcher_answers_everything(
    dispatcher: Dispatcher, text: str, kind: Kind, hint: str | None, user: int
) -> None:
    replies = asyncio.run(dispatcher.handle(Incoming("fuzz", str(user), str(user), text, kind, language_hint=hint)))
    assert kind is Kind.FEEDBACK or replies
    for reply in replies:
        assert isinstance(reply.text, str) and reply.text
        assert reply.language in dispatcher.settings.languages


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(
    lines=st.lists(
        st.binary(max_size=200) | TEXT.map(lambda t: json.dumps({"text": t}).encode()), min_size=100, max_size=110
    )
)
def test_ask_answers_every_line(dispatcher: Dispatcher, lines: list[bytes]) -> None:
    source = io.BytesIO(b"\n".join(line.replace(b"\n", b" ") for line in lines) + b"\n")
    out = io.StringIO()
    count = asyncio.run(ask.run(dispatcher, source, out))
    results = [json.loads(line) for line in out.getvalue().splitlines()]
    assert count == len(lines) == len(results)
    assert all({"topic", "lang", "confidence", "answer", "alternatives", "handoff"} <= r.keys() for r in results)
