from bot.normalise import normalise, stems, tokens


def test_german_umlauts_and_sharp_s_fold_to_plain_letters() -> None:
    assert normalise("Ausländerbehörde") == normalise("auslanderbehorde")
    assert normalise("Straße") == "strasse"
    assert normalise("ÜBERGANG") == "ubergang"


def test_accents_of_other_latin_languages_are_removed() -> None:
    assert normalise("¿Dónde está la Oficina?") == "donde esta la oficina"
    assert normalise("şehir ığdır çok güzel") == "sehir igdir cok guzel"
    assert normalise("Știu că ţara") == "stiu ca tara"
    assert normalise("Zażółć gęślą") == "zazolc gesla"
    assert normalise("Đakovo") == "djakovo"


def test_arabic_letter_variants_and_diacritics_fold() -> None:
    assert normalise("إقامة") == normalise("اقامه")
    assert normalise("مُسْتَشْفَى") == normalise("مستشفي")
    assert normalise("كـــورس") == normalise("كورس")


def test_persian_and_arabic_forms_of_the_same_letters_match() -> None:
    assert normalise("کلاس آلمانی") == normalise("كلاس آلماني")
    assert normalise("می‌خواهم") == normalise("میخواهم")


def test_eastern_digits_become_ascii() -> None:
    assert normalise("۳۰۰ یورو") == normalise("300 یورو")
    assert normalise("٢٠٢٥") == "2025"


def test_punctuation_and_emoji_are_dropped() -> None:
    assert tokens("Hilfe!!! 😭 Wohnung??") == ["hilfe", "wohnung"]
    assert normalise("👍") == ""


def test_greek_and_cyrillic_are_case_folded_without_accents() -> None:
    assert normalise("Καλημέρα") == "καλημερα"
    assert normalise("ΜΆΘΗΜΑ") == normalise("μάθημα")
    assert normalise("Привіт") == "привіт"


def test_stems_join_inflected_forms() -> None:
    assert set(stems("wohnungen")) & set(stems("wohnung")) == {"wohnu"}
    assert "اقامه" in stems(normalise("والاقامة"))
    assert stems("123") == ()
