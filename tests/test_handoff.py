"""Hand-off logic through the dispatcher, the staff desk and the real SQLite store.

The channels here are a plain recording outlet (what the console would render); the same flows
run against the real Synapse and the Telegram emulator in test_handoff_e2e.py.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from bot.config import ALL_LANGUAGES, Settings
from bot.desk import StaffDesk
from bot.dispatcher import Dispatcher
from bot.handoff import CLOSE_REASONS, FROM_STAFF, PASSED_ON, STAFF_ONLY
from bot.i18n import BERLIN, format_time
from bot.knowledge import KnowledgeBase
from bot.messages import Incoming, Kind, Reply, StaffMessage, StaffPost
from bot.outlets import Outlets
from bot.staff import StaffConfigError, load_staff_config
from bot.store import Store
from bot.wiring import build_dispatcher, build_handoffs

PROJECT = Path(__file__).parent.parent
STAFF_ID = "@ayse:example.org"
# A Wednesday at 10:00 in Stuttgart: the example office is open.
OPEN = dt.datetime(2026, 11, 25, 10, 0, tzinfo=BERLIN).timestamp()
# A Saturday at 11:00: closed until Monday 09:00.
CLOSED = dt.datetime(2026, 11, 28, 11, 0, tzinfo=BERLIN).timestamp()


class RecordingChannel:
    """A channel that renders replies and staff posts as plain JSON, like the console would."""

    name = "console"

    def __init__(self, staff_room: str | None = None) -> None:
        self.staff_room = staff_room

    def render(self, reply: Reply, chat_id: str) -> list[dict[str, Any]]:
        return [{"text": reply.text, "choices": [c.action for c in reply.choices]}]

    def render_staff(self, post: StaffPost) -> dict[str, Any]:
        mentions = [m.matrix_id for m in post.mentions if m.matrix_id]
        return {"text": post.text, "ticket": post.ticket, "root": post.root, "mentions": mentions}

    def kick(self, chat_id: str) -> None:
        pass

    async def fetch(self, attachment: dict[str, str]) -> tuple[bytes, str, str]:
        return b"", attachment["name"], attachment["mime"]


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(OPEN)


@dataclass
class World:
    desk: StaffDesk
    dispatcher: Dispatcher
    store: Store


@pytest.fixture
def world(settings: Settings, knowledge: KnowledgeBase, clock: Clock, tmp_path: Path) -> World:
    staff_file = tmp_path / "staff.yaml"
    staff_file.write_text((PROJECT / "staff.example.yaml").read_text().replace("@ayse:welcome.example.org", STAFF_ID))
    configured = replace(
        settings, db_path=str(tmp_path / "bot.db"), staff_matrix_room="!staff:example.org", staff_config=str(staff_file)
    )
    store = Store(configured.db_path, "test-key", clock=clock)
    dispatcher = build_dispatcher(configured, store=store, knowledge=knowledge)
    outlets = Outlets(store)
    outlets.register("console", RecordingChannel())
    outlets.register("matrix", RecordingChannel(staff_room="!staff:example.org"))
    desk = build_handoffs(
        replace(configured, matrix_homeserver="x", matrix_user_id="@bot:x", matrix_password="x"), dispatcher, outlets
    )
    assert desk is not None
    return World(desk, dispatcher, store)


def person_says(
    dispatcher: Dispatcher, text: str, message_id: str, kind: Kind = Kind.TEXT, **extra: Any
) -> list[Reply]:
    incoming = Incoming("console", "chat-1", "user-1", text, kind, language_hint="de", message_id=message_id, **extra)
    return asyncio.run(dispatcher.handle(incoming))


def to_person(store: Store) -> list[str]:
    return [json.loads(row[4])["text"] for row in store.outbox("console")]


def to_staff(store: Store) -> list[dict[str, Any]]:
    return [json.loads(row[4]) for row in store.outbox("matrix")]


async def yes(_user: str) -> bool:
    return True


async def no(_user: str) -> bool:
    return False


def staff_says(
    desk: StaffDesk, text: str, event: str, thread: str | None = "$root", sender: str = STAFF_ID, member: Any = yes
) -> list[StaffPost]:
    return asyncio.run(desk.handle(StaffMessage("matrix", sender, text, event, thread), member))


def test_the_example_staff_file_is_valid_and_mistakes_are_listed_with_their_place(tmp_path: Path) -> None:
    config = load_staff_config(PROJECT / "staff.example.yaml", ALL_LANGUAGES)
    assert config.speakers("tr")[0].name == "Ayşe"
    broken = tmp_path / "staff.yaml"
    broken.write_text(
        "office_hours:\n  weekly:\n    funday: '09:00-12:00'\n    monday: '9-12'\n  holidays: [2026-13-01]\n"
        "staff:\n  - name: Ana\n    languages: [de, xx]\n    telegram: '@ana'\n  - languages: [de]\n"
    )
    with pytest.raises(StaffConfigError) as error:
        load_staff_config(broken, ALL_LANGUAGES)
    message = str(error.value)
    for expected in ("funday", "'9-12'", "2026-13-01", "xx", "'@ana'", "staff #2", "'name' is missing"):
        assert expected in message, expected


def test_office_hours_skip_evenings_weekends_and_holidays() -> None:
    hours = load_staff_config(PROJECT / "staff.example.yaml", ALL_LANGUAGES).hours
    friday_evening = dt.datetime(2026, 11, 27, 18, 0, tzinfo=BERLIN)
    assert not hours.is_open(friday_evening)
    assert hours.next_opening(friday_evening) == dt.datetime(2026, 11, 30, 9, 0, tzinfo=BERLIN)
    christmas_eve = dt.datetime(2026, 12, 24, 10, 0, tzinfo=BERLIN)  # a Thursday, but a holiday
    assert not hours.is_open(christmas_eve)
    assert hours.next_opening(christmas_eve) == dt.datetime(2026, 12, 28, 9, 0, tzinfo=BERLIN)


def test_a_whole_hand_off(world: World, knowledge: KnowledgeBase) -> None:
    desk, dispatcher_, store = world.desk, world.dispatcher, world.store
    person_says(dispatcher_, "Wie melde ich mich zum Integrationskurs an?", "m1")
    started = person_says(dispatcher_, "human", "m2", Kind.COMMAND)
    catalogs = dispatcher_.catalogs
    assert started[0].handoff and started[0].text == catalogs.gettext("de", PASSED_ON)
    ticket = store.open_ticket_of(store.pseudonym("console", "user-1"))
    assert ticket is not None and ticket.status == "open"
    root = to_staff(store)[0]
    assert root["root"] and f"#{ticket.id}" in root["text"]
    assert "Deutsch (de)" in root["text"] and "Integrationskurs" in root["text"]
    assert STAFF_ID in root["mentions"]  # Ayşe speaks German
    store.set_thread(ticket.id, "matrix", "$root")

    assert person_says(dispatcher_, "Ich habe noch eine Frage zur Miete", "m3") == []  # goes to staff only
    assert "Ich habe noch eine Frage zur Miete" in to_staff(store)[-1]["text"]

    refused = staff_says(desk, "!claim", "$e1", sender="@intruder:example.org")
    assert refused and store.ticket(ticket.id).status == "open"  # type: ignore[union-attr]
    assert staff_says(desk, "!claim", "$e2", member=no) and store.ticket(ticket.id).status == "open"  # type: ignore[union-attr]

    staff_says(desk, "!claim", "$e3")
    assert store.ticket(ticket.id).status == "claimed"  # type: ignore[union-attr]
    assert "Ayşe" in to_person(store)[-1]
    staff_says(desk, "Guten Tag, ich helfe Ihnen gern.", "$e4")
    assert to_person(store)[-1].endswith("Guten Tag, ich helfe Ihnen gern.")
    assert to_person(store)[-1].startswith(catalogs.gettext("de", FROM_STAFF).format(name="Ayşe"))
    before = len(to_person(store))
    assert staff_says(desk, "!note nur intern", "$e5") and len(to_person(store)) == before
    several = staff_says(desk, "!send kurs", "$e6")
    assert "german.integration_course" in several[0].text and len(to_person(store)) == before
    staff_says(desk, "!send german.integration_course", "$e7")
    answer = knowledge.answer("german.integration_course", "de")
    assert answer is not None and answer.text in to_person(store)[-1]
    staff_says(desk, "!close", "$e8")
    assert store.ticket(ticket.id).status == "closed"  # type: ignore[union-attr]
    assert to_person(store)[-1] == catalogs.gettext("de", CLOSE_REASONS["staff"][0])
    assert person_says(dispatcher_, "Wie melde ich mich zum Integrationskurs an?", "m4")  # the bot answers again
    transcript = store.db.execute("SELECT author FROM ticket_messages WHERE ticket = ?", [ticket.id]).fetchall()
    assert [a for (a,) in transcript].count("staff") == 2


def test_the_same_message_handled_twice_opens_and_posts_once(world: World) -> None:
    dispatcher, desk = world.dispatcher, world.desk
    first = person_says(dispatcher, "human", "same", Kind.COMMAND)
    again = person_says(dispatcher, "human", "same", Kind.COMMAND)
    assert first[0].text == again[0].text
    assert len(desk.store.tickets_of(desk.store.pseudonym("console", "user-1"))) == 1
    assert len(to_staff(desk.store)) == 1


def test_outside_office_hours_the_person_is_told_the_next_opening(world: World, clock: Clock) -> None:
    desk = world.desk
    clock.now = CLOSED
    started = person_says(world.dispatcher, "human", "m1", Kind.COMMAND)
    monday = dt.datetime(2026, 11, 30, 9, 0, tzinfo=BERLIN)
    assert format_time(monday, "de") in started[0].text
    assert format_time(monday, "de") in to_staff(desk.store)[0]["text"]


def test_an_emergency_during_a_hand_off_alerts_every_staff_member(world: World) -> None:
    dispatcher, desk = world.dispatcher, world.desk
    person_says(dispatcher, "human", "m1", Kind.COMMAND)
    replies = person_says(dispatcher, "Mein Mann schlägt mich, ich habe Angst um mein Leben", "m2")
    assert replies and replies[0].urgent and "112" in replies[0].text
    ticket = desk.store.open_ticket_of(desk.store.pseudonym("console", "user-1"))
    assert ticket is not None and ticket.urgent
    alert = to_staff(desk.store)[-1]
    assert len(alert["mentions"]) == len(desk.handoffs.staff.staff) - 1  # all with a Matrix id


def test_an_emergency_opens_an_urgent_ticket(world: World) -> None:
    desk = world.desk
    replies = person_says(world.dispatcher, "ich will mich umbringen", "m1")
    assert replies[0].urgent and replies[0].text.index("112") < len(replies[0].text) // 2
    ticket = desk.store.open_ticket_of(desk.store.pseudonym("console", "user-1"))
    assert ticket is not None and ticket.urgent
    assert to_staff(desk.store)[0]["root"]


def test_files_during_a_hand_off_go_to_staff_and_the_person_can_end_it(world: World) -> None:
    dispatcher, desk = world.dispatcher, world.desk
    person_says(dispatcher, "human", "m1", Kind.COMMAND)
    photo = {"channel": "console", "name": "letter.jpg", "mime": "image/jpeg"}
    assert person_says(dispatcher, "", "m2", Kind.PHOTO, attachment=photo) == []
    assert "[" in to_staff(desk.store)[-1]["text"]
    assert person_says(dispatcher, "end", "m3", Kind.COMMAND) == []
    assert desk.store.open_ticket_of(desk.store.pseudonym("console", "user-1")) is None
    assert to_person(desk.store)  # the person is told it ended


def test_delete_closes_the_ticket_tells_staff_and_erases_the_transcript(world: World, tmp_path: Path) -> None:
    dispatcher, desk = world.dispatcher, world.desk
    person_says(dispatcher, "human", "m1", Kind.COMMAND)
    person_says(dispatcher, "Meine Adresse ist Rosenweg 7", "m2")
    person_says(dispatcher, "delete:confirm", "m3", Kind.CHOICE)
    assert desk.store.tickets_of(desk.store.pseudonym("console", "user-1")) == []
    assert desk.store.db.execute("SELECT COUNT(*) FROM ticket_messages").fetchone()[0] == 0
    assert "ℹ️" in to_staff(desk.store)[-1]["text"]
    desk.store.db.execute("DELETE FROM outbox")  # as if sent
    desk.store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert b"Rosenweg" not in (tmp_path / "bot.db").read_bytes()


def test_silent_tickets_close_and_transcripts_are_purged_after_retention(
    world: World, clock: Clock, tmp_path: Path
) -> None:
    dispatcher, desk = world.dispatcher, world.desk
    person_says(dispatcher, "human", "m1", Kind.COMMAND)
    person_says(dispatcher, "Meine Adresse ist Rosenweg 7", "m2")
    clock.now += 47 * 3600
    assert desk.handoffs.expire() == 0
    clock.now += 2 * 86400  # past 48 office-opened hours
    assert desk.handoffs.expire() == 1
    assert "Rosenweg" not in to_person(desk.store)[-1]
    privacy = person_says(dispatcher, "privacy", "m3", Kind.COMMAND)[0].text
    assert "2" in privacy  # the closed conversation and its message count are shown
    clock.now += 29 * 86400
    desk.store.purge(180, 30)
    assert desk.store.db.execute("SELECT COUNT(*) FROM ticket_messages").fetchone()[0] > 0
    clock.now += 2 * 86400
    desk.store.purge(180, 30)
    assert desk.store.db.execute("SELECT COUNT(*) FROM tickets").fetchone()[0] == 0
    desk.store.db.execute("DELETE FROM outbox")
    desk.store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert b"Rosenweg" not in (tmp_path / "bot.db").read_bytes()


def test_staff_commands_from_a_person_are_refused(world: World) -> None:
    dispatcher, desk = world.dispatcher, world.desk
    person_says(dispatcher, "human", "m1", Kind.COMMAND)
    refused = person_says(dispatcher, "claim", "m2", Kind.COMMAND)
    assert refused and refused[0].text == dispatcher.catalogs.gettext("de", STAFF_ONLY)
    ticket = desk.store.open_ticket_of(desk.store.pseudonym("console", "user-1"))
    assert ticket is not None and ticket.status == "open"


def test_a_staff_room_without_its_channel_or_staff_file_is_a_clear_start_up_error() -> None:
    from bot.config import SettingsError, from_env

    with pytest.raises(SettingsError, match="STAFF_MATRIX_ROOM"):
        from_env({"STAFF_MATRIX_ROOM": "!staff:example.org"})
    matrix = {"MATRIX_HOMESERVER": "http://127.0.0.1:1", "MATRIX_USER_ID": "@bot:x", "MATRIX_PASSWORD": "p"}
    with pytest.raises(SettingsError, match="STAFF_CONFIG"):
        from_env({**matrix, "STAFF_MATRIX_ROOM": "!staff:example.org"})
    with pytest.raises(SettingsError, match="TELEGRAM_BOT_TOKEN"):
        from_env({"STAFF_TELEGRAM_CHAT_ID": "-100123", "STAFF_CONFIG": "staff.yaml"})
