"""Fuzzy intent matching: find the topic a message is about, with a confidence and runner-up topics.

Every topic is one document made of its example phrases in all languages, so a message that mixes
languages ("كيف بسجل Integrationskurs") finds each word where it is known. A message word counts for a
topic when the word itself, its stem, or a near spelling of it (rapidfuzz) appears in the topic's
examples; the confidence is the share of the message's informative words that the topic explains.
A second rapidfuzz pass compares the whole message with the best topics' examples, which rescues
short fragments and heavy misspellings.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise

from rapidfuzz import fuzz, process

from bot.normalise import normalise, stems

NULL_TOPIC = "null"  # pseudo-topic of out-of-scope examples; a message that matches it gets no topic

_STEM_WEIGHT = 0.8
_UNKNOWN_WEIGHT = 1.0  # share of the highest word weight given to words no example contains
_PHRASE_WEIGHT = 0.25  # share of the whole-message comparison in the final score
_FUZZY_MIN = 84  # rapidfuzz ratio from which a misspelt word counts as the known word
_FUZZY_MIN_LEN = 4


@dataclass(frozen=True, slots=True)
class Match:
    """What the matcher understood: a topic or None, how sure it is, and what else it might be."""

    topic: str | None
    confidence: float
    alternatives: tuple[str, ...] = ()
    scores: tuple[tuple[str, float], ...] = ()

    @property
    def best_score(self) -> float:
        return self.scores[0][1] if self.scores else 0.0

    def score(self, topic: str) -> float:
        """The score `topic` got for this message (0 if it was not among the best)."""
        return dict(self.scores).get(topic, 0.0)


class Matcher:
    """Ranks all topics for a message; built once at start-up from the intent examples."""

    def __init__(
        self,
        examples: Mapping[str, Mapping[str, Sequence[str]]],
        threshold: float = 0.38,
        alternative_ratio: float = 0.7,
    ) -> None:
        """`examples` maps topic id to {language: [phrases]}."""
        self.threshold = threshold
        self.alternative_ratio = alternative_ratio
        self._postings: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self._examples: dict[str, dict[str, list[str]]] = defaultdict(dict)
        words: set[str] = set()
        for topic, by_language in examples.items():
            for language, phrases in by_language.items():
                normalised = [normalise(p) for p in phrases]
                self._examples[topic][language] = [n for n in normalised if n]
                for phrase in normalised:
                    for word in set(phrase.split()):
                        words.add(word)
                        for feature in _features(word):
                            self._postings[feature][topic] += 1.0
        topic_count = max(len(self._examples), 1)
        self._idf = {f: math.log(1 + topic_count / len(p)) for f, p in self._postings.items()}
        self._unknown_idf = math.log(1 + topic_count) * _UNKNOWN_WEIGHT
        # Share of a feature's occurrences that fall in each topic: how typical it is of that topic.
        self._typicality = {
            f: {t: 0.5 + 0.5 * n / max(p.values()) for t, n in p.items()} for f, p in self._postings.items()
        }
        self._words_by_initial: dict[str, list[str]] = defaultdict(list)
        for word in words:
            if len(word) >= _FUZZY_MIN_LEN:
                self._words_by_initial[word[0]].append(word)
        self._near_cache: dict[str, tuple[str, float] | None] = {}

    def match(self, text: str, language: str | None = None) -> Match:
        """Rank every topic for `text`; `language` narrows the whole-message comparison."""
        words = normalise(text).split()
        if not words:
            return Match(None, 0.0)
        # "hosca kal" / "hoşçakal", "deutsch kurs" / "Deutschkurs": a pair written apart may be one known word
        words += [
            a + b
            for a, b in pairwise(words)
            if "w:" + a + b in self._postings and not ("w:" + a in self._postings and "w:" + b in self._postings)
        ]
        totals: dict[str, float] = defaultdict(float)
        weight_sum = 0.0
        for word in dict.fromkeys(words):
            weight, strengths = self._word_evidence(word)
            weight_sum += weight
            for topic, strength in strengths.items():
                totals[topic] += weight * strength
        if not totals or weight_sum == 0:
            return Match(None, 0.0)
        coverage = {t: s / weight_sum for t, s in totals.items()}
        ranked = sorted(coverage.items(), key=lambda item: item[1], reverse=True)[:6]
        rescored = self._rescore(ranked, " ".join(words), language)
        best_topic, best = rescored[0]
        alternatives = tuple(
            t
            for t, s in rescored[1:4]
            if t != NULL_TOPIC and s >= best * self.alternative_ratio and s >= self.threshold * 0.6
        )
        scores = tuple((t, round(s, 4)) for t, s in rescored)
        if best_topic == NULL_TOPIC or best < self.threshold:
            shown = tuple(t for t, s in rescored if t != NULL_TOPIC and s >= self.threshold * 0.6)[:3]
            return Match(None, best if best_topic != NULL_TOPIC else 0.0, shown, scores)
        return Match(best_topic, min(best, 1.0), alternatives, scores)

    def _rescore(self, ranked: list[tuple[str, float]], phrase: str, language: str | None) -> list[tuple[str, float]]:
        """Blend in the whole-message comparison, best first.

        The comparison is the costly part, so a topic whose coverage leaves it no chance to be the
        answer or an alternative, even with a perfect comparison, is not compared; if no topic ends
        up answering, those are compared after all, since "did you mean" then lists them too.
        """

        def blended(topic: str, coverage: float) -> float:
            similarity = self._phrase_similarity(topic, phrase, language)
            return (1 - _PHRASE_WEIGHT) * coverage + _PHRASE_WEIGHT * similarity

        scores: dict[str, float] = {}
        skipped: list[tuple[str, float]] = []
        best = 0.0
        for topic, coverage in ranked:
            ceiling = (1 - _PHRASE_WEIGHT) * coverage + _PHRASE_WEIGHT
            if best >= self.threshold and ceiling < best * self.alternative_ratio:
                skipped.append((topic, coverage))
                continue
            scores[topic] = blended(topic, coverage)
            if topic != NULL_TOPIC:
                best = max(best, scores[topic])
        winner = max(scores, key=lambda t: scores[t])
        if winner == NULL_TOPIC or scores[winner] < self.threshold:
            scores.update((topic, blended(topic, coverage)) for topic, coverage in skipped)
        return sorted(scores.items(), key=lambda item: item[1], reverse=True)

    def _word_evidence(self, word: str) -> tuple[float, dict[str, float]]:
        """How informative a message word is, and how strongly it points to each topic."""
        strengths: dict[str, float] = {}
        idf = 0.0
        for feature, factor in self._known_features(word):
            idf = max(idf, self._idf[feature])
            for topic, typical in self._typicality[feature].items():
                value = factor * typical
                if value > strengths.get(topic, 0.0):
                    strengths[topic] = value
        if not strengths:
            return (self._unknown_idf if not word.isdigit() else 0.2), {}
        return idf, strengths

    def _known_features(self, word: str) -> Iterable[tuple[str, float]]:
        found = False
        for feature in _features(word):
            if feature in self._postings:
                found = True
                yield feature, (1.0 if feature.startswith("w:") else _STEM_WEIGHT)
        if not found and len(word) >= _FUZZY_MIN_LEN:
            near = self._nearest_word(word)
            if near is not None:
                known, similarity = near
                yield "w:" + known, similarity / 100 * 0.9

    def _nearest_word(self, word: str) -> tuple[str, float] | None:
        """The known word closest in spelling (same first letter), remembered: typos repeat."""
        if word in self._near_cache:
            return self._near_cache[word]
        found = _nearest(word, self._words_by_initial.get(word[0], ()))
        if len(self._near_cache) < 50_000:
            self._near_cache[word] = found
        return found

    def _phrase_similarity(self, topic: str, phrase: str, language: str | None) -> float:
        by_language = self._examples.get(topic, {})
        choices = by_language.get(language, ()) if language else ()
        if not choices:
            choices = [p for phrases in by_language.values() for p in phrases]
        found = process.extractOne(phrase, choices, scorer=fuzz.token_set_ratio)
        return found[1] / 100 if found else 0.0


@lru_cache(maxsize=65536)
def _features(word: str) -> tuple[str, ...]:
    return ("w:" + word, *("s:" + s for s in stems(word)))


def _nearest(word: str, candidates: Sequence[str]) -> tuple[str, float] | None:
    if not candidates:
        return None
    found = process.extractOne(word, candidates, scorer=fuzz.ratio, score_cutoff=_FUZZY_MIN)
    return (found[0], found[1]) if found else None
