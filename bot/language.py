"""Language detection restricted to the supported languages, learnt from our own content.

A naive Bayes model over character n-grams and words is trained at start-up on each language's
intent examples and answers. Examples written in another script than the language's own (Arabic in
Latin letters, "Arabizi"; Persian in Latin letters, "Finglish") form classes of their own, so such
messages are recognised instead of being taken for English. The script of a message decides which
classes compete; the chat app's language hint and the person's previous language tip the balance
where the text alone is not decisive.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

_SCRIPTS = {
    "arabic": re.compile(r"[\u0620-\u064a\u066e-\u06d3\u06fa-\u06ff\u0750-\u077f\ufb50-\ufdff\ufe70-\ufeff]"),
    "cyrillic": re.compile(r"[\u0400-\u052f]"),
    "greek": re.compile(r"[\u0370-\u03ff\u1f00-\u1fff]"),
    "latin": re.compile(r"[A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u1e00-\u1eff]"),
}
_MAX_CHARS = 160  # the start of a message says which language it is in; the rest only costs time
_SHORT_LETTERS = 8  # fewer letters than this and the previous language stands
_HINT_BONUS = 1.5  # log-odds added for the language the chat app reports
_PREVIOUS_BONUS = 2.5  # log-odds added for the language the person used before
_SMOOTHING = 0.5


@dataclass(frozen=True, slots=True)
class Detection:
    language: str
    confidence: float


class _ScriptLetters(dict[int, str | None]):
    """A translation table that turns each letter into the initial of its script and drops the rest."""

    def __missing__(self, code: int) -> str | None:
        char = chr(code)
        script = next((name for name, pattern in _SCRIPTS.items() if pattern.match(char)), None)
        self[code] = script[0] if script else None
        return self[code]


_SCRIPT_LETTERS = _ScriptLetters()


def dominant_script(text: str) -> tuple[str | None, int]:
    """The script most letters of `text` are written in, and how many letters it has."""
    initials = text.translate(_SCRIPT_LETTERS)
    counts = {name: initials.count(name[0]) for name in _SCRIPTS}
    script = max(counts, key=counts.__getitem__)
    total = sum(counts.values())
    return (script, total) if total else (None, 0)


_NOT_LETTERS = re.compile(r"[\W\d_]+")


def _prepare(text: str) -> str:
    text = unicodedata.normalize("NFKC", text[:_MAX_CHARS]).casefold()
    return " ".join(_NOT_LETTERS.sub(" ", text).split())


def _features(prepared: str) -> list[str]:
    """Words, and the letter pairs and triples of each word with its edges marked."""
    features: list[str] = []
    for word in prepared.split():
        features.append("w" + word)
        padded = f" {word} "
        features.extend([a + b for a, b in pairwise(padded)])
        features.extend([a + b + c for a, b, c in zip(padded, padded[1:], padded[2:], strict=False)])
    return features


class LanguageDetector:
    """Tells which supported language a message is in."""

    def __init__(self, samples: Mapping[str, Iterable[str]], default: str = "en") -> None:
        """`samples` maps a language code to texts written in it (examples, answers)."""
        self.languages = tuple(samples)
        self.default = default if default in samples else self.languages[0]
        counts: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
        for language, texts in samples.items():
            for text in texts:
                script, letters = dominant_script(text)
                if script and letters:
                    counts[(language, script)].update(_features(_prepare(text)))
        # A class needs enough text to be trusted: a few stray Latin words are no "Arabizi".
        self._classes = [c for c, n in counts.items() if sum(n.values()) >= 400]
        vocabulary = sorted({f for c in self._classes for f in counts[c]})
        self._index = {f: i for i, f in enumerate(vocabulary)}
        table = np.empty((len(vocabulary) + 1, len(self._classes)), dtype=np.float32)
        for j, cls in enumerate(self._classes):
            total = sum(counts[cls].values()) + _SMOOTHING * (len(vocabulary) + 1)
            column = np.full(len(vocabulary) + 1, math.log(_SMOOTHING / total), dtype=np.float32)
            seen = np.fromiter((self._index[f] for f in counts[cls]), dtype=np.intp, count=len(counts[cls]))
            frequency = np.fromiter(counts[cls].values(), dtype=np.float64, count=len(counts[cls]))
            column[seen] = np.log((frequency + _SMOOTHING) / total)
            table[:, j] = column
        self._table = table
        self._unseen_row = len(vocabulary)
        self._script_columns = {
            script: np.array([j for j, c in enumerate(self._classes) if c[1] == script], dtype=np.intp)
            for script in {c[1] for c in self._classes}
        }

    def detect(self, text: str, hint: str | None = None, previous: str | None = None) -> Detection:
        """Detect the language of `text`; `hint` is the app's language, `previous` the person's last one."""
        hint = hint if hint in self.languages else None
        previous = previous if previous in self.languages else None
        fallback = previous or hint or self.default
        script, letters = dominant_script(text)
        columns = self._script_columns.get(script or "")
        if columns is None or len(columns) == 0:
            return Detection(fallback, 0.0)
        if (letters < _SHORT_LETTERS or len(text.split()) < 2) and (previous or hint):
            # one word ("Kindergeld", "ok") says nothing about the language a person speaks
            return Detection(previous or hint or self.default, 0.5)
        rows = [self._index.get(f, self._unseen_row) for f in _features(_prepare(text))]
        scores = self._table[rows][:, columns].sum(axis=0, dtype=np.float64)
        # Long texts speak for themselves: scale the evidence per feature so the bonuses keep one weight.
        scores = scores / max(len(rows), 1) * min(len(rows), 40)
        languages = [self._classes[j][0] for j in columns]
        for k, language in enumerate(languages):
            if language == hint:
                scores[k] += _HINT_BONUS
            if language == previous:
                scores[k] += _PREVIOUS_BONUS
        best = int(np.argmax(scores))
        probabilities = np.exp(scores - scores[best])
        return Detection(languages[best], float(1.0 / probabilities.sum()))
