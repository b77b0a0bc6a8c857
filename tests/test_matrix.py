"""The Matrix channel against a real Synapse homeserver started on 127.0.0.1 by the tests."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from bot.channels.matrix import MatrixChannel
from bot.config import Settings
from bot.knowledge import KnowledgeBase
from bot.store import Store
from bot.wiring import build_dispatcher
from tests.matrix_people import Person
from tests.synapse_server import Synapse

PROJECT = Path(__file__).parent.parent
_names = itertools.count()


def new_user(synapse: Synapse, prefix: str) -> str:
    return synapse.register(f"{prefix}{next(_names)}{os.getpid()}")


def matrix_settings(settings: Settings, synapse: Synapse, bot: str, folder: Path) -> Settings:
    return replace(
        settings,
        matrix_homeserver=synapse.url,
        matrix_user_id=bot,
        matrix_password="password",
        matrix_store_dir=str(folder / "matrix"),
        db_path=str(folder / "bot.db"),
    )


@pytest.fixture
async def person(synapse: Synapse, tmp_path: Path) -> AsyncIterator[Person]:
    someone = Person(synapse.url, new_user(synapse, "person"), tmp_path / "person")
    await someone.login()
    yield someone
    await someone.close()


async def start_bot(settings: Settings, knowledge: KnowledgeBase) -> MatrixChannel:
    store = Store(settings.db_path, "test-key")
    channel = MatrixChannel(settings, build_dispatcher(settings, store=store, knowledge=knowledge), store)
    await channel.start()
    return channel


def first_words(knowledge: KnowledgeBase, topic: str, language: str) -> str:
    answer = knowledge.answer(topic, language)
    assert answer is not None
    return answer.text.split("\n")[0][:30]


def plain(text: str) -> str:
    return text.replace("\u2066", "").replace("\u2069", "").replace("\u200f", "")


async def test_invitation_greeting_questions_commands_and_feedback(
    synapse: Synapse, person: Person, settings: Settings, knowledge: KnowledgeBase, tmp_path: Path
) -> None:
    bot = new_user(synapse, "bot")
    channel = await start_bot(matrix_settings(settings, synapse, bot, tmp_path), knowledge)
    try:
        room = await person.open_chat(bot)
        greeting = await person.wait_for_answers(room, 2)
        assert "Українська" in greeting[1].body and "العربية" in greeting[1].body
        assert all(n.source["content"]["msgtype"] == "m.notice" for n in greeting)

        questions = [
            ("de", "Wie melde ich meine Wohnung beim Bürgerbüro an?", "admin.registration"),
            ("en", "which bank can i open a bank account with, i have no account yet", "admin.bank_account"),
            ("ar", "كيف بقدر لاقي طبيب عائلة بيحكي عربي؟", "health.doctor"),
            ("uk", "Як отримати Kindergeld на дитину?", "family.child_benefit"),
            ("tr", "Çocuğum için kreş (Kita) yeri nasıl bulurum?", "family.childcare"),
            ("fa", "چطور میتونم تابعیت آلمان بگیرم؟", "residence.naturalisation"),
        ]
        for number, (language, question, topic) in enumerate(questions, start=1):
            await person.say(room, question)
            answer = (await person.wait_for_answers(room, 2 + number))[-1]
            assert first_words(knowledge, topic, language) in plain(answer.body), (language, answer.body[:80])

        await person.react(room, answer.event_id, "👍")
        await person.wait_for_answers(room, 9)  # thanks for the feedback
        assert channel.store.feedback_summary() == [("residence.naturalisation", "fa", 1, 0)]
        await person.say(room, "!help")
        menu = (await person.wait_for_answers(room, 10))[-1]
        assert "1." in menu.body
        await person.say(room, "/language")
        await person.wait_for_answers(room, 11)
        await person.send_image(room)
        await person.wait_for_answers(room, 12)

        await person.say(room, "<b>bold</b> @room <a href='https://evil.example'>Kindergeld</a>")
        reply = (await person.wait_for_answers(room, 13))[-1]
        html = reply.source["content"]["formatted_body"]
        assert "<b>" not in html and "evil.example" not in html
    finally:
        await channel.stop()


async def test_encrypted_direct_chat_is_read_and_answered(
    synapse: Synapse, person: Person, settings: Settings, knowledge: KnowledgeBase, tmp_path: Path
) -> None:
    bot = new_user(synapse, "bot")
    channel = await start_bot(matrix_settings(settings, synapse, bot, tmp_path), knowledge)
    try:
        room = await person.open_chat(bot, encrypted=True)
        await person.wait_for_answers(room, 2)
        await person.say(room, "Wo bekomme ich Wohngeld?")
        answer = (await person.wait_for_answers(room, 3))[-1]
        assert first_words(knowledge, "housing.housing_benefit", "de") in answer.body
        assert answer.decrypted
        assert person.undecryptable == 0
    finally:
        await channel.stop()


async def test_homeserver_restart_loses_no_reply(
    synapse: Synapse, person: Person, settings: Settings, knowledge: KnowledgeBase, tmp_path: Path
) -> None:
    bot = new_user(synapse, "bot")
    channel = await start_bot(matrix_settings(settings, synapse, bot, tmp_path), knowledge)
    try:
        room = await person.open_chat(bot)
        await person.wait_for_answers(room, 2)
        await asyncio.get_running_loop().run_in_executor(None, synapse.restart)
        await person.say(room, "Kindergeld")
        answer = (await person.wait_for_answers(room, 3, timeout=120))[-1]
        assert first_words(knowledge, "family.child_benefit", "de") in answer.body
    finally:
        await channel.stop()


async def test_killed_bot_answers_messages_sent_while_down_once_and_in_order(
    synapse: Synapse, person: Person, settings: Settings, knowledge: KnowledgeBase, tmp_path: Path
) -> None:
    bot = new_user(synapse, "bot")
    configured = matrix_settings(settings, synapse, bot, tmp_path)
    env = {
        **os.environ,
        "MATRIX_HOMESERVER": synapse.url,
        "MATRIX_USER_ID": bot,
        "MATRIX_PASSWORD": "password",
        "MATRIX_STORE_DIR": configured.matrix_store_dir,
        "WELCOMEBOT_DB": configured.db_path,
        "WELCOMEBOT_PSEUDONYM_KEY": "k",
        "LOG_LEVEL": "DEBUG",
        "RATE_LIMIT_BURST": "40",  # this test is about restarts, not about the per-person flood limit
    }

    log = tmp_path / "bot.log"

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "bot", "run"], env=env, cwd=PROJECT, stdout=subprocess.DEVNULL, stderr=log.open("ab")
        )

    process = start()
    try:
        room = await person.open_chat(bot)
        try:
            await person.wait_for_answers(room, 2)
        except AssertionError as error:
            raise AssertionError(log.read_text()[-3000:]) from error
        await person.say(room, "Einbürgerung")
        await asyncio.sleep(0.05)  # the bot is now somewhere between sync, callback and send
        process.send_signal(signal.SIGKILL)
        process.wait()
        questions = [
            ("Kita", "family.childcare"),
            ("Kindergeld", "family.child_benefit"),
            ("Wohngeld", "housing.housing_benefit"),
            ("Integrationskurs", "german.integration_course"),
            ("Bankkonto eröffnen", "admin.bank_account"),
        ]
        sent = [questions[i % 5] for i in range(25)]
        for text, _topic in sent:
            await person.say(room, text)
        process = start()
        answers = await person.wait_for_answers(room, 2 + 1 + 25, timeout=180)
        await asyncio.sleep(3)
        answers = person.answers(room)
        assert len(answers) == 28, [a.body[:40] for a in answers]
        assert first_words(knowledge, "residence.naturalisation", "de") in answers[2].body
        for answer, (_text, topic) in zip(answers[3:], sent, strict=True):
            assert first_words(knowledge, topic, "de") in answer.body
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait()


async def test_default_rate_limit_thirty_questions_all_answered(
    settings: Settings, knowledge: KnowledgeBase, tmp_path: Path
) -> None:
    limited = Synapse(tmp_path / "limited", default_rate_limit=True)
    await asyncio.get_running_loop().run_in_executor(None, limited.start)
    someone = Person(limited.url, limited.register("someone"), tmp_path / "someone")
    try:
        await someone.login()
        bot = limited.register("ratebot")
        channel = await start_bot(matrix_settings(settings, limited, bot, tmp_path), knowledge)
        try:
            room = await someone.open_chat(bot)
            await someone.wait_for_answers(room, 2)
            for number in range(30):
                await someone.say(room, ["Kita", "Kindergeld", "Wohngeld"][number % 3])
            answers = await someone.wait_for_answers(room, 32, timeout=400)
            await asyncio.sleep(2)
            assert len(someone.answers(room)) == 32
            assert len(answers) == 32
        finally:
            await channel.stop()
    finally:
        await someone.close()
        limited.stop()
