"""The bot's own words, per person: gettext catalogs looked up per language, never one global language.

Catalogs live in `translations/<lang>/LC_MESSAGES/messages.po` and are compiled with Babel
(`pybabel compile -d translations`); when a compiled `.mo` is missing or older than its `.po`, the
catalog is compiled in memory instead, so an edited translation is never silently ignored.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from functools import cache
from gettext import GNUTranslations, NullTranslations
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date
from babel.dates import format_time as format_time_only
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from bot.config import RTL_LANGUAGES

BERLIN = ZoneInfo("Europe/Berlin")
DOMAIN = "messages"


def N_(message: str) -> str:
    """Mark a string for translation where it is defined; it is translated where it is shown."""
    return message


class Catalogs:
    """Translations for every supported language, loaded lazily and cached."""

    def __init__(self, translations_dir: Path, languages: tuple[str, ...]) -> None:
        self.directory = translations_dir
        self.languages = languages
        self._cache: dict[str, NullTranslations] = {}

    def get(self, language: str) -> NullTranslations:
        """The catalog for `language`; English msgids where a translation is missing."""
        found = self._cache.get(language)
        if found is None:
            found = self._load(language)
            self._cache[language] = found
        return found

    def gettext(self, language: str, message: str) -> str:
        return self.get(language).gettext(message)

    def _load(self, language: str) -> NullTranslations:
        folder = self.directory / language / "LC_MESSAGES"
        po, mo = folder / f"{DOMAIN}.po", folder / f"{DOMAIN}.mo"
        if mo.exists() and (not po.exists() or mo.stat().st_mtime >= po.stat().st_mtime):
            with mo.open("rb") as handle:
                return GNUTranslations(handle)
        if po.exists():
            with po.open("rb") as handle:
                catalog = read_po(handle, locale=language)
            buffer = io.BytesIO()
            write_mo(buffer, catalog)
            buffer.seek(0)
            return GNUTranslations(buffer)
        return NullTranslations()


@cache
def language_name(language: str) -> str:
    """The language's name in its own language and script, e.g. "العربية", "Türkçe"."""
    name = Locale.parse(language).get_display_name(language) or language
    return name[:1].upper() + name[1:]


@cache
def language_name_in(language: str, display_language: str) -> str:
    """A language's name as staff read it, e.g. "Arabisch" in German."""
    return Locale.parse(language).get_display_name(display_language) or language


def format_time(moment: dt.datetime, language: str) -> str:
    """A date and time in the person's locale, in Stuttgart's time zone."""
    local = moment.astimezone(BERLIN)
    locale = Locale.parse(language)
    pattern = str(locale.datetime_formats["full"])  # e.g. "{1} 'um' {0}": date, then time
    date = format_date(local, "full", locale=locale)
    time = format_time_only(local, "short", locale=locale)
    return pattern.replace("'", "").format(time, date)


def isolate_ltr(text: str, language: str) -> str:
    """Keep Latin links, numbers and German words in order inside right-to-left text.

    Each line is given its paragraph direction explicitly, and left-to-right runs inside it are
    wrapped in first-strong isolates, which every current Telegram and Matrix client honours.
    """
    if language not in RTL_LANGUAGES:
        return text
    return "\n".join(_isolate_line(line) for line in text.split("\n"))


_LTR_RUN = re.compile(
    r"/?[A-Za-z0-9\u00C0-\u024F](?:[A-Za-z0-9\u00C0-\u024F:/.\-_?=&%#+@~§ ]*[A-Za-z0-9\u00C0-\u024F/])?"
)


def _isolate_line(line: str) -> str:
    if not line.strip():
        return line
    return "\u200f" + _LTR_RUN.sub(lambda m: "\u2066" + m.group(0) + "\u2069", line)
