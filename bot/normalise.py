"""Text normalisation for matching: one canonical form per script, so that typing habits do not matter.

People type without accents, with Arabic instead of Persian letters, with or without the zero-width
non-joiner, in capitals or not. Everything here maps such variants onto one form before matching.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# Arabic and Persian letter variants folded onto one letter each; digits onto ASCII; Latin letters
# that have no accent to strip mapped to what people type without the special key.
_LETTER_VARIANTS = str.maketrans(
    {
        "أ": "ا",
        "إ": "ا",
        "آ": "ا",
        "ٱ": "ا",
        "ى": "ي",
        "ی": "ي",
        "ې": "ي",
        "ئ": "ي",
        "ك": "ک",
        "ڪ": "ک",
        "ة": "ه",
        "ۀ": "ه",
        "ە": "ه",
        "ؤ": "و",
        # Latin letters without a decomposition, typed as their plain look-alikes on foreign keyboards
        "ı": "i",
        "ł": "l",
        "đ": "dj",
        "œ": "oe",
        "æ": "ae",
        "ø": "o",
        "ـ": "",  # tatweel, a stretching stroke with no meaning
        "\u200c": "",
        "\u200d": "",
        "\u200b": "",
        "\ufeff": "",
        **{chr(0x0660 + i): str(i) for i in range(10)},
        **{chr(0x06F0 + i): str(i) for i in range(10)},
    }
)

_NON_WORD = re.compile(r"[^\w]+|_+")
_ARABIC_LETTER = re.compile(r"[\u0600-\u06ff]")

# Clitics written together with an Arabic-script word ("and", "with", "the", "for"; Persian plural and
# possessive endings). Stripped only when a stem of at least three letters remains.
_ARABIC_PREFIXES = ("وبال", "وال", "بال", "فال", "كال", "کال", "لل", "ال", "و", "ب", "ف", "ل")
_ARABIC_SUFFIXES = ("هايي", "هاي", "ها", "هام", "اتها", "ات", "ين", "ون", "هم", "كم", "کم", "نا", "ه", "ي")


class _CombiningMarks(dict[int, int | None]):
    """A translation table that drops combining marks, filled in as characters are first seen."""

    def __missing__(self, code: int) -> int | None:
        kept = None if unicodedata.combining(chr(code)) else code
        self[code] = kept
        return kept


_MARKS = _CombiningMarks()


def _without_marks(text: str) -> str:
    return unicodedata.normalize("NFD", text).translate(_MARKS)


@lru_cache(maxsize=65536)
def normalise(text: str) -> str:
    """Return the canonical matching form: NFKC, case-folded, without diacritics, letters only."""
    text = unicodedata.normalize("NFKC", text).casefold().translate(_LETTER_VARIANTS)
    return " ".join(_NON_WORD.sub(" ", _without_marks(text)).split())


def tokens(text: str) -> list[str]:
    """Split a message into normalised words."""
    return normalise(text).split()


def is_arabic_script(word: str) -> bool:
    return bool(_ARABIC_LETTER.match(word))


@lru_cache(maxsize=65536)
def stems(word: str) -> tuple[str, ...]:
    """Shorter forms of a normalised word that still carry its meaning, for matching inflected forms.

    Latin, Cyrillic and Greek words are cut to a five-letter prefix (enough to join "wohnung" and
    "wohnungen", "курс" forms, "kursu"); Arabic-script words lose their attached clitics.
    """
    if word.isdigit():
        return ()
    if is_arabic_script(word):
        found: list[str] = []
        stem = word
        for prefix in _ARABIC_PREFIXES:
            if stem.startswith(prefix) and len(stem) - len(prefix) >= 3:
                stem = stem[len(prefix) :]
                break
        for suffix in _ARABIC_SUFFIXES:
            if stem.endswith(suffix) and len(stem) - len(suffix) >= 3:
                found.append(stem)
                stem = stem[: -len(suffix)]
                break
        found.append(stem)
        return tuple(dict.fromkeys(s for s in found if s != word))
    if len(word) > 5:
        return (word[:5],)
    return ()
