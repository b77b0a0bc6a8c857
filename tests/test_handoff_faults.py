"""Hand-off relays under faults: 1,000 messages both ways while everything fails now and then.

Ten Telegram people each exchange 50 messages with staff in the Matrix staff room (500 each way).
Meanwhile the Telegram emulator fails one request in ten at random (502, dropped connection, 429),
Synapse is restarted twice, and the bot, a separate process, is stopped twice (SIGTERM) and killed
three times (SIGKILL).

Every message must arrive, in order, and exactly once, with one exception that no bot can avoid:
the Telegram Bot API has no idempotency key, so a message that Telegram accepted in the instant
before a SIGKILL, before the bot could note it as sent, is sent again after the restart. So towards
Telegram, a repeat is allowed only as the immediate repeat of one message per chat per SIGKILL, and
the test reports how many there were. Towards Matrix (transaction ids) nothing may repeat at all.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from nio import RoomMessage, RoomMessagesResponse

from tests.matrix_people import Person
from tests.synapse_server import Synapse
from tests.telegram_emulator import Emulator
from tests.test_handoff_e2e import ALWAYS_OPEN, login, new_user, plain, staff_file, ticket_root

PROJECT = Path(__file__).parent.parent
PEOPLE = [700 + n for n in range(10)]
ROUNDS = 50
KILLS = 3


async def staff_writes(staff: Person, room: str, root: str, text: str) -> None:
    """Send in a thread until the homeserver takes it; one transaction id, so a retry is never a second message."""
    content = {
        "msgtype": "m.text",
        "body": text,
        "m.relates_to": {"rel_type": "m.thread", "event_id": root},
    }
    tx_id = uuid.uuid4().hex
    while True:
        try:
            response = await staff.client.room_send(room, "m.room.message", content, tx_id=tx_id)
            if getattr(response, "event_id", None):
                return
        except Exception:
            pass
        await asyncio.sleep(0.5)


async def history(someone: Person, room: str) -> list[Any]:
    """Every message in a room as the homeserver holds it, oldest first.

    A client's sync after an outage may skip events (a "limited" timeline), so what arrived is
    counted from the server's history, not from what the staff client happened to sync."""
    events: list[Any] = []
    token = someone.client.next_batch
    while token:
        page = await someone.client.room_messages(room, start=token, limit=500)
        if not isinstance(page, RoomMessagesResponse) or not page.chunk:
            break
        events += [event for event in page.chunk if isinstance(event, RoomMessage)]
        token = page.end
    return list(reversed(events))


async def test_a_thousand_relays_survive_faults_and_restarts(
    synapse: Synapse, emulator: Emulator, tmp_path: Path
) -> None:
    bot = new_user(synapse, "faultbot")
    staff = await login(synapse, "faultstaff", tmp_path)
    room = await staff.create_room(invite=[bot])
    env = {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": emulator.token,
        "TELEGRAM_API_URL": emulator.url,
        "TELEGRAM_MAX_PER_SECOND": "1000",
        "MATRIX_HOMESERVER": synapse.url,
        "MATRIX_USER_ID": bot,
        "MATRIX_PASSWORD": "password",
        "MATRIX_STORE_DIR": str(tmp_path / "matrix"),
        "STAFF_MATRIX_ROOM": room,
        "STAFF_CONFIG": str(staff_file(tmp_path, staff.client.user_id, ALWAYS_OPEN)),
        "WELCOMEBOT_DB": str(tmp_path / "bot.db"),
        "WELCOMEBOT_PSEUDONYM_KEY": "k",
        "RATE_LIMIT_PER_MINUTE": "10000",  # this test is about faults, not about the flood limit
        "RATE_LIMIT_BURST": "10000",
        "LOG_LEVEL": "INFO",
    }
    log = tmp_path / "bot.log"

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "bot", "run"], env=env, cwd=PROJECT, stdout=subprocess.DEVNULL, stderr=log.open("ab")
        )

    process = start()
    loop = asyncio.get_running_loop()
    began = time.monotonic()
    try:
        for person in PEOPLE:
            emulator.message(person, "/human", language="de")
        roots = {}
        for number, person in enumerate(PEOPLE, start=1):
            try:
                await staff.wait_until(lambda n=number: ticket_root(staff, room, n) is not None, timeout=120)
            except AssertionError as error:
                raise AssertionError(log.read_text()[-3000:]) from error
            roots[person] = ticket_root(staff, room, number).event_id
        emulator.fault_rate = 0.1

        async def people_write() -> None:
            for round_ in range(ROUNDS):
                for person in PEOPLE:
                    emulator.message(person, f"p{person}-{round_}", language="de")
                await asyncio.sleep(0.5)  # spread over the whole time the faults happen

        async def staff_write() -> None:
            for round_ in range(ROUNDS):
                for person in PEOPLE:
                    await staff_writes(staff, room, roots[person], f"s{person}-{round_}")
                await asyncio.sleep(0.3)

        async def chaos() -> None:
            nonlocal process
            for step in ("kill", "synapse", "stop", "kill", "synapse", "stop", "kill"):
                await asyncio.sleep(random.uniform(2.5, 5))
                if step in ("kill", "stop"):
                    process.send_signal(signal.SIGKILL if step == "kill" else signal.SIGTERM)
                    await loop.run_in_executor(None, process.wait)
                    await asyncio.sleep(1)
                    process = start()
                else:
                    await loop.run_in_executor(None, synapse.restart)

        await asyncio.gather(people_write(), staff_write(), chaos())

        async def to_staff() -> dict[int, list[int]]:
            found: dict[int, list[int]] = {p: [] for p in PEOPLE}
            for event in await history(staff, room):
                match = re.search(r"\bp(\d+)-(\d+)\b", event.source["content"].get("body", ""))
                relation = event.source["content"].get("m.relates_to") or {}
                if match and event.sender == bot:
                    person = int(match.group(1))
                    assert relation.get("event_id") == roots[person], "relayed outside its ticket's thread"
                    found[person].append(int(match.group(2)))
            return found

        def to_people() -> dict[int, list[int]]:
            found: dict[int, list[int]] = {p: [] for p in PEOPLE}
            for person in PEOPLE:
                for sent in emulator.sent(person):
                    match = re.search(rf"\bs{person}-(\d+)\b", plain(sent.text))
                    if match:
                        found[person].append(int(match.group(1)))
            return found

        deadline = time.monotonic() + 600
        while True:
            staff_got, people_got = await to_staff(), to_people()
            if all(len(v) >= ROUNDS for v in [*staff_got.values(), *people_got.values()]):
                break
            if time.monotonic() > deadline:
                got = sum(map(len, staff_got.values())), sum(map(len, people_got.values()))
                raise AssertionError(f"relayed to staff, to people: {got}\n{log.read_text()[-3000:]}")
            await asyncio.sleep(2)
        await asyncio.sleep(3)  # anything sent twice would arrive now
        expected = list(range(ROUNDS))
        staff_got = await to_staff()
        wrong = {p: v for p, v in staff_got.items() if v != expected}
        assert not wrong, f"to staff, not exactly once in order: {wrong}"
        repeats = 0
        for person, received in to_people().items():
            collapsed = [n for i, n in enumerate(received) if i == 0 or n != received[i - 1]]
            assert collapsed == expected, f"to {person}: lost or out of order: {received}"
            assert len(received) - len(collapsed) <= KILLS, f"to {person}: repeated beyond the SIGKILLs: {received}"
            repeats += len(received) - len(collapsed)
        seconds = time.monotonic() - began
        print(
            f"\n1,000 relays in {seconds:.0f} s through {KILLS} SIGKILLs and 2 SIGTERMs of the bot, 2 Synapse "
            f"restarts and {emulator.faults_injected} failed Telegram requests: none lost, all in order; "
            f"to Matrix none repeated, to Telegram {repeats} repeated (sent in the instant of a SIGKILL)"
        )
    finally:
        emulator.fault_rate = 0
        process.send_signal(signal.SIGTERM)
        await loop.run_in_executor(None, process.wait)
        await staff.close()
