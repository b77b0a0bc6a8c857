"""`welcomebot check` must find each kind of content error in a broken fixture, and none in ours."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bot.check import report
from bot.knowledge import load

BROKEN = Path(__file__).parent / "fixtures" / "broken"
PROJECT = Path(__file__).parent.parent


def broken_report() -> tuple[str, bool]:
    return report(load(BROKEN, ("en", "de")), BROKEN / "translations")


def test_broken_fixture_fails_the_check() -> None:
    _, ok = broken_report()
    assert not ok


def test_each_kind_of_error_is_reported_with_its_file() -> None:
    text, _ = broken_report()
    expected = [
        "knowledge/sources/housing.yaml:4: YAML error",  # syntax error with file and line
        "knowledge/sources/german.yaml:8: unknown topic id 'german.no_such_topic'",
        "german.certificate: answer has no source",
        "german.certificate: 'checked' must be a date",
        "knowledge/en/german.yaml:1: german.find_course: answer has 999 characters",  # over-long
        "german.certificate: answer is empty",
        "unknown topic id 'german.typo_topic'",
        "housing.find_flat: answer missing",
        "knowledge/de: no answers for language 'de'",  # missing language
        "intents/de.yaml: file is missing",
        "unknown topic id 'no.such_topic' in examples",
        "is under both german.find_course and german.certificate",  # the same example twice
        "housing.find_flat: only 1 examples",
        "not translated: 'Hello'",
        "1 messages of the template are absent",
        "Review-Status: draft' or '...: reviewed' is missing or wrong",
    ]
    missing = [e for e in expected if e not in text]
    assert not missing, text


def test_the_command_exits_non_zero_on_errors() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "check", "--content", str(BROKEN), "--languages", "en,de"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "errors" in result.stdout


def test_the_project_content_passes_the_check() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "check"], capture_output=True, text=True, check=False, cwd=PROJECT
    )
    assert result.returncode == 0, result.stdout[-3000:]
