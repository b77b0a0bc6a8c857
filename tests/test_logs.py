"""Whole conversations on both channels at DEBUG level: the log never shows text, names, numbers or tokens."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.matrix_people import Person
from tests.synapse_server import Synapse
from tests.telegram_emulator import Emulator
from tests.test_handoff_e2e import staff_file, ticket_root

PROJECT = Path(__file__).parent.parent
SECRET_TEXT = "Mein Name ist Zaratustra Quellenberg, Telefon 0176 5550199, ich habe keine Papiere"


async def test_debug_logs_reveal_nothing_personal(synapse: Synapse, tmp_path: Path) -> None:
    emulator = Emulator()
    await emulator.start()
    bot = synapse.register(f"logbot{os.getpid()}")
    someone = Person(synapse.url, synapse.register(f"logperson{os.getpid()}"), tmp_path / "person")
    staff = Person(synapse.url, synapse.register(f"logstaff{os.getpid()}"), tmp_path / "staff")
    await staff.login()
    staff_room = await staff.create_room(invite=[bot])
    log = tmp_path / "bot.log"
    env = {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": emulator.token,
        "TELEGRAM_API_URL": emulator.url,
        "MATRIX_HOMESERVER": synapse.url,
        "MATRIX_USER_ID": bot,
        "MATRIX_PASSWORD": "password",
        "MATRIX_STORE_DIR": str(tmp_path / "matrix"),
        "WELCOMEBOT_DB": str(tmp_path / "bot.db"),
        "WELCOMEBOT_PSEUDONYM_KEY": "k",
        "LOG_LEVEL": "DEBUG",
        "STAFF_MATRIX_ROOM": staff_room,
        "STAFF_CONFIG": str(staff_file(tmp_path, staff.client.user_id)),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "run"], env=env, cwd=PROJECT, stdout=subprocess.DEVNULL, stderr=log.open("wb")
    )
    try:
        await someone.login()
        telegram_user = 987654321
        for text in ("/start", SECRET_TEXT, "Wo bekomme ich Wohngeld?", "I want to kill myself"):
            emulator.message(telegram_user, text, language="de")
        emulator.message(telegram_user, None, contact={"phone_number": "+491765550199", "first_name": "Zaratustra"})
        await emulator.wait_for(lambda: len(emulator.sent(telegram_user)) >= 6, timeout=60)

        room = await someone.open_chat(bot)
        await someone.wait_for_answers(room, 2)
        await someone.say(room, SECRET_TEXT)
        await someone.say(room, "Wo bekomme ich Wohngeld?")
        await someone.wait_for_answers(room, 4)

        # A hand-off (ticket 2: the Telegram emergency above opened ticket 1): words go both ways.
        await someone.say(room, "/human")
        await staff.wait_until(lambda: ticket_root(staff, staff_room, 2) is not None)
        root = ticket_root(staff, staff_room, 2)
        await someone.say(room, SECRET_TEXT + " Rosenweg 7")
        await staff.say_in_thread(staff_room, root.event_id, "Frau Quellenberg, kommen Sie morgen vorbei")
        await someone.wait_until(lambda: any("morgen vorbei" in n.body for n in someone.answers(room)))
        await staff.wait_until(lambda: any("Rosenweg" in e.body for e in staff.messages(staff_room)))
        session = (tmp_path / "matrix" / "session.json").read_text()
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.get_running_loop().run_in_executor(None, process.wait)
        await someone.close()
        await staff.close()
        await emulator.stop()

    logged = log.read_text()
    assert "DEBUG" in logged  # the level really was DEBUG
    forbidden = [
        "Zaratustra",
        "Quellenberg",
        "0176",
        "5550199",
        "keine Papiere",
        "Wohngeld",
        "kill myself",
        "Rosenweg",
        "morgen vorbei",
        staff.client.user_id,
        staff_room,
        emulator.token,
        emulator.token.split(":")[1],
        "syt_",
        str(telegram_user),
        someone.client.user_id,
        bot,
    ]
    access_token = session.split('"access_token": "')[1].split('"')[0]
    forbidden.append(access_token)
    leaks = [word for word in forbidden if word in logged]
    assert not leaks, leaks
