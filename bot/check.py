"""`welcomebot check`: what is missing or broken in the content, per language, for editors and CI."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from babel.messages.pofile import PoFileError, read_po

from bot.knowledge import KnowledgeBase, Problem

SOURCE_LANGUAGE = "en"
REVIEW_HEADER = "Review-Status"  # "# Review-Status: draft|reviewed", the first comment of each catalog


@dataclass(frozen=True, slots=True)
class CatalogStatus:
    language: str
    translated: int
    missing: int
    status: str


def check_catalogs(translations: Path, languages: tuple[str, ...], problems: list[Problem]) -> dict[str, CatalogStatus]:
    """Every language needs a catalog with every message of the template translated.

    English is the catalogs' source language: its messages are the msgids themselves.
    """
    template_path = translations / "messages.pot"
    if not template_path.exists():
        problems.append(Problem("error", "translations/messages.pot", None, "template missing: run pybabel extract"))
        return {}
    with template_path.open("rb") as handle:
        template = read_po(handle)
    wanted = {m.id for m in template if m.id}
    result: dict[str, CatalogStatus] = {}
    for language in languages:
        if language == SOURCE_LANGUAGE:
            result[language] = CatalogStatus(language, len(wanted), 0, "reviewed")
            continue
        path = translations / language / "LC_MESSAGES" / "messages.po"
        name = f"translations/{language}/LC_MESSAGES/messages.po"
        if not path.exists():
            problems.append(Problem("error", name, None, "catalog missing"))
            continue
        try:
            with path.open("rb") as handle:
                catalog = read_po(handle, locale=language, abort_invalid=True)
        except (PoFileError, ValueError) as exc:
            problems.append(Problem("error", name, None, f"cannot read catalog: {exc}"))
            continue
        status = _review_status(path)
        translated = 0
        for message in catalog:
            if not message.id or message.id not in wanted:
                continue
            strings = message.string if isinstance(message.string, (list, tuple)) else (message.string,)
            if all(strings) and not message.fuzzy:
                translated += 1
            else:
                line = message.lineno or None
                problems.append(Problem("error", name, line, f"not translated: {str(message.id)[:60]!r}"))
        missing = len(wanted) - translated
        absent = len(wanted) - sum(1 for m in catalog if m.id in wanted)
        if absent:
            problems.append(
                Problem("error", name, None, f"{absent} messages of the template are absent: run pybabel update")
            )
        if status not in ("draft", "reviewed"):
            problems.append(
                Problem(
                    "error",
                    name,
                    None,
                    f"first comment '# {REVIEW_HEADER}: draft' or '...: reviewed' is missing or wrong",
                )
            )
        result[language] = CatalogStatus(language, translated, missing, status)
    return result


def _review_status(path: Path) -> str:
    """Kept as a comment because pybabel update keeps header comments but drops unknown header fields."""
    for line in path.read_text(encoding="utf-8").splitlines()[:20]:
        if line.startswith(f"# {REVIEW_HEADER}:"):
            return line.split(":", 1)[1].strip()
    return "missing"


def report(knowledge: KnowledgeBase, translations: Path) -> tuple[str, bool]:
    """The printed report and whether the content is free of errors."""
    problems = list(knowledge.problems)
    catalogs = check_catalogs(translations, knowledge.languages, problems)
    lines = ["Per language:   answers: missing  draft  reviewed | examples | UI catalog"]
    for language in knowledge.languages:
        statuses = Counter(answer.status for (code, _), answer in knowledge.answers.items() if code == language)
        missing = sum(1 for topic in knowledge.topics if (language, topic) not in knowledge.answers)
        examples = sum(len(by_language.get(language, [])) for by_language in knowledge.examples.values())
        catalog = catalogs.get(language)
        catalog_text = (
            f"{catalog.translated} translated, {catalog.missing} missing, {catalog.status}" if catalog else "missing"
        )
        counts = f"{missing:>21} {statuses['draft']:>6} {statuses['reviewed']:>9}"
        lines.append(f"  {language:<4} {counts} | {examples:>8} | {catalog_text}")
    errors = [p for p in problems if p.severity == "error"]
    warnings = [p for p in problems if p.severity == "warning"]
    if problems:
        lines.append("")
        lines.extend(str(p) for p in sorted(problems, key=lambda p: (p.severity, p.path, p.line or 0)))
    lines.append("")
    size = f"{len(knowledge.topics)} topics, {len(knowledge.languages)} languages"
    lines.append(f"{size}: {len(errors)} errors, {len(warnings)} warnings")
    return "\n".join(lines), not errors
