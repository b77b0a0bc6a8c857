"""Load test: many people write to the bot on Telegram at once, through the local Bot API emulator.

The bot runs as its own process (`welcomebot run`); the emulator runs here. Latency is measured
inside the emulator from the moment getUpdates hands a message to the bot until the bot's
sendMessage for it arrives, so the emulator's own time is not counted. Each person's replies are
checked to be exactly one per message, in order.

    python -m tests.load_telegram --people 2000 --messages 10 --seconds 60
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.telegram_emulator import Emulator

PROJECT = Path(__file__).parent.parent
QUESTIONS = [
    "Kita",
    "Kindergeld",
    "Wohngeld",
    "Einbürgerung",
    "Integrationskurs",
    "Bankkonto eröffnen",
    "Hausarzt finden",
    "Jobcenter Bürgergeld",
    "Sprachcafé",
    "Anmeldung Wohnung",
]


async def run_load(people: int, messages: int, seconds: float, timeout: float = 600) -> dict[str, Any]:
    emulator = Emulator()
    await emulator.start()
    delivered: dict[int, float] = {}
    emulator.on_updates_delivered = lambda ids: [delivered.setdefault(i, time.monotonic()) for i in ids]  # type: ignore[func-returns-value]
    folder = tempfile.mkdtemp()
    env = {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": emulator.token,
        "TELEGRAM_API_URL": emulator.url,
        "TELEGRAM_MAX_PER_SECOND": "100000",
        "WELCOMEBOT_DB": f"{folder}/load.db",
        "WELCOMEBOT_PSEUDONYM_KEY": "k",
        "LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "run"], env=env, cwd=PROJECT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        await emulator.wait_for(lambda: bool(emulator.called("deleteWebhook")), timeout=60)
        plan = [(person, j) for j in range(messages) for person in range(people)]
        sent_ids: dict[int, list[int]] = {person: [] for person in range(people)}
        started = time.monotonic()
        for number, (person, j) in enumerate(plan):
            due = started + seconds * number / len(plan)
            if (pause := due - time.monotonic()) > 0:
                await asyncio.sleep(pause)
            question = QUESTIONS[(person + j) % len(QUESTIONS)]
            sent_ids[person].append(emulator.message(100_000 + person, question, language="de"))
        await emulator.wait_for(lambda: len(emulator.sent()) >= len(plan), timeout=timeout)
        await asyncio.sleep(1.0)
        total_seconds = time.monotonic() - started
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.get_running_loop().run_in_executor(None, process.wait)
        await emulator.stop()

    latencies: list[float] = []
    exactly_once = in_order = True
    for person, ids in sent_ids.items():
        replies = emulator.sent(100_000 + person)
        if len(replies) != len(ids):
            exactly_once = False
            continue
        answers = [r.text for r in replies]
        expected = [QUESTIONS[(person + j) % len(QUESTIONS)] for j in range(len(ids))]
        # the same question always gets the same answer: compare the order of answers with the order of questions
        seen: dict[str, str] = {}
        for question, answer in zip(expected, answers, strict=True):
            if seen.setdefault(question, answer) != answer:
                in_order = False
        latencies.extend(reply.at - delivered[update_id] for update_id, reply in zip(ids, replies, strict=True))
    latencies.sort()
    return {
        "people": people,
        "messages_per_person": messages,
        "messages": people * messages,
        "replies": len(emulator.sent()),
        "exactly_one_reply_each": exactly_once,
        "in_order_per_person": in_order,
        "latency_ms_p50": round(statistics.median(latencies) * 1000, 1) if latencies else None,
        "latency_ms_p99": round(latencies[int(0.99 * (len(latencies) - 1))] * 1000, 1) if latencies else None,
        "wall_seconds": round(total_seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=2000)
    parser.add_argument("--messages", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run_load(args.people, args.messages, args.seconds)), indent=1))


if __name__ == "__main__":
    main()
