from bot.safety import EmergencyDetector, RateLimiter, clean


def test_bidi_overrides_zero_width_and_control_characters_are_removed() -> None:
    sent = "ich\u202e brauche\u200b hilfe\x00\x07 \u2066x\u2069"
    assert clean(sent, 100).text == "ich brauche hilfe x"


def test_persian_zero_width_non_joiner_is_kept() -> None:
    assert "\u200c" in clean("می\u200cخواهم", 100).text


def test_invisible_only_and_empty_messages_count_as_empty() -> None:
    assert clean("\u200b\u200b\u202e\x00", 100).empty
    assert clean("   \n\t ", 100).empty
    assert not clean("?", 100).empty


def test_lone_surrogates_from_broken_utf8_do_not_crash() -> None:
    result = clean("ok \udcff\ud800 fine", 100)
    assert "\ud800" not in result.text
    result.text.encode("utf-8")


def test_oversized_messages_are_flagged() -> None:
    assert clean("a" * 101, 100).too_long
    assert not clean("a" * 100, 100).too_long


def test_emergency_phrases_match_at_word_starts_in_latin_scripts() -> None:
    detector = EmergencyDetector({"en": ["fire", "kill myself"], "de": ["umbring"]})
    assert detector.detect("There is a FIRE in the house") == "fire"
    assert detector.detect("I want to kill myself") == "kill myself"
    assert detector.detect("er will mich umbringen") == "umbring"
    assert detector.detect("we sat at the bonfire") is None


def test_arabic_script_phrases_match_behind_attached_clitics() -> None:
    detector = EmergencyDetector({"ar": ["سكين"]})
    assert detector.detect("هددني بسكين") is not None
    assert detector.detect("السكن بعيد") is None


def test_rate_limiter_allows_a_burst_then_slows_one_person_only() -> None:
    now = [0.0]
    limiter = RateLimiter(per_minute=6, burst=3, clock=lambda: now[0])
    assert [limiter.allow("a") for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("b")
    now[0] += 10  # one token per 10 seconds
    assert limiter.allow("a")
    assert not limiter.allow("a")


def test_messages_that_waited_while_the_bot_was_down_are_no_flood() -> None:
    now = [10_000.0]
    limiter = RateLimiter(per_minute=6, burst=3, clock=lambda: now[0])
    sent_over_ten_minutes = [now[0] - 600 + 60 * i for i in range(10)]  # one a minute, handled all at once now
    assert all(limiter.allow("a", sent_at=t) for t in sent_over_ten_minutes)
    assert [limiter.allow("b", sent_at=now[0]) for _ in range(4)] == [True, True, True, False]
