"""Safety first: recognising emergencies, cleaning what people send, and limiting floods."""

from __future__ import annotations

import time
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from bot.normalise import is_arabic_script, normalise

# Characters that change how text is displayed without being visible: direction overrides and
# isolates (they can make a message read differently to staff than what was sent), zero-width
# spaces and the byte-order mark. ZWNJ and ZWJ stay: Persian spelling and emoji need them.
_INVISIBLE = dict.fromkeys(
    [*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200B, 0x2060, 0xFEFF, 0x200E, 0x200F, 0x061C], None
)


@dataclass(frozen=True, slots=True)
class CleanText:
    text: str
    empty: bool  # nothing readable was left
    too_long: bool


def clean(text: str, max_chars: int) -> CleanText:
    """Remove what must never reach the matcher or staff: NUL and control characters, bidi overrides,
    invisible characters and unpaired surrogates (invalid UTF-8 decoded leniently)."""
    text = text.encode("utf-8", "replace").decode("utf-8")
    text = text.translate(_INVISIBLE)
    text = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cs", "Co", "Cn"))
    text = "\n".join(line.strip() for line in text.strip().splitlines())
    readable = any(ch.isalnum() or unicodedata.category(ch).startswith(("S", "P")) for ch in text)
    return CleanText(text=text, empty=not readable, too_long=len(text) > max_chars)


class EmergencyDetector:
    """Finds danger phrases of any supported language in a message.

    Latin, Cyrillic and Greek phrases must start at a word start, so "fire" does not fire on
    "bonfire" but "umbring" still catches "umbringen"; Arabic-script phrases may follow attached
    clitics, so they are found anywhere.
    """

    def __init__(self, phrases: Mapping[str, Sequence[str]]) -> None:
        self._anywhere: list[str] = []
        self._by_initial: dict[str, list[str]] = defaultdict(list)
        for language_phrases in phrases.values():
            for phrase in language_phrases:
                key = normalise(phrase)
                if not key:
                    continue
                if is_arabic_script(key):
                    self._anywhere.append(key)
                else:
                    self._by_initial[key[:2]].append(key)

    def detect(self, text: str) -> str | None:
        """The danger phrase found in `text`, or None."""
        normalised = " " + normalise(text) + " "
        for phrase in self._anywhere:
            if phrase in normalised:
                return phrase
        position = 0
        while position < len(normalised) - 1:
            start = position + 1
            for phrase in self._by_initial.get(normalised[start : start + 2], ()):
                if normalised.startswith(phrase, start):
                    return phrase
            position = normalised.find(" ", start)
            if position < 0:
                break
        return None


class RateLimiter:
    """A token bucket per person: bursts are fine, floods are slowed, others are unaffected."""

    def __init__(self, per_minute: int, burst: int, clock: Callable[[], float] = time.time) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, person: str, sent_at: float | None = None) -> bool:
        """Whether `person` may send now. `sent_at` (when the platform received the message) counts
        instead of the time of handling, so messages that waited while the bot was down are no flood."""
        now = self.clock()
        if sent_at is not None and sent_at < now:
            now = sent_at
        tokens, last = self._buckets.get(person, (self.burst, now))
        tokens = min(self.burst, tokens + max(0.0, now - last) * self.rate)
        now = max(now, last)
        allowed = tokens >= 1.0
        self._buckets[person] = (tokens - 1.0 if allowed else tokens, now)
        if len(self._buckets) > 100_000:  # forget people whose buckets are full again
            full = [p for p, (t, seen) in self._buckets.items() if t + (now - seen) * self.rate >= self.burst]
            for p in full:
                del self._buckets[p]
        return allowed

    def wait_seconds(self, person: str) -> float:
        """How long until `person` may send the next message."""
        tokens, _ = self._buckets.get(person, (self.burst, self.clock()))
        return max(0.0, (1.0 - tokens) / self.rate)
