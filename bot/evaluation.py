"""`welcomebot eval`: how well the bot understands a labelled set of messages, printed as numbers.

Every line is a new person, sent through the same dispatcher as real messages. Expected topics of
kind "emergency" count as caught when the bot answers with the emergency path.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.dispatcher import Dispatcher
from bot.messages import Incoming


@dataclass
class Tally:
    total: int = 0
    right: int = 0

    def add(self, ok: bool) -> None:
        self.total += 1
        self.right += ok

    @property
    def rate(self) -> float:
        return self.right / self.total if self.total else 0.0

    def __str__(self) -> str:
        return f"{self.rate:6.1%} ({self.right}/{self.total})" if self.total else "     -"


@dataclass
class Report:
    kinds: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    in_scope_by_language: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    language_by_language: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    emergency_by_language: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    language: Tally = field(default_factory=Tally)
    confusions: Counter[tuple[str, str]] = field(default_factory=Counter)
    mistakes: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        def rates(tallies: dict[str, Tally]) -> dict[str, dict[str, float | int]]:
            return {
                k: {"rate": round(t.rate, 4), "right": t.right, "total": t.total} for k, t in sorted(tallies.items())
            }

        return {
            "kinds": rates(self.kinds),
            "language": {
                "rate": round(self.language.rate, 4),
                "right": self.language.right,
                "total": self.language.total,
            },
            "in_scope_by_language": rates(self.in_scope_by_language),
            "language_by_language": rates(self.language_by_language),
            "emergency_by_language": rates(self.emergency_by_language),
            "confusions": [[e, g, n] for (e, g), n in self.confusions.most_common()],
        }


def load_rows(path: Path, languages: tuple[str, ...] | None) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in rows if not languages or r.get("lang") in languages]


async def evaluate(dispatcher: Dispatcher, rows: list[dict[str, Any]]) -> Report:
    report = Report()
    started = time.perf_counter()
    for number, row in enumerate(rows):
        incoming = Incoming("eval", f"eval-{number}", f"eval-{number}", row["text"])
        replies = await dispatcher.handle(incoming)
        got = replies[0].topic
        if got is not None and got not in dispatcher.knowledge.topics:
            got = None
        got_language = replies[0].language
        expected, kind, language = row.get("topic"), row.get("kind", "in_scope"), row.get("lang", "?")
        ok = got == expected
        report.kinds[kind].add(ok)
        report.kinds["all"].add(ok)
        if kind == "in_scope":
            report.in_scope_by_language[language].add(ok)
        if kind == "emergency":
            report.emergency_by_language[language].add(ok)
        report.language.add(got_language == language)
        report.language_by_language[language].add(got_language == language)
        if not ok:
            report.confusions[(str(expected), str(got))] += 1
            report.mistakes.append({**row, "got": got, "got_lang": got_language, "confidence": replies[0].confidence})
    report.seconds = time.perf_counter() - started
    return report


def format_report(report: Report, show_mistakes: bool = False) -> str:
    lines = ["Accuracy by kind (right topic; null for out_of_scope):"]
    for kind in ("in_scope", "emergency", "human", "smalltalk", "out_of_scope", "all"):
        if kind in report.kinds:
            lines.append(f"  {kind:<14} {report.kinds[kind]}")
    lines.append(f"  {'language':<14} {report.language}")
    lines.append("")
    lines.append("Per language:      in-scope topic       language right       emergencies caught")
    for language in sorted(report.language_by_language, key=lambda k: -report.language_by_language[k].total):
        topic = report.in_scope_by_language[language]
        detected = report.language_by_language[language]
        emergency = report.emergency_by_language[language]
        lines.append(f"  {language:<6} {topic!s:>22} {detected!s:>20} {emergency!s:>22}")
    if report.confusions:
        lines.append("")
        lines.append("Most frequent confusions (expected -> got):")
        for (expected, got), count in report.confusions.most_common(20):
            lines.append(f"  {count:3d}  {expected} -> {got}")
    if show_mistakes:
        lines.append("")
        lines.append("Mistakes:")
        for m in report.mistakes:
            lines.append(
                f"  [{m['lang']}->{m['got_lang']}] {m.get('topic')} -> {m['got']} ({m['confidence']:.2f}): {m['text']}"
            )
    total = report.kinds["all"].total
    lines.append("")
    lines.append(
        f"{total} messages in {report.seconds:.2f} s ({report.seconds / max(total, 1) * 1000:.2f} ms per message)"
    )
    return "\n".join(lines)
