from bot.render import split_text, to_html


def test_person_text_is_escaped_and_links_are_clickable() -> None:
    out = to_html("<b>hi</b> & see https://example.org/a?b=1&c=2.", "en")
    assert "<b>" not in out and "&lt;b&gt;hi&lt;/b&gt; &amp;" in out
    assert '<a href="https://example.org/a?b=1&amp;c=2">' in out
    assert out.endswith("</a>.")


def test_rtl_text_keeps_links_outside_the_isolates_working() -> None:
    out = to_html("بیشتر:\nhttps://www.bamf.de/x", "fa")
    assert '<a href="https://www.bamf.de/x">' in out
    assert "\u2066<a" in out and "</a>\u2069" in out
    assert out.startswith("\u200f")


def test_long_text_is_split_at_paragraphs_without_losing_anything() -> None:
    paragraphs = [f"Paragraph {i} " + "word " * 40 for i in range(30)]
    text = "\n\n".join(p.strip() for p in paragraphs)
    parts = split_text(text, 1000)
    assert all(len(p) <= 1000 for p in parts)
    assert len(parts) > 1
    assert "\n\n".join(parts) == text
    assert all(p.startswith("Paragraph") for p in parts)


def test_a_single_huge_word_is_still_split() -> None:
    parts = split_text("x" * 2500, 1000)
    assert [len(p) for p in parts] == [1000, 1000, 500]
