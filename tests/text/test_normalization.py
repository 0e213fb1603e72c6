"""Normalization: Markdown, emoji, URLs and emails made speakable; every span maps back to the input."""

from __future__ import annotations

import re

import pytest

from tts_api.text.normalization import normalize
from tts_api.text.spans import NormalizedText

CASES = [
    # Markdown: the syntax goes, the words stay
    ("heading", "# Results\nWe won.", "Results.\nWe won."),
    ("heading-closing-hashes", "## Results ##", "Results."),
    ("heading-ending-in-punctuation", "# Why?", "Why?"),
    ("bold", "Some **bold** text", "Some bold text"),
    ("italic", "Some *italic* text", "Some italic text"),
    ("underscore-bold", "Some __bold__ text", "Some bold text"),
    ("underscore-italic", "Some _italic_ text", "Some italic text"),
    ("bold-italic", "Very ***strong*** words", "Very strong words"),
    ("strikethrough", "~~old~~ new", "old new"),
    ("nested-emphasis", "**bold and *italic* inside**", "bold and italic inside"),
    ("bold-label", "**Note:** read this", "Note: read this"),
    ("inline-code", "Run `pip install x` now", "Run pip install x now"),
    ("inline-code-keeps-underscores", "Call `__init__` first", "Call __init__ first"),
    ("fenced-code-keeps-code", "Try:\n```python\nprint(x)\n```\nDone.", "Try:\n\nprint(x)\n\nDone."),
    ("tilde-fence", "~~~\ncode\n~~~", "\ncode\n"),
    ("link", "See [the docs](https://example.com/docs) now", "See the docs now"),
    ("link-with-title", 'See [docs](https://x.org "Title") now', "See docs now"),
    ("image", "A ![cat on a mat](cat.png) here", "A cat on a mat here"),
    ("image-without-alt", "A ![](cat.png) here", "A here"),
    ("autolink", "Go to <https://example.com>.", "Go to example dot com."),
    ("bullets", "- apples\n* pears\n+ plums", "apples.\npears.\nplums."),
    ("ordered-list", "1. first\n2) second", "first.\nsecond."),
    ("task-list", "- [x] done\n- [ ] todo", "done.\ntodo."),
    ("list-item-with-punctuation", "- Really!\n- Yes, and:", "Really!\nYes, and:"),
    ("list-item-ending-in-bold", "- **Fast**", "Fast."),
    ("list-item-ending-in-emoji", "- Shipped ✅", "Shipped."),
    ("blockquote", "> quoted\n> > nested", "quoted\nnested"),
    ("horizontal-rules", "Above\n\n---\n\n***\n\nBelow", "Above\n\n\n\n\n\nBelow"),
    ("table", "| Name | Age |\n|------|----:|\n| Bob | 42 |", "Name, Age.\nBob, 42."),
    ("year-at-line-start-is-not-a-list", "1999. It was a year.", "1999. It was a year."),
    ("negative-number-is-not-a-bullet", "-5 degrees", "-5 degrees"),
    ("misaki-pronunciation-kept", "[Kokoro](/kˈOkəɹO/) is here", "[Kokoro](/kˈOkəɹO/) is here"),
    ("misaki-stress-kept", "[read](-1) it", "[read](-1) it"),
    ("snake-case-kept", "set max_chunk_chars now", "set max_chunk_chars now"),
    ("arithmetic-kept", "2*3*4 and a * b", "2*3*4 and a * b"),
    ("stray-asterisk-dropped", "Terms apply*", "Terms apply"),
    # URLs and emails
    ("url", "Visit https://www.example.com/docs now", "Visit example dot com slash docs now"),
    ("url-trailing-period", "Visit https://example.com.", "Visit example dot com."),
    ("url-www-only", "Visit www.example.com today", "Visit example dot com today"),
    ("url-query-and-fragment-dropped", "https://example.com/a.b?c=d#e", "example dot com slash a dot b"),
    ("url-port", "http://localhost:8080/api", "localhost colon 8080 slash api"),
    ("url-long-path-shortened", "https://example.com/a/b/c/d", "example dot com slash a slash b"),
    ("url-in-parentheses", "(see https://example.com/x)", "(see example dot com slash x)"),
    ("url-uppercase-scheme", "HTTPS://EXAMPLE.COM", "EXAMPLE dot COM"),
    ("email", "jane.doe@example.co.uk", "jane dot doe at example dot co dot uk"),
    (
        "email-separators",
        "bob_smith+tag@mail-server.org",
        "bob underscore smith plus tag at mail dash server dot org",
    ),
    ("mailto-autolink", "<mailto:a@b.io>", "a at b dot io"),
    ("bare-domain-left-to-misaki", "example.com", "example.com"),
    # Emoji and pictographs go entirely
    ("emoji", "Great job! 🎉 Next", "Great job! Next"),
    ("emoji-skin-tone", "Thanks 👍🏽!", "Thanks !"),
    ("emoji-flag", "Made in 🇺🇸 today", "Made in today"),
    ("emoji-zwj-family", "The 👨‍👩‍👧 came", "The came"),
    ("emoji-variation-selector", "I ❤️ it", "I it"),
    ("keycap-keeps-digit", "Step 1️⃣ first", "Step 1 first"),
    ("dingbats", "✅ done ★", "done"),
    ("invisible-characters", "zero\u200bwidth\ufeff", "zerowidth"),
    # Symbols: only the few that misaki mangles
    ("arrow", "A → B", "A to B"),
    ("ascii-arrow", "A -> B", "A to B"),
    ("tilde-number", "~5 km away", "about 5 km away"),
    ("ampersand-left-to-misaki", "R&D and salt & pepper", "R&D and salt & pepper"),
    ("plus-left-to-misaki", "C++ and 1 + 1", "C++ and 1 + 1"),
    ("copyright-kept", "© 2024 Acme™", "© 2024 Acme™"),
    # Numbers, money, dates and times are misaki's to read
    ("money", "$5.20 or £3", "$5.20 or £3"),
    ("thousands", "1,000,000 people", "1,000,000 people"),
    ("decimal-and-negative", "3.14 and -2.5", "3.14 and -2.5"),
    ("time", "at 10:30 a.m.", "at 10:30 a.m."),
    ("percent-and-date", "50% on 2024-03-15", "50% on 2024-03-15"),
    ("abbreviations", "Dr. Smith, e.g. the U.S.", "Dr. Smith, e.g. the U.S."),
    # Whitespace
    ("spaces-collapse", "a   b\t\tc", "a b c"),
    ("line-edges-trimmed", "  a  \n  b  ", "a\nb"),
    ("paragraph-breaks-kept", "a\n\nb", "a\n\nb"),
    ("pause-tag-untouched", "Wait [pause:1.5s] go", "Wait [pause:1.5s] go"),
]


@pytest.mark.parametrize(("raw", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_normalize_makes_text_speakable(raw: str, expected: str) -> None:
    assert normalize(raw).text == expected


NOTHING_TO_SAY = [
    "",
    "   ",
    "🎉🚀✨",
    "**  **",
    "---",
    "> ",
    "# ",
    "```\n```",
    "- ",
    "* * *",
    "| --- | --- |",
]


@pytest.mark.parametrize("raw", NOTHING_TO_SAY, ids=repr)
def test_markup_and_emoji_alone_leave_nothing_to_say(raw: str) -> None:
    assert not any(ch.isalnum() for ch in normalize(raw).text)


WORD_SPANS = [
    ("unchanged", "plain words here", "words", "words"),
    ("bold-maps-to-the-bare-word", "Some **bold** text", "bold", "bold"),
    ("after-deleted-emoji", "Hi 🎉 there", "there", "there"),
    ("link-text", "See [the docs](https://x.org) now", "docs", "docs"),
    ("after-link", "See [the docs](https://x.org) now", "now", "now"),
    ("heading", "## Results", "Results", "Results"),
    ("url-label", "Visit https://www.example.com/docs", "example", "example"),
    ("url-path", "Visit https://www.example.com/docs", "docs", "docs"),
    ("url-dot-maps-to-the-dot", "Visit https://example.com", "dot", "."),
    ("email-at-maps-to-the-at", "Mail a.b@c.org", " at ", "@"),
    ("arrow", "A → B", "to", "→"),
    ("collapsed-spaces", "a    b", " ", "    "),
]


@pytest.mark.parametrize(
    ("raw", "piece", "original"), [c[1:] for c in WORD_SPANS], ids=[c[0] for c in WORD_SPANS]
)
def test_original_span_points_at_what_the_user_wrote(raw: str, piece: str, original: str) -> None:
    result = normalize(raw)
    start = result.text.index(piece)
    span_start, span_end = result.original_span(start, start + len(piece))
    assert raw[span_start:span_end] == original


def test_whole_url_reading_maps_to_the_url() -> None:
    raw = "Visit https://www.example.com/docs now"
    result = normalize(raw)
    start = result.text.index("example")
    end = result.text.index("docs") + len("docs")
    span = result.original_span(start, end)
    assert raw[span[0] : span[1]] == "example.com/docs"


ROUND_TRIP_TEXTS = [
    "# Title\n\nSome **bold**, *italic* and `code`. See [docs](https://example.com/a/b).\n- item 🎉\n",
    "Mail jane.doe@example.co.uk → or visit https://www.example.com/docs?x=1 ~5 times.",
    "| a | b |\n|---|---|\n| 1 | 2 |\n\n> quote ❤️ **end**",
]


@pytest.mark.parametrize("raw", ROUND_TRIP_TEXTS, ids=["markdown", "addresses", "table-quote"])
def test_every_word_maps_back_in_order_inside_the_input(raw: str) -> None:
    result = normalize(raw)
    previous_end = 0
    for match in re.finditer(r"\w+", result.text):
        start, end = result.original_span(*match.span())
        assert 0 <= start <= end <= len(raw)
        assert start >= previous_end, "words map back in order, without overlapping"
        if match.group() in raw[start:end]:
            assert raw[start:end] == match.group(), "an unchanged word maps exactly onto itself"
        previous_end = end


def test_unchanged_text_maps_one_to_one() -> None:
    text = NormalizedText.unchanged("hello world")
    assert [text.original_span(a, b) for a, b in [(0, 5), (6, 11), (3, 3), (0, 11)]] == [
        (0, 5),
        (6, 11),
        (3, 3),
        (0, 11),
    ]


def test_slice_and_edit_compose_back_to_the_original() -> None:
    base = NormalizedText.unchanged("say **hi** to 🎉 Bob").edit([(4, 6, ""), (8, 10, ""), (14, 15, "")])
    assert base.text == "say hi to  Bob"
    part = base.slice(4, 14).edit([(5, 7, " ")])
    assert part.text == "hi to Bob"
    assert part.original_span(0, 2) == (6, 8)
    assert part.original_span(5, 6) == (13, 16), "the collapsed space covers the emoji it replaced"
    assert part.original_span(6, 9) == (16, 19)


def test_empty_span_maps_to_a_point() -> None:
    result = normalize("a **b** c")
    start, end = result.original_span(2, 2)
    assert start == end


@pytest.mark.parametrize("span", [(-1, 2), (3, 2), (0, 99)], ids=["negative", "reversed", "past-end"])
def test_out_of_range_span_is_rejected(span: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="outside the text"):
        normalize("hello").original_span(*span)


def test_overlapping_edits_are_rejected() -> None:
    with pytest.raises(ValueError, match="overlaps"):
        NormalizedText.unchanged("hello").edit([(0, 3, "x"), (2, 4, "y")])


ADVERSARIAL = {
    "stars-and-letters": "*a" * 50_000,
    "underscores": "_a " * 33_333,
    "open-links": "[a](" * 25_000,
    "many-links": "[a](b) " * 14_000,
    "backticks": "`a" * 50_000,
    "at-signs": "a@" * 50_000,
    "url-of-dots": "https://" + "a." * 49_995,
    "blank-lines": "\n \n" * 20_000,
    "spaces-then-hash": " " * 99_999 + "#",
    "emoji": "🎉" * 100_000,
}


@pytest.mark.parametrize("raw", ADVERSARIAL.values(), ids=ADVERSARIAL.keys())
def test_adversarial_input_completes(raw: str) -> None:
    result = normalize(raw)
    start, end = result.original_span(0, len(result.text))
    assert 0 <= start <= end <= len(raw)
