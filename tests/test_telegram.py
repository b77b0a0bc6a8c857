"""The Telegram channel through python-telegram-bot's real HTTP stack and a local Bot API emulator."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from bot.channels.telegram import TelegramChannel
from bot.config import Settings
from bot.knowledge import KnowledgeBase
from bot.store import Store
from bot.wiring import build_dispatcher
from tests.telegram_emulator import Emulator

PROJECT = Path(__file__).parent.parent


def telegram_settings(settings: Settings, emulator: Emulator, **changes: object) -> Settings:
    return replace(
        settings, telegram_token=emulator.token, telegram_api_url=emulator.url, telegram_max_per_second=1000, **changes
    )


@pytest.fixture
async def channel(settings: Settings, knowledge: KnowledgeBase, emulator: Emulator) -> AsyncIterator[TelegramChannel]:
    configured = telegram_settings(settings, emulator)
    store = Store(":memory:", "test-key")
    channel = TelegramChannel(configured, build_dispatcher(configured, store=store, knowledge=knowledge), store)
    await channel.start()
    yield channel
    await channel.stop()


def answer_of(knowledge: KnowledgeBase, topic: str, language: str) -> str:
    answer = knowledge.answer(topic, language)
    assert answer is not None
    return answer.text.split("\n")[0][:40]


async def test_commands_are_registered_in_every_language(channel: TelegramChannel, emulator: Emulator) -> None:
    registered = emulator.called("setMyCommands")
    languages = {c.params.get("language_code") for c in registered}
    assert set(channel.settings.languages) <= languages
    german = next(c for c in registered if c.params.get("language_code") == "de")
    assert {c["command"] for c in german.params["commands"]} >= {
        "start",
        "help",
        "language",
        "privacy",
        "delete",
        "human",
    }
    arabic = next(c for c in registered if c.params.get("language_code") == "ar")
    assert arabic.params["commands"][0]["description"] != german.params["commands"][0]["description"]


async def test_a_whole_conversation(channel: TelegramChannel, emulator: Emulator, knowledge: KnowledgeBase) -> None:
    emulator.message(1, "/start", language="tr")
    await emulator.wait_for(lambda: len(emulator.sent(1)) >= 2)
    greeting, menu = emulator.sent(1)[:2]
    english = "Welcome! I am the chatbot of the Welcome Center Stuttgart. Ask me your question in your language."
    assert greeting.text == channel.dispatcher.catalogs.gettext("tr", english) != english
    assert ("Türkçe", "lang:tr") in menu.buttons and ("العربية", "lang:ar") in menu.buttons

    emulator.press(1, "lang:uk")
    await emulator.wait_for(lambda: len(emulator.sent(1)) >= 3)
    assert emulator.called("answerCallbackQuery")

    questions = {
        "de": ("Wie melde ich meine Wohnung beim Bürgerbüro an?", "admin.registration"),
        "en": ("which bank can i open a bank account with, i have no account yet", "admin.bank_account"),
        "ar": ("كيف بقدر لاقي طبيب عائلة بيحكي عربي؟", "health.doctor"),
        "uk": ("Як отримати Kindergeld на дитину?", "family.child_benefit"),
        "tr": ("Çocuğum için kreş (Kita) yeri nasıl bulurum?", "family.childcare"),
        "fa": ("چطور میتونم تابعیت آلمان بگیرم؟", "residence.naturalisation"),
    }
    for number, (language, (question, topic)) in enumerate(questions.items()):
        before = len(emulator.sent(1))
        emulator.message(1, question, language=None)
        await emulator.wait_for(lambda b=before: len(emulator.sent(1)) > b)
        reply = emulator.sent(1)[before]
        assert answer_of(knowledge, topic, language).split("(")[0].strip()[:20] in reply.text.replace(
            "\u2066", ""
        ).replace("\u2069", "").replace("\u200f", ""), (language, reply.text[:100])
        assert reply.params["parse_mode"] == "HTML"
        feedback = [data for _label, data in reply.buttons if data.startswith("feedback:")]
        assert len(feedback) == 2, number

    emulator.press(1, feedback[0])
    before = len(emulator.sent(1))
    await emulator.wait_for(lambda: len(emulator.sent(1)) > before)
    assert channel.store.feedback_summary()[0][2] == 1


async def test_person_text_never_becomes_markup(channel: TelegramChannel, emulator: Emulator) -> None:
    emulator.message(2, "<b>@room</b> <a href='x'>Wohngeld</a> & Kindergeld", language="de")
    await emulator.wait_for(lambda: len(emulator.sent(2)) >= 1)
    for sent in emulator.sent(2):
        assert "<b>" not in sent.text and "href='x'" not in sent.text


async def test_did_you_mean_buttons_lead_to_the_topic(channel: TelegramChannel, emulator: Emulator) -> None:
    emulator.message(3, "Kurs", language="de")
    await emulator.wait_for(lambda: len(emulator.sent(3)) >= 1)
    topics = [data for _label, data in emulator.sent(3)[0].buttons if data.startswith("topic:")]
    assert topics, emulator.sent(3)[0].buttons
    emulator.press(3, topics[0])
    await emulator.wait_for(lambda: len(emulator.sent(3)) >= 2)
    assert any(data.startswith("feedback:") for _l, data in emulator.sent(3)[1].buttons)


async def test_non_text_messages_get_a_polite_reply(channel: TelegramChannel, emulator: Emulator) -> None:
    kinds = [
        {"voice": {"file_id": "v", "file_unique_id": "v", "duration": 3}},
        {"photo": [{"file_id": "p", "file_unique_id": "p", "width": 1, "height": 1}]},
        {
            "sticker": {
                "file_id": "s",
                "file_unique_id": "s",
                "width": 1,
                "height": 1,
                "is_animated": False,
                "is_video": False,
                "type": "regular",
            }
        },
        {"document": {"file_id": "d", "file_unique_id": "d"}},
        {"location": {"latitude": 48.77, "longitude": 9.18}},
        {"contact": {"phone_number": "+4917000000", "first_name": "X"}},
    ]
    for extra in kinds:
        emulator.message(4, None, language="uk", **extra)
    emulator.message(4, "змінене повідомлення", language="uk", edited=True)
    await emulator.wait_for(lambda: len(emulator.sent(4)) >= len(kinds) + 1)
    texts = [s.text for s in emulator.sent(4)]
    assert len(set(texts)) >= 6 and all(texts)
    assert "+4917000000" not in " ".join(texts)


async def test_group_chats_only_get_answers_to_commands_and_mentions(
    channel: TelegramChannel, emulator: Emulator
) -> None:
    group = {"id": -100500, "type": "supergroup", "title": "Unterkunft"}
    emulator.message(5, "Wohngeld?", chat=group)
    emulator.message(5, "@willkommen_test_bot Wohngeld?", chat=group)
    emulator.message(5, "/help@willkommen_test_bot", chat=group)
    emulator.message(5, "/help@other_bot", chat=group)
    await emulator.wait_for(lambda: len(emulator.sent(-100500)) >= 2)
    await asyncio.sleep(0.5)
    assert len(emulator.sent(-100500)) == 2


async def test_the_same_update_twice_is_answered_once(channel: TelegramChannel, emulator: Emulator) -> None:
    update_id = emulator.message(6, "Kindergeld", language="de")
    duplicate = dict(emulator.updates[-1])
    channel.receive([duplicate])
    emulator.add_update({**duplicate, "update_id": update_id})
    await emulator.wait_for(lambda: len(emulator.sent(6)) >= 1)
    await asyncio.sleep(1.0)
    assert len(emulator.sent(6)) == 1


async def test_429_is_retried_after_the_requested_time(channel: TelegramChannel, emulator: Emulator) -> None:
    emulator.faults["sendMessage"] = [("429", 1), 502, "drop"]
    started = time.monotonic()
    emulator.message(7, "Kita", language="de")
    await emulator.wait_for(lambda: len(emulator.sent(7)) >= 1)
    assert time.monotonic() - started >= 1.0
    await asyncio.sleep(0.5)
    assert len(emulator.sent(7)) == 1


async def test_a_person_who_blocked_the_bot_is_not_retried(channel: TelegramChannel, emulator: Emulator) -> None:
    emulator.blocked.add("8")
    emulator.message(8, "/start", language="de")
    await emulator.wait_for(lambda: channel.store.is_unreachable(channel.store.pseudonym("telegram", "8")))
    await asyncio.sleep(0.5)
    assert not channel.store.outbox("telegram", "8")


async def test_a_flood_from_200_people_loses_duplicates_and_reorders_nothing(
    channel: TelegramChannel, emulator: Emulator, knowledge: KnowledgeBase
) -> None:
    questions = [
        ("Kita", "family.childcare"),
        ("Kindergeld", "family.child_benefit"),
        ("Wohngeld", "housing.housing_benefit"),
        ("Einbürgerung", "residence.naturalisation"),
        ("Integrationskurs", "german.integration_course"),
    ]
    people = range(1000, 1200)
    for round_ in range(5):
        for person in people:
            emulator.message(person, questions[(person + round_) % 5][0], language="de")
    await emulator.wait_for(lambda: len(emulator.sent()) >= 1000, timeout=120)
    await asyncio.sleep(0.5)
    assert len(emulator.sent()) == 1000
    for person in people:
        got = [s.text for s in emulator.sent(person)]
        expected = [answer_of(knowledge, questions[(person + r) % 5][1], "de") for r in range(5)]
        assert len(got) == 5
        assert all(e[:25] in g for e, g in zip(expected, got, strict=True)), person


async def test_webhook_refuses_requests_without_the_secret(
    settings: Settings, knowledge: KnowledgeBase, emulator: Emulator, unused_tcp_port: int
) -> None:
    import aiohttp

    configured = telegram_settings(
        settings,
        emulator,
        telegram_webhook_url="https://bot.example/telegram",
        telegram_webhook_port=unused_tcp_port,
        telegram_webhook_secret="s3cret-value",
    )
    store = Store(":memory:", "test-key")
    channel = TelegramChannel(configured, build_dispatcher(configured, store=store, knowledge=knowledge), store)
    await channel.start()
    try:
        update = {
            "update_id": 99,
            "message": {
                "message_id": 1,
                "date": 1,
                "chat": {"id": 9, "type": "private"},
                "from": {"id": 9, "is_bot": False, "first_name": "A"},
                "text": "Kita",
            },
        }
        url = f"http://127.0.0.1:{unused_tcp_port}/telegram"
        async with aiohttp.ClientSession() as session:
            for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": "wrong"}):
                async with session.post(url, json=update, headers=headers) as response:
                    assert response.status == 403
            assert store.pending("telegram") == [] and not emulator.sent(9)
            async with session.post(
                url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret-value"}
            ) as response:
                assert response.status == 200
        await emulator.wait_for(lambda: len(emulator.sent(9)) == 1)
        assert emulator.called("setWebhook")[0].params["secret_token"] == "s3cret-value"
    finally:
        await channel.stop()


async def test_killed_while_handling_then_restarted_answers_exactly_once(emulator: Emulator, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": emulator.token,
        "TELEGRAM_API_URL": emulator.url,
        "WELCOMEBOT_DB": str(tmp_path / "bot.db"),
        "WELCOMEBOT_PSEUDONYM_KEY": "k",
        "LOG_LEVEL": "DEBUG",
    }

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "bot", "run"],
            env=env,
            cwd=PROJECT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    for attempt, delay in enumerate((0.0, 0.005, 0.05)):
        process = start()
        chat = 500 + attempt
        killed = asyncio.Event()

        def kill_soon(
            _ids: list[int], p: subprocess.Popen[bytes] = process, d: float = delay, k: asyncio.Event = killed
        ) -> None:
            if not k.is_set():
                k.set()
                asyncio.get_running_loop().call_later(d, lambda: os.kill(p.pid, signal.SIGKILL))

        emulator.on_updates_delivered = kill_soon
        emulator.message(chat, "Wie bekomme ich Kindergeld?", language="de")
        await emulator.wait_for(killed.is_set)
        await asyncio.get_running_loop().run_in_executor(None, process.wait)
        emulator.on_updates_delivered = None
        process = start()
        try:
            await emulator.wait_for(lambda c=chat: len(emulator.sent(c)) >= 1, timeout=60)
            await asyncio.sleep(1.5)
            assert len(emulator.sent(chat)) == 1, attempt
        finally:
            process.send_signal(signal.SIGTERM)
            await asyncio.get_running_loop().run_in_executor(None, process.wait)
