"""Detection on phrases written for this test (not taken from the content or the dev set)."""

import pytest

from bot.knowledge import KnowledgeBase
from bot.language import LanguageDetector, dominant_script
from bot.wiring import language_samples

SAMPLES = [
    ("de", "Wo kann ich meinen Pass verlängern lassen, der Termin ist bald"),
    ("en", "my landlord wants me out of the flat by next week, what can i do"),
    ("ar", "ابني عمره ست سنين وين بسجله بالمدرسة"),
    ("fa", "پسرم شش سالشه، کجا باید ثبت نامش کنم برای مدرسه"),
    ("tr", "oglum alti yasinda okula nasil kaydettirebilirim"),
    ("uk", "Мій син має шість років, як записати його до школи?"),
    ("ru", "Моему сыну шесть лет, как записать его в школу?"),
    ("it", "mio figlio ha sei anni, come lo iscrivo a scuola?"),
    ("es", "mi hijo tiene seis años, ¿cómo lo inscribo en la escuela?"),
    ("el", "ο γιος μου είναι έξι χρονών, πώς τον γράφω στο σχολείο;"),
    ("fr", "mon fils a six ans, comment je l'inscris à l'école ?"),
    ("ro", "fiul meu are sase ani, cum il inscriu la scoala?"),
    ("pl", "moj syn ma szesc lat, jak go zapisac do szkoly?"),
    ("hr", "moj sin ima šest godina, kako ga upisati u školu?"),
    ("hr", "sin mi ima sest godina, kako da ga upisem u skolu, sta mi treba"),
    ("sq", "djali im eshte gjashte vjec, si ta regjistroj ne shkolle?"),
    ("ar", "ana badi a3mel kurs almani, kif bsajel?"),  # Arabizi
    ("fa", "salam, mikhastam bebinam chetori mitunam kelas almani sabtenam konam"),  # Finglish
]


@pytest.fixture(scope="module")
def detector(knowledge: KnowledgeBase) -> LanguageDetector:
    return LanguageDetector(language_samples(knowledge))


@pytest.mark.parametrize(("language", "text"), SAMPLES)
def test_detects_the_language_of_a_sentence(detector: LanguageDetector, language: str, text: str) -> None:
    assert detector.detect(text).language == language


def test_very_short_messages_keep_the_previous_language(detector: LanguageDetector) -> None:
    assert detector.detect("ok", previous="fa").language == "fa"
    assert detector.detect("Kita?", previous="ar").language == "ar"


def test_hint_decides_where_the_text_does_not(detector: LanguageDetector) -> None:
    assert detector.detect("🙂", hint="uk").language == "uk"
    assert detector.detect("Jobcenter", hint="tr").language == "tr"


def test_text_wins_over_a_wrong_hint(detector: LanguageDetector) -> None:
    assert detector.detect("Мій син має шість років, як записати його до школи?", hint="ru").language == "uk"


def test_unsupported_hint_is_ignored(detector: LanguageDetector) -> None:
    assert detector.detect("x", hint="ja").language in detector.languages


def test_dominant_script() -> None:
    assert dominant_script("كيف بسجل بكورس الاندماج Integrationskurs")[0] == "arabic"
    assert dominant_script("123 !!")[0] is None
