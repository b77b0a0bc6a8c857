"""The `ask` contract: one JSON line out per line in, in order, also for bad lines."""

from __future__ import annotations

import json
import subprocess
import sys

KEYS = {"topic", "lang", "confidence", "answer", "alternatives", "handoff"}


def ask(data: bytes) -> list[dict[str, object]]:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "ask"], input=data, capture_output=True, check=True, timeout=120
    )
    return [json.loads(line) for line in result.stdout.decode("utf-8").splitlines()]


def test_every_line_gets_one_answer_in_order_also_bad_ones() -> None:
    lines = [
        json.dumps({"text": "Wie funktioniert die Anmeldung beim Bürgerbüro?", "lang": "de"}),
        "this is not json",
        json.dumps({"text": ""}),
        json.dumps({"text": "x" * 100_000}),
        json.dumps(["a list"]),
        json.dumps({"lang": "en"}),
        json.dumps({"text": 42}),
        "",
        json.dumps({"text": "\u202e\u200b\x00"}),
        json.dumps({"text": "I want to kill myself"}),
        json.dumps({"text": "can i talk to a real person please"}),
        json.dumps({"text": "who won the football match yesterday"}),
    ]
    data = "\n".join(lines).encode() + b"\n" + b'{"text": "\xff\xfe broken utf8"}\n'
    out = ask(data)
    assert len(out) == len(lines) + 1
    for row in out:
        assert row.keys() >= KEYS
        assert isinstance(row["confidence"], float) and 0 <= row["confidence"] <= 1
    assert out[0]["topic"] == "admin.registration" and out[0]["lang"] == "de" and out[0]["answer"]
    for bad in (1, 4, 5, 6, 7):
        assert out[bad]["error"]
    assert out[2]["error"] and out[2]["answer"]  # empty text gets a polite answer too
    assert out[3]["topic"] is None and out[3]["answer"]  # too long: an explanation, not a crash
    assert out[8]["answer"]
    assert out[9]["topic"] == "safety.emergency" and out[9]["handoff"] is True and "112" in out[9]["answer"]
    assert out[10]["topic"] == "bot.human" and out[10]["handoff"] is True
    assert out[11]["topic"] is None and out[11]["answer"]
    assert "error" not in out[12]


def test_each_line_is_a_new_person() -> None:
    lines = [json.dumps({"text": "Привіт, мені потрібна допомога з житлом"}), json.dumps({"text": "ok"})]
    out = ask(("\n".join(lines) + "\n").encode())
    assert out[0]["lang"] == "uk"
    assert out[1]["lang"] != "uk"  # no memory of the line before


def test_an_oversized_line_is_reported_and_the_next_line_still_answered() -> None:
    huge = b'{"text": "' + b"a" * (2 << 20) + b'"}\n'
    out = ask(huge + json.dumps({"text": "hello"}).encode() + b"\n")
    assert len(out) == 2
    assert "error" in out[0] and out[1]["topic"] == "smalltalk.greeting"
