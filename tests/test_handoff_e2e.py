"""Hand-off end to end: a real Synapse staff room, a Telegram person through the emulator, a Matrix person.

Both channels run in one bot, wired exactly as `welcomebot run` wires them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import html
import io
import itertools
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from nio.crypto.attachments import decrypt_attachment

from bot.config import Settings
from bot.handoff import CLOSE_REASONS, FROM_STAFF, PASSED_ON, STAFF_ONLY
from bot.i18n import BERLIN, Catalogs, format_time
from bot.knowledge import KnowledgeBase
from bot.runner import Service
from bot.staff import load_staff_config
from bot.store import Store
from bot.wiring import build_dispatcher
from tests.matrix_people import Person
from tests.synapse_server import Synapse
from tests.telegram_emulator import Emulator
from tests.test_matrix import matrix_settings

ALWAYS_OPEN = "\n".join(
    f"    {day}: '00:00-24:00'"
    for day in ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
)
_names = itertools.count()


def new_user(synapse: Synapse, prefix: str) -> str:
    return synapse.register(f"{prefix}{next(_names)}h{os.getpid()}")


def staff_file(folder: Path, staff_id: str, weekly: str = ALWAYS_OPEN, holidays: str = "[]") -> Path:
    path = folder / "staff.yaml"
    path.write_text(
        f"office_hours:\n  weekly:\n{weekly}\n  holidays: {holidays}\n"
        f"staff:\n  - name: Ayşe\n    languages: [de, tr, en]\n    matrix: '{staff_id}'\n    telegram: 4242\n"
    )
    return path


def plain(text: str) -> str:
    return html.unescape(text).replace("\u2066", "").replace("\u2069", "").replace("\u200f", "")


def says(catalogs: Catalogs, language: str, message: str) -> str:
    """The start of what the bot says (a whole msgid), up to its first placeholder: enough to recognise it."""
    return plain(catalogs.gettext(language, message).split("{")[0][:40])


async def login(synapse: Synapse, prefix: str, folder: Path) -> Person:
    someone = Person(synapse.url, new_user(synapse, prefix), folder / prefix)
    await someone.login()
    return someone


def configure(
    settings: Settings, synapse: Synapse, emulator: Emulator, bot: str, room: str, staff: Path, folder: Path
) -> Settings:
    return replace(
        matrix_settings(settings, synapse, bot, folder),
        telegram_token=emulator.token,
        telegram_api_url=emulator.url,
        telegram_max_per_second=1000,
        staff_matrix_room=room,
        staff_config=str(staff),
    )


async def start(configured: Settings, knowledge: KnowledgeBase) -> Service:
    store = Store(configured.db_path, "test-key")
    service = Service(configured, build_dispatcher(configured, store=store, knowledge=knowledge))
    await service.start()
    return service


async def stop(service: Service) -> None:
    await service.stop()
    service.dispatcher.store.close()


def ticket_root(staff: Person, room: str, number: int) -> Any:
    for event in staff.messages(room):
        content = event.source.get("content", {})
        if f"#{number}" in content.get("body", "") and "m.relates_to" not in content:
            return event
    return None


def thread(staff: Person, room: str, root: Any) -> list[str]:
    """The bodies the bot (the sender of the ticket) posted in a ticket's thread."""
    return [
        event.source["content"]["body"]
        for event in staff.messages(room)
        if event.sender == root.sender
        and (event.source["content"].get("m.relates_to") or {}).get("event_id") == root.event_id
    ]


def texts_to(emulator: Emulator, chat: int) -> list[str]:
    return [plain(sent.text) for sent in emulator.sent(chat)]


async def test_telegram_and_matrix_people_are_served_by_staff_in_the_matrix_room(
    synapse: Synapse, emulator: Emulator, settings: Settings, knowledge: KnowledgeBase, tmp_path: Path
) -> None:
    bot = new_user(synapse, "bot")
    staff = await login(synapse, "ayse", tmp_path)
    outsider = await login(synapse, "outsider", tmp_path)
    matrix_person = await login(synapse, "olena", tmp_path)
    room = await staff.create_room(invite=[bot, outsider.client.user_id])
    await outsider.join(room)
    configured = configure(settings, synapse, emulator, bot, room, staff_file(tmp_path, staff.client.user_id), tmp_path)
    service = await start(configured, knowledge)
    catalogs = service.dispatcher.catalogs
    try:
        # A Telegram person writing Arabic asks for a person.
        emulator.message(501, "كيف أسجل في دورة الاندماج؟", language="ar")
        await emulator.wait_for(lambda: len(emulator.sent(501)) >= 1)
        emulator.message(501, "/human", language="ar")
        passed = says(catalogs, "ar", PASSED_ON)
        await emulator.wait_for(lambda: any(passed in t for t in texts_to(emulator, 501)))
        await staff.wait_until(lambda: ticket_root(staff, room, 1) is not None)
        root = ticket_root(staff, room, 1)
        assert "Arabisch (ar)" in root.body and "Telegram" in root.body
        assert "Integrationskurs" in root.body  # the German title of what the person asked about
        assert "كيف أسجل" in root.body  # the last messages, as written

        # Someone in the staff room who is not listed as staff is refused, and nothing changes.
        await outsider.say_in_thread(room, root.event_id, "!claim")
        await staff.wait_until(lambda: len(thread(staff, room, root)) >= 1)
        assert "ℹ️" in thread(staff, room, root)[0]
        assert service.dispatcher.store.ticket(1).status == "open"  # type: ignore[union-attr]

        await staff.say_in_thread(room, root.event_id, "!claim")
        await emulator.wait_for(lambda: any("Ayşe" in t for t in texts_to(emulator, 501)[2:]))
        await staff.say_in_thread(room, root.event_id, "Guten Tag! Ich bin für Sie da.")
        await emulator.wait_for(lambda: any("Guten Tag! Ich bin für Sie da." in t for t in texts_to(emulator, 501)))
        sender = catalogs.gettext("ar", FROM_STAFF).format(name="Ayşe")
        assert plain(sender) in texts_to(emulator, 501)[-1]

        emulator.message(501, "شكرا جزيلا", language="ar")
        await staff.wait_until(lambda: any("شكرا جزيلا" in b for b in thread(staff, room, root)))
        emulator.message(501, "<b>@room</b> <a href='http://x.example'>hi</a>", language="ar")
        await staff.wait_until(lambda: any("@room" in b for b in thread(staff, room, root)))
        shown = next(e for e in staff.messages(room) if "@room" in e.source["content"]["body"])
        assert "<b>" not in shown.source["content"]["formatted_body"]
        assert "&lt;b&gt;@room&lt;/b&gt;" in shown.source["content"]["formatted_body"]
        assert shown.source["content"]["m.mentions"] == {"user_ids": []}  # nothing in the text notifies anyone

        # A photo the person sends goes into the thread as a file staff can open.
        emulator.files["letter"] = b"\xff\xd8 a photo of a letter from the Auslaenderbehoerde"
        photo = [{"file_id": "letter", "file_unique_id": "l1", "width": 1, "height": 1}]
        emulator.message(501, None, language="ar", photo=photo)
        await staff.wait_until(
            lambda: any(e.source["content"].get("msgtype") == "m.image" for e in staff.messages(room))
        )
        image = next(e for e in staff.messages(room) if e.source["content"].get("msgtype") == "m.image")
        assert image.source["content"]["m.relates_to"]["event_id"] == root.event_id
        downloaded = await staff.client.download(mxc=image.source["content"]["url"])
        assert downloaded.body == emulator.files["letter"]  # type: ignore[union-attr]

        await staff.say_in_thread(room, root.event_id, "!send german.integration_course")
        answer = knowledge.answer("german.integration_course", "ar")
        assert answer is not None
        first_line = plain(answer.text.split("\n")[0])[:20]
        await emulator.wait_for(lambda: any(first_line in t for t in texts_to(emulator, 501)))

        await staff.say_in_thread(room, root.event_id, "!close")
        closed = says(catalogs, "ar", CLOSE_REASONS["staff"][0])
        await emulator.wait_for(lambda: any(closed in t for t in texts_to(emulator, 501)))

        # A Matrix person writing Ukrainian.
        chat = await matrix_person.open_chat(bot)
        await matrix_person.wait_for_answers(chat, 2)
        await matrix_person.say(chat, "Мені потрібна жива людина, будь ласка")
        await staff.wait_until(lambda: ticket_root(staff, room, 2) is not None)
        second = ticket_root(staff, room, 2)
        assert "Ukrainisch (uk)" in second.body and "Matrix" in second.body
        passed_uk = says(catalogs, "uk", PASSED_ON)
        await matrix_person.wait_until(lambda: any(passed_uk in n.body for n in matrix_person.answers(chat)))

        # A person cannot use staff commands.
        await matrix_person.say(chat, "!claim")
        refused = says(catalogs, "uk", STAFF_ONLY)
        await matrix_person.wait_until(lambda: any(refused in n.body for n in matrix_person.answers(chat)))
        assert service.dispatcher.store.ticket(2).status == "open"  # type: ignore[union-attr]

        await staff.say_in_thread(room, second.event_id, "Hallo, wie kann ich helfen?")
        await matrix_person.wait_until(
            lambda: any("Hallo, wie kann ich helfen?" in n.body for n in matrix_person.answers(chat))
        )

        # Staff send a form as a file; the person gets it in their own chat.
        form = b"%PDF-1.4 Antrag auf Wohngeld"
        uploaded, _keys = await staff.client.upload(
            io.BytesIO(form), content_type="application/pdf", filename="antrag.pdf", filesize=len(form)
        )
        file_content = {
            "msgtype": "m.file",
            "body": "antrag.pdf",
            "url": uploaded.content_uri,  # type: ignore[union-attr]
            "info": {"mimetype": "application/pdf", "size": len(form)},
            "m.relates_to": {"rel_type": "m.thread", "event_id": second.event_id},
        }
        await staff.client.room_send(room, "m.room.message", file_content)

        def files() -> list[Any]:
            return [e for e in matrix_person.messages(chat) if e.source["content"].get("msgtype") == "m.file"]

        await matrix_person.wait_until(lambda: bool(files()))
        received = files()[0].source["content"]
        if "file" in received:  # the person's chat is encrypted: the file is too
            downloaded = await matrix_person.client.download(mxc=received["file"]["url"])
            data = decrypt_attachment(
                downloaded.body,
                received["file"]["key"]["k"],  # type: ignore[union-attr]
                received["file"]["hashes"]["sha256"],
                received["file"]["iv"],
            )
        else:
            data = (await matrix_person.client.download(mxc=received["url"])).body  # type: ignore[union-attr]
        assert data == form

        # The bot restarts in the middle of the hand-off; both sides write while it is away.
        await stop(service)
        await matrix_person.say(chat, "Sind Sie noch da?")
        await staff.say_in_thread(room, second.event_id, "Ja, ich bin noch da.")
        service = await start(configured, knowledge)
        await staff.wait_until(lambda: any("Sind Sie noch da?" in b for b in thread(staff, room, second)))
        await matrix_person.wait_until(
            lambda: any("Ja, ich bin noch da." in n.body for n in matrix_person.answers(chat))
        )
        await asyncio.sleep(2)
        assert sum("Sind Sie noch da?" in b for b in thread(staff, room, second)) == 1
        assert sum("Ja, ich bin noch da." in n.body for n in matrix_person.answers(chat)) == 1

        # The person ends it themselves; staff are told.
        await matrix_person.say(chat, "/end")
        await staff.wait_until(lambda: service.dispatcher.store.ticket(2).status == "closed")  # type: ignore[union-attr]
        ended = catalogs.gettext("de", CLOSE_REASONS["person"][1])
        await staff.wait_until(lambda: any(ended in b for b in thread(staff, room, second)))
    finally:
        await stop(service)
        for someone in (staff, outsider, matrix_person):
            await someone.close()


async def test_a_telegram_staff_group_with_forum_topics_outside_office_hours(
    emulator: Emulator, settings: Settings, knowledge: KnowledgeBase, tmp_path: Path
) -> None:
    group = -1001234
    today = dt.datetime.now(BERLIN).date()
    file = staff_file(tmp_path, "@ayse:localhost", weekly="    monday: '09:00-12:00'", holidays=f"['{today}']")
    configured = replace(
        settings,
        db_path=str(tmp_path / "bot.db"),
        telegram_token=emulator.token,
        telegram_api_url=emulator.url,
        telegram_max_per_second=1000,
        staff_telegram_chat_id=str(group),
        staff_config=str(file),
    )
    emulator.members[str(group)] = {"4242", "777"}  # 4242 is Ayşe; 777 is in the group but not staff
    emulator.files["photo-1"] = b"\xff\xd8 a photo of a letter"
    service = await start(configured, knowledge)
    catalogs = service.dispatcher.catalogs
    try:
        emulator.message(601, "/human", language="tr")
        await emulator.wait_for(lambda: len(emulator.called("createForumTopic")) == 1)
        await emulator.wait_for(lambda: len(emulator.sent(601)) >= 1)
        hours = load_staff_config(file, configured.languages).hours
        opening = hours.next_opening(dt.datetime.now(dt.UTC))
        assert opening is not None
        assert format_time(opening, "tr") in plain(emulator.sent(601)[0].text)
        topic = emulator.called("createForumTopic")[0]
        assert str(topic.params["chat_id"]) == str(group)
        await emulator.wait_for(lambda: len(emulator.sent(group)) >= 1)
        first = emulator.sent(group)[0]
        thread_id = first.params["message_thread_id"]
        assert "Türkisch (tr)" in plain(first.text) and "tg://user?id=4242" in first.text

        emulator.message(
            601, None, language="tr", photo=[{"file_id": "photo-1", "file_unique_id": "u1", "width": 1, "height": 1}]
        )
        await emulator.wait_for(lambda: len(emulator.documents) == 1)
        assert emulator.documents[0][2] == emulator.files["photo-1"] and emulator.documents[0][3] == thread_id

        emulator.staff_message(777, group, thread_id, "/claim")
        await emulator.wait_for(lambda: any("ℹ️" in s.text for s in emulator.sent(group)[1:]))
        assert service.dispatcher.store.ticket(1).status == "open"  # type: ignore[union-attr]

        emulator.staff_message(4242, group, thread_id, "Merhaba, size nasıl yardımcı olabilirim?")
        await emulator.wait_for(lambda: any("nasıl yardımcı" in plain(t.text) for t in emulator.sent(601)))
        emulator.staff_message(4242, group, thread_id, "/close")
        closed = says(catalogs, "tr", CLOSE_REASONS["staff"][0])
        await emulator.wait_for(lambda: any(closed in plain(t.text) for t in emulator.sent(601)))

        # A person who blocks the bot during a hand-off: staff are told and the request ends.
        emulator.message(602, "/human", language="tr")
        await emulator.wait_for(lambda: len(emulator.called("createForumTopic")) == 2)
        await emulator.wait_for(lambda: len(emulator.sent(602)) >= 1)
        emulator.blocked.add("602")
        await emulator.wait_for(lambda: any("#2" in plain(s.text) for s in emulator.sent(group)))
        second = next(s for s in emulator.sent(group) if "#2" in plain(s.text)).params["message_thread_id"]
        emulator.staff_message(4242, group, second, "Merhaba?")
        gone = catalogs.gettext("de", CLOSE_REASONS["unreachable"][1])
        await emulator.wait_for(lambda: any(gone in plain(s.text) for s in emulator.sent(group)))
        assert service.dispatcher.store.ticket(2).status == "closed"  # type: ignore[union-attr]
    finally:
        await stop(service)
