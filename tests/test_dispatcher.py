"""Whole conversations through the dispatcher, as a channel would drive it."""

from __future__ import annotations

import asyncio

from bot.dispatcher import Dispatcher
from bot.messages import Incoming, Kind, Reply


def text(message: str, user: str = "u1", hint: str | None = None) -> Incoming:
    return Incoming("test", user, user, message, language_hint=hint)


async def press(dispatcher: Dispatcher, action: str, user: str = "u1") -> list[Reply]:
    return await dispatcher.handle(Incoming("test", user, user, action, Kind.CHOICE))


async def test_start_greets_in_the_app_language_and_offers_languages(dispatcher: Dispatcher) -> None:
    replies = await dispatcher.handle(Incoming("test", "u1", "u1", "start", Kind.COMMAND, language_hint="uk"))
    assert replies[0].language == "uk"
    actions = [c.action for r in replies for c in r.choices]
    assert "lang:ar" in actions and "lang:sq" in actions
    labels = [c.label for r in replies for c in r.choices]
    assert "العربية" in labels and "Українська" in labels


async def test_choosing_a_language_answers_in_it_from_then_on(dispatcher: Dispatcher) -> None:
    await press(dispatcher, "lang:fa")
    replies = await dispatcher.handle(text("ok"))
    assert replies[0].language == "fa"


async def test_question_gets_answer_in_its_language_with_feedback_buttons(dispatcher: Dispatcher) -> None:
    replies = await dispatcher.handle(text("Kindergeld beantragen, wie geht das?"))
    reply = replies[0]
    assert (reply.topic, reply.language) == ("family.child_benefit", "de")
    assert reply.text == dispatcher.knowledge.answer("family.child_benefit", "de").text  # type: ignore[union-attr]
    feedback = [c.action for c in reply.choices if c.action.startswith("feedback:")]
    assert len(feedback) == 2
    thanks = await press(dispatcher, feedback[0])
    assert thanks[0].text
    assert dispatcher.store.feedback_summary() == [("family.child_benefit", "de", 1, 0)]


async def test_legal_answers_say_they_are_not_legal_advice(dispatcher: Dispatcher) -> None:
    reply = (await dispatcher.handle(text("how do I extend my residence permit")))[0]
    assert reply.topic == "residence.extend_permit"
    assert "not legal advice" in reply.text


async def test_out_of_scope_gets_an_honest_answer_and_after_two_a_person_is_offered(dispatcher: Dispatcher) -> None:
    first = (await dispatcher.handle(text("who will win the champions league")))[0]
    assert first.topic is None and first.text
    second = (await dispatcher.handle(text("tell me a joke about cats")))[0]
    assert second.topic is None
    assert "human" in [c.action for c in second.choices]
    handoff = await press(dispatcher, "human")
    assert handoff[0].handoff and handoff[0].topic == "bot.human"


async def test_emergency_comes_first_with_numbers_and_urgent_handoff(dispatcher: Dispatcher) -> None:
    reply = (await dispatcher.handle(text("my neighbour has a knife and says he will kill me")))[0]
    assert reply.topic == "safety.emergency" and reply.handoff and reply.urgent
    assert reply.text.index("112") < 200 and "110" in reply.text


async def test_emergency_is_recognised_even_when_rate_limited(dispatcher: Dispatcher) -> None:
    for _ in range(40):
        await dispatcher.handle(text("hello"))
    limited = (await dispatcher.handle(text("what is Wohngeld")))[0]
    assert limited.topic is None and limited.text  # a polite notice, not silence
    assert (await dispatcher.handle(text("there is a fire in our room")))[0].topic == "safety.emergency"
    assert (await dispatcher.handle(text("what is Wohngeld", user="u2")))[0].topic == "housing.housing_benefit"


async def test_non_text_messages_get_an_explanation_in_the_persons_language(dispatcher: Dispatcher) -> None:
    await dispatcher.handle(text("Привіт, як записатися на курс німецької?"))
    for kind in (Kind.VOICE, Kind.PHOTO, Kind.STICKER, Kind.DOCUMENT, Kind.LOCATION, Kind.CONTACT, Kind.EDITED):
        reply = (await dispatcher.handle(Incoming("test", "u1", "u1", "", kind)))[0]
        assert reply.language == "uk" and reply.text


async def test_unknown_command_lists_the_commands(dispatcher: Dispatcher) -> None:
    reply = (await dispatcher.handle(Incoming("test", "u1", "u1", "frobnicate", Kind.COMMAND)))[0]
    assert "/help" in reply.text and "/human" in reply.text


async def test_privacy_shows_what_is_held_and_delete_erases_it(dispatcher: Dispatcher) -> None:
    await dispatcher.handle(text("wie finde ich eine Wohnung in Stuttgart"))
    shown = (await dispatcher.handle(Incoming("test", "u1", "u1", "privacy", Kind.COMMAND)))[0]
    assert "Deutsch" in shown.text
    asked = (await dispatcher.handle(Incoming("test", "u1", "u1", "delete", Kind.COMMAND)))[0]
    assert "delete:confirm" in [c.action for c in asked.choices]
    assert dispatcher.store.person(dispatcher.store.pseudonym("test", "u1")) is not None
    await press(dispatcher, "delete:confirm")
    assert dispatcher.store.person(dispatcher.store.pseudonym("test", "u1")) is None


async def test_help_menu_leads_to_topics(dispatcher: Dispatcher) -> None:
    menu = (await dispatcher.handle(Incoming("test", "u1", "u1", "help", Kind.COMMAND)))[0]
    assert "area:housing" in [c.action for c in menu.choices]
    area = (await press(dispatcher, "area:housing"))[0]
    assert "topic:housing.homeless" in [c.action for c in area.choices]
    answer = (await press(dispatcher, "topic:housing.homeless"))[0]
    assert answer.topic == "housing.homeless"


async def test_one_persons_messages_are_answered_in_order(dispatcher: Dispatcher) -> None:
    questions = ["Kita", "Kindergeld", "Wohngeld", "Jobcenter", "Einbürgerung"] * 4
    results = await asyncio.gather(*(dispatcher.handle(text(q)) for q in questions))
    assert [r[0].topic for r in results][:5] == [
        "family.childcare",
        "family.child_benefit",
        "housing.housing_benefit",
        "work.benefits",
        "residence.naturalisation",
    ]
