"""Builds the bot's parts from the settings: the one place where they are put together."""

from __future__ import annotations

import gc
import logging
import secrets
from pathlib import Path

from bot.config import Settings
from bot.desk import StaffDesk
from bot.dispatcher import Dispatcher
from bot.handoff import Handoffs
from bot.i18n import Catalogs
from bot.knowledge import KnowledgeBase, load
from bot.language import LanguageDetector
from bot.matching import Matcher
from bot.outlets import Outlets
from bot.safety import EmergencyDetector
from bot.staff import load_staff_config
from bot.store import Store

log = logging.getLogger(__name__)


def build_knowledge(settings: Settings) -> KnowledgeBase:
    knowledge = load(settings.content_dir, settings.languages)
    if knowledge.errors:
        log.warning("the content has %d errors; run `welcomebot check` to list them", len(knowledge.errors))
    return knowledge


def language_samples(knowledge: KnowledgeBase) -> dict[str, list[str]]:
    """Texts per language for the detector: the examples, written the way people write."""
    samples: dict[str, list[str]] = {code: [] for code in knowledge.languages}
    for by_language in knowledge.examples.values():
        for language, phrases in by_language.items():
            samples[language].extend(phrases)
    return samples


def matcher_examples(knowledge: KnowledgeBase) -> dict[str, dict[str, list[str]]]:
    """The intent examples, plus each answer's title: the topic's own name in every language."""
    examples = {topic: {language: list(p) for language, p in by.items()} for topic, by in knowledge.examples.items()}
    for (language, topic), answer in knowledge.answers.items():
        if answer.title:
            examples.setdefault(topic, {}).setdefault(language, []).append(answer.title)
    return examples


def pseudonym_key(settings: Settings) -> str:
    """The key for pseudonyms: from the environment, else kept in a private file beside the database."""
    if settings.pseudonym_key:
        return settings.pseudonym_key
    if settings.db_path == ":memory:":
        return secrets.token_hex(32)
    path = Path(settings.db_path).with_suffix(".key")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_hex(32))
        log.warning("WELCOMEBOT_PSEUDONYM_KEY is not set: created a key file next to the database")
    return path.read_text().strip()


def build_dispatcher(
    settings: Settings, store: Store | None = None, knowledge: KnowledgeBase | None = None
) -> Dispatcher:
    # Building the models creates millions of small objects and nothing cyclic: the garbage collector's
    # repeated scans would only slow the start, so it waits until they are built.
    gc.disable()
    try:
        knowledge = knowledge or build_knowledge(settings)
        matcher = Matcher(matcher_examples(knowledge), threshold=settings.match_threshold)
        detector = LanguageDetector(language_samples(knowledge), default=settings.default_language)
    finally:
        gc.enable()
    emergencies = EmergencyDetector(knowledge.emergency_phrases)
    catalogs = Catalogs(settings.content_dir / "translations", settings.languages)
    store = store or Store(settings.db_path, pseudonym_key(settings))
    return Dispatcher(settings, knowledge, matcher, detector, emergencies, catalogs, store)


def build_handoffs(settings: Settings, dispatcher: Dispatcher, outlets: Outlets) -> StaffDesk | None:
    """Hand-off to staff, when a staff room is configured; the staff file is validated here, at start-up."""
    if not (settings.staff_matrix_room or settings.staff_telegram_chat_id):
        return None
    staff = load_staff_config(settings.staff_config, settings.languages)
    handoffs = Handoffs(
        dispatcher.store,
        outlets,
        staff,
        dispatcher.knowledge,
        dispatcher.catalogs,
        staff_language=settings.staff_language,
        retention_days=settings.retention_handoff_days,
    )
    dispatcher.handoffs = handoffs
    return StaffDesk(handoffs)
