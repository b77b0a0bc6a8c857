"""Emergencies in every supported language, direct and indirect, written for this test."""

from __future__ import annotations

import pytest

from bot.dispatcher import Dispatcher
from bot.knowledge import KnowledgeBase
from bot.messages import Incoming

EMERGENCIES = {
    "de": [
        "Mein Freund ist bewusstlos und atmet nicht",
        "ich will nicht mehr leben",
        "er hat ein Messer und will mich töten",
    ],
    "en": ["my baby is not breathing", "i don't want to live anymore", "someone is following me with a knife"],
    "ar": ["صديقي فاقد الوعي وما عم يتنفس", "ما بدي عيش بعد اليوم", "زوجي عم يضربني هلق"],
    "fa": ["دوستم بیهوش شده و نفس نمیکشه", "دیگه نمیخوام زنده باشم", "یکی با چاقو تهدیدم میکنه"],
    "tr": ["arkadaşım bayıldı nefes almıyor", "artık yaşamak istemiyorum", "kocam şu an beni dövüyor"],
    "uk": ["моя дитина не дихає", "я не хочу більше жити", "мене б'ють, допоможіть"],
    "ru": ["мой друг без сознания", "не хочу больше жить", "он угрожает мне ножом"],
    "it": ["il mio amico non respira", "non voglio più vivere", "mio marito mi sta picchiando adesso"],
    "es": ["mi amigo no respira", "ya no quiero vivir", "me está pegando ahora mismo"],
    "el": ["ο φίλος μου δεν αναπνέει", "δεν θέλω να ζω άλλο", "με απειλεί με μαχαίρι"],
    "fr": ["mon ami ne respire plus", "je ne veux plus vivre", "il me frappe en ce moment"],
    "ro": ["prietenul meu nu mai respira", "nu mai vreau sa traiesc", "ma bate chiar acum"],
    "pl": ["moj kolega nie oddycha", "nie chce juz zyc", "on mnie teraz bije"],
    "hr": ["moj prijatelj ne diše", "ne želim više živjeti", "muž me upravo tuče"],
    "sq": ["shoku im nuk merr frymë", "nuk dua të jetoj më", "burri po më rrah tani"],
}
# Typed in Latin letters, as on a phone without a Cyrillic keyboard.
IN_LATIN_LETTERS = {
    "ru": ["ya bolshe ne khochu zhit", "muzh bet menya pryamo seychas"],
    "uk": ["ya hochu pomerty", "cholovik bye mene zaraz"],
}


@pytest.mark.parametrize(
    ("language", "text"),
    [(lang, t) for found in (EMERGENCIES, IN_LATIN_LETTERS) for lang, texts in found.items() for t in texts],
)
async def test_emergency_is_caught(dispatcher: Dispatcher, language: str, text: str) -> None:
    reply = (await dispatcher.handle(Incoming("test", language, language, text)))[0]
    assert reply.topic == "safety.emergency", (language, text)
    assert reply.handoff and reply.urgent


@pytest.mark.parametrize("language", list(EMERGENCIES))
def test_emergency_answer_gives_the_numbers_in_order(knowledge: KnowledgeBase, language: str) -> None:
    answer = knowledge.answer("safety.emergency", language)
    assert answer is not None and answer.language == language
    text = answer.text
    first_line = text.splitlines()[0]
    assert "112" in first_line and "110" in first_line
    for number in ("0800 111 0 111", "0800 111 0 222", "116 123", "116 016"):
        assert number in text
    assert text.index("112") < text.index("0800 111 0 111") < text.index("116 016")


async def test_ordinary_questions_do_not_raise_false_alarms(dispatcher: Dispatcher) -> None:
    ordinary = [
        "Wo finde ich einen Hausarzt?",
        "I was fired from my job, what now?",
        "كيف بسجل ابني بالمدرسة",
        "Kursu nerede bulabilirim?",
        "Як знайти квартиру в Штутгарті?",
    ]
    for text in ordinary:
        assert (await dispatcher.handle(Incoming("test", "x", "x", text)))[0].topic != "safety.emergency", text
