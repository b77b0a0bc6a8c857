"""The dispatcher: the one place that decides how the bot answers a message.

Order of concerns, for every message from every channel:
language → safety (emergencies first, then flood and input limits) → hand-off state →
commands and buttons → intent matching → answer or honest fallback.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace

from bot.config import Settings
from bot.handoff import ALREADY_CONNECTED, STAFF_COMMANDS, STAFF_ONLY, Handoffs, origin_of
from bot.i18n import N_, Catalogs, language_name
from bot.knowledge import KnowledgeBase
from bot.language import LanguageDetector
from bot.matching import Match, Matcher
from bot.messages import Choice, Incoming, Kind, Reply
from bot.safety import EmergencyDetector, RateLimiter, clean
from bot.store import Person, Store, Ticket

EMERGENCY = "safety.emergency"
HUMAN = "bot.human"
FAILURES_BEFORE_OFFER = 2
# A message this much like the emergency examples counts as one, even if another topic scores higher:
# a missed emergency is the worst mistake, a false alarm a small one. The floor keeps vague messages,
# where every topic scores low, from raising alarms.
EMERGENCY_SHARE = 0.8
EMERGENCY_FLOOR = 0.4


COMMAND_DESCRIPTIONS = {
    "start": N_("Start and choose your language"),
    "help": N_("Topics I can answer"),
    "language": N_("Change the language"),
    "human": N_("Write with a person from the Welcome Center"),
    "privacy": N_("What I store about you"),
    "delete": N_("Delete everything I store about you"),
    "end": N_("End the conversation with the Welcome Center"),
}
COMMANDS = tuple(COMMAND_DESCRIPTIONS)

AREA_LABELS = {
    "german": N_("German courses"),
    "residence": N_("Residence and papers"),
    "recognition": N_("Recognition of qualifications"),
    "housing": N_("Housing"),
    "work": N_("Work and money"),
    "health": N_("Health"),
    "family": N_("Family and children"),
    "counselling": N_("Counselling and help"),
    "admin": N_("Registration, bank, interpreters"),
    "welcome": N_("Welcome Center and meeting people"),
}

CHOICE_PROMPT = N_("Reply with the number of your choice:")  # where a channel has no buttons

NON_TEXT = {
    Kind.PHOTO: N_("Thank you for the picture. I can only read text, so please describe your question in words."),
    Kind.VOICE: N_("I cannot listen to voice messages yet. Please write your question as text."),
    Kind.AUDIO: N_("I cannot listen to audio yet. Please write your question as text."),
    Kind.VIDEO: N_("I cannot watch videos. Please write your question as text."),
    Kind.STICKER: N_("Nice sticker! I can only understand text. Please write your question."),
    Kind.DOCUMENT: N_(
        "I cannot open files. Please write your question as text. If you are talking to a staff member, "
        "they can receive files."
    ),
    Kind.LOCATION: N_("I cannot use locations. Please write your question as text, for example your district."),
    Kind.CONTACT: N_("I cannot use contacts. Please write your question as text."),
    Kind.UNREADABLE: N_(
        "I could not read your message because it is encrypted with keys I do not have. Please send it again."
    ),
    Kind.EDITED: N_("I only read new messages, not edited ones. Please send your corrected question again."),
    Kind.OTHER: N_("I can only read text messages. Please write your question in words."),
}


@dataclass(frozen=True, slots=True)
class Understanding:
    """What the bot made of one text: language, emergency, topic."""

    language: str
    emergency: bool
    match: Match


class Dispatcher:
    """Turns incoming messages into replies; keeps each person's messages in order."""

    def __init__(
        self,
        settings: Settings,
        knowledge: KnowledgeBase,
        matcher: Matcher,
        detector: LanguageDetector,
        emergencies: EmergencyDetector,
        catalogs: Catalogs,
        store: Store,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.settings = settings
        self.knowledge = knowledge
        self.matcher = matcher
        self.detector = detector
        self.emergencies = emergencies
        self.catalogs = catalogs
        self.store = store
        self.limiter = RateLimiter(
            settings.rate_limit_per_minute, settings.rate_limit_burst, **({"clock": clock} if clock else {})
        )
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self.handoffs: Handoffs | None = None  # set when staff rooms are configured

    async def handle(self, incoming: Incoming) -> list[Reply]:
        """Answer one message. Messages of one person are handled strictly one after another."""
        key = self.store.pseudonym(incoming.channel, incoming.user_id)
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        async with lock:
            return self.reply(incoming, key)

    def understand(self, text: str, hint: str | None = None, previous: str | None = None) -> Understanding:
        detection = self.detector.detect(text, hint=hint, previous=previous)
        match = self.matcher.match(text, detection.language)
        close_to_emergency = match.score(EMERGENCY) >= max(EMERGENCY_FLOOR, EMERGENCY_SHARE * match.best_score)
        emergency = self.emergencies.detect(text) is not None or match.topic == EMERGENCY or close_to_emergency
        return Understanding(detection.language, emergency, match)

    def reply(self, incoming: Incoming, key: str) -> list[Reply]:
        """The whole decision for one message, synchronous: see the module docstring for the order."""
        person = self.store.person(key)
        previous = person.language if person else None
        cleaned = clean(incoming.text, self.settings.max_message_chars)
        hint = incoming.language_hint if incoming.language_hint in self.settings.languages else None
        language = previous or hint or self.settings.default_language
        understanding: Understanding | None = None
        if incoming.kind is Kind.TEXT and not cleaned.empty:
            understanding = self.understand(cleaned.text, hint=hint, previous=previous)
            language = understanding.language
        state = _State(key, person, language, incoming)
        state.language_known = bool(previous or hint or understanding)
        ticket = self.handoffs.active(key) if self.handoffs else None

        if understanding and understanding.emergency:
            return self._finish(state, self._emergency(state, cleaned.text, ticket))
        if not self.limiter.allow(key, incoming.sent_at):
            minutes = max(1, round(self.limiter.wait_seconds(key) / 60))
            text = (
                self.catalogs.get(state.language)
                .ngettext(
                    "You are writing very fast. Please wait {minutes} minute, then send your question again.",
                    "You are writing very fast. Please wait {minutes} minutes, then send your question again.",
                    minutes,
                )
                .format(minutes=minutes)
            )
            return self._finish(state, [Reply(text, state.language)], save=False)
        if ticket is not None:
            relayed = self._relay(state, ticket, cleaned.text, cleaned.empty or cleaned.too_long, understanding)
            if relayed is not None:
                return self._finish(state, relayed)
        if incoming.kind is Kind.COMMAND:
            return self._finish(state, self._command(state, incoming.text.strip().lower()))
        if incoming.kind is Kind.CHOICE:
            return self._finish(state, self._choice(state, incoming.text.strip()))
        if incoming.kind is Kind.FEEDBACK:
            return self._finish(state, self._feedback(state, incoming.reference or "", incoming.text == "up"))
        if incoming.kind is not Kind.TEXT:
            return self._finish(state, [self._say(state, NON_TEXT.get(incoming.kind, NON_TEXT[Kind.OTHER]))])
        if cleaned.empty:
            return self._finish(
                state, [self._say(state, N_("I received an empty message. Please write your question in words."))]
            )
        if cleaned.too_long:
            return self._finish(
                state,
                [self._say(state, N_("Your message is too long for me. Please ask your question in a few sentences."))],
            )
        assert understanding is not None
        if self.handoffs:
            self.handoffs.recent.remember(key, cleaned.text, understanding.match.topic)
        return self._finish(state, self._answer(state, understanding.match))

    # -- the kinds of answers -------------------------------------------------------------------

    def _answer(self, state: _State, match: Match) -> list[Reply]:
        if match.topic is None:
            state.failures += 1
            return [self._fallback(state, match)]
        state.failures = 0
        state.topic = match.topic
        if match.topic == HUMAN:
            return self._human(state)
        if match.topic == "bot.language":
            return [replace(self._language_menu(state), confidence=match.confidence)]
        if match.topic == "bot.help":
            return [replace(self._help_menu(state), confidence=match.confidence)]
        if match.topic == "bot.privacy":
            return [replace(self._privacy(state), confidence=match.confidence)]
        return [self._topic_answer(state, match.topic, match.confidence, match.alternatives)]

    def _topic_answer(
        self, state: _State, topic_id: str, confidence: float, alternatives: tuple[str, ...] = ()
    ) -> Reply:
        _ = self.catalogs.get(state.language).gettext
        answer = self.knowledge.answer(topic_id, state.language)
        text = answer.text if answer else _("Sorry, I have no answer on this yet.")
        topic = self.knowledge.topics.get(topic_id)
        if topic is not None and topic.legal:
            text += "\n\n" + _(
                "This is general information, not legal advice. Free, independent counselling: migration "
                "counselling (Migrationsberatung), see https://www.mbeon.de"
            )
        answer_id = str(self.store.record_answer(topic_id, state.language, confidence, "answered"))
        choices: list[Choice] = []
        if alternatives:
            choices += [
                Choice(_("Did you mean: {topic}?").format(topic=self._title(t, state.language)), f"topic:{t}")
                for t in alternatives
            ]
        if not topic_id.startswith("smalltalk."):
            choices += [Choice("👍", f"feedback:{answer_id}:up"), Choice("👎", f"feedback:{answer_id}:down")]
        return Reply(
            text,
            state.language,
            tuple(choices),
            topic=topic_id,
            confidence=confidence,
            alternatives=alternatives,
            answer_id=answer_id,
        )

    def _fallback(self, state: _State, match: Match) -> Reply:
        _ = self.catalogs.get(state.language).gettext
        self.store.record_answer(None, state.language, match.confidence, "null")
        choices = [Choice(self._title(t, state.language), f"topic:{t}") for t in match.alternatives]
        if match.alternatives:
            text = _("I am not sure I understood. Did you mean one of these?")
        else:
            text = _(
                "Sorry, I cannot help with that. I answer questions about living in Stuttgart: German courses, "
                "residence, recognition, housing, work, health, family and counselling."
            )
        if state.failures >= FAILURES_BEFORE_OFFER:
            text += "\n\n" + _("Would you like to write with a person from the Welcome Center?")
            choices.append(Choice(_("Talk to a person"), "human"))
        else:
            choices.append(Choice(_("Show topics"), "help"))
        return Reply(text, state.language, tuple(choices), confidence=match.confidence, alternatives=match.alternatives)

    def _emergency(self, state: _State, text: str, ticket: Ticket | None) -> list[Reply]:
        """The emergency numbers first; then, where staff are reachable, an urgent hand-off."""
        state.topic = EMERGENCY
        self.store.record_answer(EMERGENCY, state.language, 1.0, "emergency")
        answer = self.knowledge.answer(EMERGENCY, state.language)
        _ = self.catalogs.get(state.language).gettext
        numbers = answer.text if answer else _("In an emergency call 112 (ambulance, fire) or 110 (police).")
        replies = [Reply(numbers, state.language, handoff=True, urgent=True, topic=EMERGENCY, confidence=1.0)]
        if self.handoffs is None:
            return replies
        if ticket is not None and ticket.origin != origin_of(state.incoming):
            self.handoffs.relay_from_person(ticket, state.incoming, text, EMERGENCY)
            self.handoffs.emergency_during(ticket, state.incoming)
            return replies
        self.handoffs.recent.remember(state.key, text, EMERGENCY)
        started = self.handoffs.start(state.key, state.incoming, state.language, urgent=True, topic=EMERGENCY)
        note = _("I have also informed the Welcome Center team. If you are in danger, call 112 or 110 now.")
        return [*replies, replace(started, text=note + "\n\n" + started.text)]

    def _human(self, state: _State) -> list[Reply]:
        asked_about = state.topic if state.topic != HUMAN else None
        state.topic = HUMAN
        state.failures = 0
        self.store.record_answer(HUMAN, state.language, 1.0, "human")
        _ = self.catalogs.get(state.language).gettext
        if self.handoffs is None:
            # No staff room is configured: say so honestly and name the way to reach the Welcome Center.
            text = _(
                "Writing with a person from the Welcome Center is not possible in this chat yet. "
                "You can reach the Welcome Center Stuttgart directly: https://welcome.stuttgart.de"
            )
            return [Reply(text, state.language, handoff=True, topic=HUMAN, confidence=1.0)]
        started = self.handoffs.start(state.key, state.incoming, state.language, urgent=False, topic=asked_about)
        return [replace(started, topic=HUMAN, confidence=1.0)]

    def _relay(
        self, state: _State, ticket: Ticket, text: str, unreadable: bool, understanding: Understanding | None
    ) -> list[Reply] | None:
        """During a hand-off, what the person writes or sends goes to staff; None: answer it as usual."""
        assert self.handoffs is not None
        incoming = state.incoming
        if ticket.origin == origin_of(incoming):
            return None  # the message that opened this ticket, handled again after a restart: same answer
        if incoming.kind is Kind.COMMAND and incoming.text.strip().lower() in ("end", "human"):
            return self._end_or_remind(state, ticket, incoming.text.strip().lower())
        if incoming.kind is Kind.CHOICE and incoming.text == "delete:confirm":
            self.handoffs.close(ticket, "deleted", origin_of(incoming))
            return None
        if incoming.kind in (Kind.COMMAND, Kind.CHOICE, Kind.FEEDBACK, Kind.EDITED, Kind.UNREADABLE):
            return None
        if incoming.kind is Kind.TEXT:
            if unreadable:
                return None
            topic = understanding.match.topic if understanding else None
            self.handoffs.relay_from_person(ticket, incoming, text, topic)
            return []
        self.handoffs.relay_from_person(ticket, incoming, "" if unreadable else text, None)  # a file, its caption
        return []

    def _end_or_remind(self, state: _State, ticket: Ticket, command: str) -> list[Reply]:
        assert self.handoffs is not None
        _ = self.catalogs.get(state.language).gettext
        if command == "human":
            return [Reply(_(ALREADY_CONNECTED), state.language, handoff=True)]
        self.handoffs.close(ticket, "person", origin_of(state.incoming))
        return []

    def _command(self, state: _State, command: str) -> list[Reply]:
        _ = self.catalogs.get(state.language).gettext
        if command == "start":
            greeting = _(
                "Welcome! I am the chatbot of the Welcome Center Stuttgart. Ask me your question in your language."
            )
            return [Reply(greeting, state.language), self._language_menu(state)]
        if command == "help":
            return [self._help_menu(state)]
        if command == "language":
            return [self._language_menu(state)]
        if command == "privacy":
            return [self._privacy(state)]
        if command == "delete":
            text = _("Do you want me to delete everything I store about you? This cannot be undone.")
            return [
                Reply(
                    text,
                    state.language,
                    (Choice(_("Yes, delete everything"), "delete:confirm"), Choice(_("No"), "delete:cancel")),
                )
            ]
        if command == "human":
            return self._human(state)
        if command == "end":
            return [Reply(_("You are not talking with a staff member right now."), state.language)]
        if command in STAFF_COMMANDS:
            return [Reply(_(STAFF_ONLY), state.language)]
        text = _("I do not know this command. These work: {commands}").format(
            commands=" ".join("/" + c for c in COMMANDS)
        )
        return [Reply(text, state.language)]

    def _choice(self, state: _State, action: str) -> list[Reply]:
        _ = self.catalogs.get(state.language).gettext
        name, _sep, value = action.partition(":")
        if name == "topic" and value in self.knowledge.topics:
            state.topic = value
            if value == HUMAN:
                return self._human(state)
            return [self._topic_answer(state, value, 1.0)]
        if name == "area" and value in AREA_LABELS:
            topics = [t for t in self.knowledge.topics.values() if t.area == value]
            choices = tuple(Choice(self._title(t.id, state.language), f"topic:{t.id}") for t in topics)
            return [Reply(_(AREA_LABELS[value]), state.language, choices)]
        if name == "lang" and value in self.settings.languages:
            state.language = value
            state.language_chosen = state.language_known = True
            _ = self.catalogs.get(value).gettext
            return [
                Reply(
                    _("From now on I will answer in English. Ask me your question."),
                    value,
                    (Choice(_("Show topics"), "help"),),
                )
            ]
        if name == "feedback":
            answer_id, _sep, verdict = value.partition(":")
            return self._feedback(state, answer_id, verdict == "up")
        if name == "delete":
            if value == "confirm":
                self.store.forget_person(state.key)
                state.deleted = True
                return [Reply(_("Done: I have deleted everything I stored about you."), state.language)]
            return [Reply(_("Nothing was deleted."), state.language)]
        if name in COMMANDS:
            return self._command(state, name)
        return [self._say(state, N_("This button is no longer valid. Please write your question."))]

    def _feedback(self, state: _State, answer_id: str, helpful: bool) -> list[Reply]:
        _ = self.catalogs.get(state.language).gettext
        if answer_id.isdigit() and self.store.record_feedback(int(answer_id), helpful):
            if helpful:
                return [Reply(_("Thank you for your feedback!"), state.language)]
            return [
                Reply(
                    _(
                        "Thank you. I am sorry the answer did not help. "
                        "You can ask a person from the Welcome Center: /human"
                    ),
                    state.language,
                )
            ]
        return [self._say(state, N_("This button is no longer valid. Please write your question."))]

    def _help_menu(self, state: _State) -> Reply:
        _ = self.catalogs.get(state.language).gettext
        answer = self.knowledge.answer("bot.help", state.language)
        text = answer.text if answer else _("Choose a topic:")
        choices = tuple(Choice(_(label), f"area:{area}") for area, label in AREA_LABELS.items())
        return Reply(
            text,
            state.language,
            (*choices, Choice(_("Talk to a person"), "human")),
            topic="bot.help",
            confidence=1.0,
        )

    def _language_menu(self, state: _State) -> Reply:
        _ = self.catalogs.get(state.language).gettext
        choices = tuple(Choice(language_name(code), f"lang:{code}") for code in self.settings.languages)
        return Reply(_("Choose your language:"), state.language, choices, topic="bot.language", confidence=1.0)

    def _privacy(self, state: _State) -> Reply:
        _ = self.catalogs.get(state.language).gettext
        answer = self.knowledge.answer("bot.privacy", state.language)
        person = state.person
        if person is None:
            held = _("I store nothing about you at the moment.")
        else:
            items = [_("Language: {language}").format(language=language_name(person.language or state.language))]
            if person.last_topic:
                topic = self._title(person.last_topic, state.language)
                items.append(_("Topic of your last question: {topic}").format(topic=topic))
            items.append(_("Time of your last message"))
            if self.handoffs is not None:
                items += self.handoffs.privacy_lines(state.key, state.language)
            held = _("What I store about you now:") + "\n" + "\n".join("• " + item for item in items)
        text = "\n\n".join(part for part in (answer.text if answer else "", held) if part)
        return Reply(
            text, state.language, (Choice(_("Delete my data"), "delete"),), topic="bot.privacy", confidence=1.0
        )

    # -- helpers ----------------------------------------------------------------------------------

    def _say(self, state: _State, message: str) -> Reply:
        return Reply(self.catalogs.gettext(state.language, message), state.language)

    def _title(self, topic_id: str, language: str) -> str:
        answer = self.knowledge.answer(topic_id, language)
        if answer is not None and answer.title:
            return answer.title
        topic = self.knowledge.topics.get(topic_id)
        return topic.title.split(" / ")[-1] if topic else topic_id

    def _finish(self, state: _State, replies: list[Reply], save: bool = True) -> list[Reply]:
        if save and not state.deleted:
            self.store.save_person(
                state.key,
                language=state.language if state.language_known else None,
                last_topic=state.topic,
                failures=state.failures,
                language_chosen=True if state.language_chosen else None,
            )
        return replies


class _State:
    """What the dispatcher learns about a person while handling one message."""

    def __init__(self, key: str, person: Person | None, language: str, incoming: Incoming) -> None:
        self.key = key
        self.incoming = incoming
        self.person = person
        self.language = language
        self.topic = person.last_topic if person else None
        self.failures = person.failures if person else 0
        self.language_chosen = False
        self.language_known = False  # False: only the default language, nothing learnt about the person
        self.deleted = False
