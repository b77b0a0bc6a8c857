"""Loading and validating the content: topics, answers, sources and intent examples.

Content is data edited by people who do not read Python, so loading never stops at the first
mistake: it collects every problem with file and line, and `welcomebot check` prints them all.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bot.matching import NULL_TOPIC
from bot.normalise import normalise

try:  # libyaml parses the content several times faster; fall back to the pure-Python loader
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover
    _Loader = yaml.SafeLoader

MAX_ANSWER_CHARS = 900
MIN_EXAMPLES = 5
STATUSES = ("draft", "reviewed")
# Topics answered by the bot itself rather than by an office: they need no source.
SELF_ANSWERED_AREAS = ("bot", "smalltalk")


@dataclass(frozen=True, slots=True)
class Problem:
    severity: str  # "error" stops CI; "warning" is worth a look
    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{self.severity}: {where}: {self.message}"


@dataclass(frozen=True, slots=True)
class Topic:
    id: str
    area: str
    title: str
    covers: str
    legal: bool = False
    checked: dt.date | None = None
    sources: tuple[str, ...] = ()

    @property
    def title_de(self) -> str:
        """The German half of the title, for staff who read German."""
        return self.title.split(" / ")[0]


@dataclass(frozen=True, slots=True)
class Answer:
    topic: str
    language: str
    text: str
    status: str
    title: str = ""  # short label for menus and "did you mean" buttons


@dataclass
class KnowledgeBase:
    """Everything the bot knows, loaded once at start-up."""

    languages: tuple[str, ...]
    topics: dict[str, Topic] = field(default_factory=dict)
    answers: dict[tuple[str, str], Answer] = field(default_factory=dict)
    examples: dict[str, dict[str, list[str]]] = field(default_factory=lambda: defaultdict(dict))
    emergency_phrases: dict[str, list[str]] = field(default_factory=dict)
    intent_status: dict[str, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def answer(self, topic: str, language: str) -> Answer | None:
        """The answer in `language`, else in English, else in German."""
        for candidate in (language, "en", "de"):
            found = self.answers.get((candidate, topic))
            if found is not None:
                return found
        return None

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]


def load(content_dir: Path, languages: tuple[str, ...]) -> KnowledgeBase:
    """Read topics, sources, answers and intents under `content_dir`, recording every problem."""
    kb = KnowledgeBase(languages=languages)
    root = content_dir
    topics_path = root / "knowledge" / "topics.yaml"
    raw_topics, _ = _read_yaml(topics_path, kb, root)
    meta = _read_sources(root, kb)
    for area, entries in (raw_topics or {}).items():
        for entry in entries or []:
            topic_id = str(entry.get("id", ""))
            info = meta.get(topic_id, {})
            kb.topics[topic_id] = Topic(
                id=topic_id,
                area=area,
                title=str(entry.get("title", topic_id)),
                covers=str(entry.get("covers", "")),
                legal=bool(info.get("legal", False)),
                checked=info.get("checked"),
                sources=tuple(str(s) for s in info.get("sources") or ()),
            )
    _check_sources(kb, meta, root)
    for language in languages:
        _read_answers(root, language, kb)
        _read_intents(root, language, kb)
    _check_duplicate_examples(kb)
    return kb


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _read_yaml(path: Path, kb: KnowledgeBase, root: Path) -> tuple[Any, dict[str, int]]:
    """Parse one YAML file; return its data and the line of each top-level key."""
    name = _rel(path, root)
    if not path.exists():
        kb.problems.append(Problem("error", name, None, "file is missing"))
        return None, {}
    text = path.read_text(encoding="utf-8")
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        kb.problems.append(Problem("error", name, line, f"YAML error: {problem}"))
        return None, {}
    finally:
        loader.dispose()
    lines: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, _ in node.value:
            lines[str(key_node.value)] = key_node.start_mark.line + 1
    if data is not None and not isinstance(data, dict):
        kb.problems.append(Problem("error", name, 1, "expected a mapping of topic ids"))
        return None, {}
    return data, lines


def _read_sources(root: Path, kb: KnowledgeBase) -> dict[str, dict[str, Any]]:
    meta: dict[str, dict[str, Any]] = {}
    for path in sorted((root / "knowledge" / "sources").glob("*.yaml")):
        data, lines = _read_yaml(path, kb, root)
        for topic_id, info in (data or {}).items():
            if not isinstance(info, dict):
                kb.problems.append(
                    Problem(
                        "error", _rel(path, root), lines.get(topic_id), f"{topic_id}: expected checked/legal/sources"
                    )
                )
                continue
            meta[str(topic_id)] = {**info, "_where": (_rel(path, root), lines.get(topic_id))}
    return meta


def _check_sources(kb: KnowledgeBase, meta: dict[str, dict[str, Any]], root: Path) -> None:
    for topic_id, info in meta.items():
        where, line = info["_where"]
        if topic_id not in kb.topics:
            kb.problems.append(Problem("error", where, line, f"unknown topic id {topic_id!r}"))
    for topic in kb.topics.values():
        recorded = meta.get(topic.id)
        if topic.area in SELF_ANSWERED_AREAS:
            continue
        if recorded is None:
            kb.problems.append(
                Problem("error", f"knowledge/sources/{topic.area}.yaml", None, f"{topic.id}: no sources recorded")
            )
            continue
        where, line = recorded["_where"]
        if not topic.sources:
            kb.problems.append(Problem("error", where, line, f"{topic.id}: answer has no source"))
        if not isinstance(topic.checked, dt.date):
            kb.problems.append(Problem("error", where, line, f"{topic.id}: 'checked' must be a date (YYYY-MM-DD)"))


def _read_answers(root: Path, language: str, kb: KnowledgeBase) -> None:
    folder = root / "knowledge" / language
    if not folder.is_dir():
        kb.problems.append(Problem("error", _rel(folder, root), None, f"no answers for language {language!r}"))
        return
    for path in sorted(folder.glob("*.yaml")):
        data, lines = _read_yaml(path, kb, root)
        name = _rel(path, root)
        for topic_id, entry in (data or {}).items():
            line = lines.get(topic_id)
            if topic_id not in kb.topics:
                kb.problems.append(Problem("error", name, line, f"unknown topic id {topic_id!r}"))
                continue
            if not isinstance(entry, dict):
                kb.problems.append(Problem("error", name, line, f"{topic_id}: expected 'status' and 'answer'"))
                continue
            text = str(entry.get("answer") or "").strip()
            status = str(entry.get("status", ""))
            if not text:
                kb.problems.append(Problem("error", name, line, f"{topic_id}: answer is empty"))
                continue
            if len(text) > MAX_ANSWER_CHARS:
                kb.problems.append(
                    Problem(
                        "error",
                        name,
                        line,
                        f"{topic_id}: answer has {len(text)} characters (at most {MAX_ANSWER_CHARS})",
                    )
                )
            if status not in STATUSES:
                kb.problems.append(Problem("error", name, line, f"{topic_id}: status must be draft or reviewed"))
            title = str(entry.get("title") or _default_title(kb.topics[topic_id], language))
            kb.answers[(language, topic_id)] = Answer(topic_id, language, text, status or "draft", title)
    for topic_id, topic in kb.topics.items():
        if (language, topic_id) not in kb.answers:
            kb.problems.append(
                Problem("error", f"knowledge/{language}/{topic.area}.yaml", None, f"{topic_id}: answer missing")
            )


def _default_title(topic: Topic, language: str) -> str:
    """topics.yaml titles are "German / English"; other languages give a `title` in their answers."""
    german, _sep, english = topic.title.partition(" / ")
    return {"de": german, "en": english or german}.get(language, "")


def _read_intents(root: Path, language: str, kb: KnowledgeBase) -> None:
    path = root / "intents" / f"{language}.yaml"
    data, lines = _read_yaml(path, kb, root)
    if data is None:
        return
    name = _rel(path, root)
    kb.intent_status[language] = str(data.get("status", "draft"))
    examples = data.get("examples") or {}
    if not isinstance(examples, dict):
        kb.problems.append(Problem("error", name, lines.get("examples"), "'examples' must map topic ids to lists"))
        examples = {}
    for topic_id, phrases in examples.items():
        topic_id = NULL_TOPIC if topic_id is None else str(topic_id)  # YAML reads a bare `null:` as None
        if topic_id not in kb.topics and topic_id != NULL_TOPIC:
            kb.problems.append(Problem("error", name, None, f"unknown topic id {topic_id!r} in examples"))
            continue
        if not isinstance(phrases, list) or not all(isinstance(p, (str, int, float)) for p in phrases):
            kb.problems.append(Problem("error", name, None, f"{topic_id}: examples must be a list of phrases"))
            continue
        kb.examples[topic_id][language] = [str(p) for p in phrases if str(p).strip()]
    for topic_id in kb.topics:
        count = len(kb.examples.get(topic_id, {}).get(language, []))
        if count == 0:
            kb.problems.append(Problem("error", name, None, f"{topic_id}: no examples"))
        elif count < MIN_EXAMPLES:
            kb.problems.append(Problem("warning", name, None, f"{topic_id}: only {count} examples"))
    phrases = data.get("emergency") or []
    if not isinstance(phrases, list) or not phrases:
        kb.problems.append(Problem("error", name, lines.get("emergency"), "'emergency' must list danger phrases"))
        phrases = []
    kb.emergency_phrases[language] = [str(p) for p in phrases if str(p).strip()]


def _check_duplicate_examples(kb: KnowledgeBase) -> None:
    """The same phrase under two topics teaches the matcher both; report it."""
    for language in kb.languages:
        seen: dict[str, str] = {}
        for topic_id, by_language in kb.examples.items():
            for phrase in by_language.get(language, []):
                key = normalise(phrase)
                if not key:  # emoji or punctuation only: nothing the matcher could learn from
                    continue
                other = seen.setdefault(key, topic_id)
                if other != topic_id:
                    kb.problems.append(
                        Problem(
                            "error",
                            f"intents/{language}.yaml",
                            None,
                            f"example {phrase!r} is under both {other} and {topic_id}",
                        )
                    )
