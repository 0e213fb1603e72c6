"""Chunk planning: a short first chunk, growing chunks, natural cut points, exact pauses, original spans."""

from __future__ import annotations

import itertools
import re

import pytest

from tts_api.text.normalization import normalize
from tts_api.text.planning import (
    FIRST_CHUNK_CHARS,
    GAP_AFTER_S,
    MAX_CHUNK_CHARS,
    Chunk,
    has_speech,
    plan_chunks,
)
from tts_api.text.segmentation import MAX_PAUSE_S, InvalidPauseTag

# Small budgets force many cuts in short test sentences.
SMALL = {"first_chunk_chars": 20, "max_chunk_chars": 80}

LONG_PARAGRAPH = (
    "Kokoro is an open-weight text-to-speech model with 82 million parameters. Despite its lightweight "
    "architecture, it delivers quality comparable to larger models while being significantly faster and "
    "more cost-efficient. With Apache-licensed weights, Kokoro can be deployed anywhere from production "
    "environments to personal projects. Dr. Smith, who works in the U.S., said on Jan. 5 at 10:30 a.m. that "
    "it costs $1,000,000."
)


def speech(chunks: list[Chunk]) -> list[Chunk]:
    return [chunk for chunk in chunks if not chunk.is_pause]


def texts(chunks: list[Chunk]) -> list[str]:
    return [chunk.text for chunk in speech(chunks)]


FIRST_CHUNKS = [
    ("short-text-is-one-chunk", "Dr. Smith went to Washington.", "Dr. Smith went to Washington."),
    (
        "short-sentence-first",
        "Hi. My name is Bob and I am going to tell you a very long story about the old days.",
        "Hi.",
    ),
    (
        "clause-first",
        "When the meeting ended, everyone left the room quietly and went home to their families for dinner.",
        "When the meeting ended,",
    ),
    (
        "more-than-a-tiny-first-word",
        "Hello, I'm here to tell you about our new product line which launches tomorrow morning at nine.",
        "Hello, I'm here to tell",
    ),
    (
        "abbreviation-is-not-a-sentence-end",
        "Dr. Smith and Mr. Jones met Mrs. Brown at St. Mary's church on a very cold winter morning.",
        "Dr. Smith",
    ),
    (
        "a-one-sentence-request-is-cut-after-a-few-words",
        "Clara walked home along the river at dusk.",
        "Clara walked home along",
    ),
    (
        "a-first-sentence-a-little-over-budget-stays-whole",
        "We walked along the river at dusk. The sun went down behind the hills and it got cold.",
        "We walked along the river at dusk.",
    ),
]


@pytest.mark.parametrize(("text", "first"), [c[1:] for c in FIRST_CHUNKS], ids=[c[0] for c in FIRST_CHUNKS])
def test_first_chunk_is_short_and_natural(text: str, first: str) -> None:
    assert plan_chunks(text)[0].text == first


def test_long_text_starts_short_then_grows_to_the_cap() -> None:
    chunks = plan_chunks("The cat sat on the mat and looked at the birds outside. " * 30)
    sizes = [len(chunk.text) for chunk in chunks]
    assert 20 <= sizes[0] <= FIRST_CHUNK_CHARS
    assert sizes[:-1] == sorted(sizes[:-1]), "sizes never shrink before the last chunk"
    assert max(sizes) > MAX_CHUNK_CHARS * 0.8
    assert all(size <= MAX_CHUNK_CHARS for size in sizes)


def test_uniform_words_grow_without_shrinking() -> None:
    sizes = [len(chunk.text) for chunk in plan_chunks(" ".join(["word"] * 600))]
    assert sizes[0] <= FIRST_CHUNK_CHARS
    assert sizes[:-1] == sorted(sizes[:-1])
    assert sizes[-2] > MAX_CHUNK_CHARS - len(" word")


def test_long_sentence_without_punctuation_splits_between_words() -> None:
    words = [f"w{'x' * (k % 9)}" for k in range(400)]
    chunks = plan_chunks(" ".join(words))
    assert len(chunks[0].text) <= FIRST_CHUNK_CHARS
    assert all(len(chunk.text) <= MAX_CHUNK_CHARS for chunk in chunks)
    assert [word for chunk in chunks for word in chunk.text.split()] == words
    assert {chunk.boundary for chunk in chunks[:-1]} == {"word"}


def test_single_two_thousand_character_word_is_split_to_fit() -> None:
    word = "x" * 2000
    chunks = plan_chunks(word)
    assert len(chunks[0].text) <= FIRST_CHUNK_CHARS
    assert all(0 < len(chunk.text) <= MAX_CHUNK_CHARS for chunk in chunks)
    assert "".join(chunk.text for chunk in chunks) == word
    assert [(chunk.start, chunk.end) for chunk in chunks][-1][1] == 2000


def test_long_url_is_split_after_a_separator() -> None:
    url = "https://example.com/" + "/".join(["segment"] * 120)
    chunks = plan_chunks(url, normalize=False)
    assert "".join(chunk.text for chunk in chunks) == url
    assert all(chunk.text.endswith("/") for chunk in chunks[:-1])


@pytest.mark.parametrize(
    ("text", "chunk"),
    [
        ("The total comes to $1,249.99, including tax.", "to $1,249.99,"),
        ("In 1969, Apollo 11 landed on the Moon, 384,400 kilometers away.", "In 1969,"),
        ("Error 404: the page you requested could not be found.", "Error 404:"),
    ],
)
def test_a_word_is_not_left_alone_before_a_big_number(text: str, chunk: str) -> None:
    # A number misaki reads long overflows the budget; the word before it once came out alone ("to",
    # "In"), read by Kokoro with a melody of its own.
    texts = [c.text for c in plan_chunks(text)]
    assert chunk in texts
    assert all(len(c.split()) > 1 or c[-1] in ".!?" for c in texts)


def test_digits_count_as_several_characters() -> None:
    # misaki reads "7777777" as "seven million seven hundred…": far more phonemes than characters.
    chunks = plan_chunks("7777777 " * 200)
    assert all(len(chunk.text) <= MAX_CHUNK_CHARS / 4 for chunk in chunks)


NEVER_SPLIT = [
    (
        "thousands",
        "The total was 1,000,000 and the rest of this sentence keeps going for a while.",
        "1,000,000",
    ),
    ("decimal", "The value of pi is 3.14 and the rest of this sentence keeps going on and on.", "3.14"),
    (
        "negative-decimal",
        "The temperature was -2.5 degrees in the morning and it got colder later on.",
        "-2.5",
    ),
    ("time", "The train leaves at 10:30 from the central station near the old town hall.", "10:30"),
    (
        "url",
        "Please visit https://example.com/a.b?c=d for more details about the product.",
        "example.com/a.b?c=d",
    ),
    (
        "email",
        "Please write to jane.doe@example.co.uk for more details about the product.",
        "jane.doe@example",
    ),
    (
        "year-range",
        "It was 1990—2000 and the result was good for everyone involved in the work.",
        "1990—2000",
    ),
    (
        "misaki-phonemes",
        "We say [Kokoro](/kˈOkəɹO/) like this every time we meet at the old house.",
        "[Kokoro]",
    ),
    ("title", "Yesterday I saw Dr. Smith at the big old market in town with two friends.", "Dr. Smith"),
    ("initial", "The speech by John F. Kennedy was remembered by many people for a long time.", "F. Kennedy"),
    ("time-and-unit", "We met at 5 p.m. and then went home to rest for a while before dinner.", "5 p.m."),
]


@pytest.mark.parametrize(("text", "whole"), [c[1:] for c in NEVER_SPLIT], ids=[c[0] for c in NEVER_SPLIT])
@pytest.mark.parametrize("normalized", [False, True], ids=["raw", "normalized"])
def test_numbers_addresses_and_abbreviations_stay_in_one_chunk(
    text: str, whole: str, normalized: bool
) -> None:
    chunks = plan_chunks(text, normalize=normalized, **SMALL)
    assert len(chunks) > 2, "the small budget forces cuts"
    if normalized:  # addresses are read aloud: check that no cut falls inside the original span
        start = text.index(whole)
        assert not any(start < chunk.start < start + len(whole) for chunk in chunks)
    else:
        assert any(whole in chunk.text for chunk in chunks)


NOT_SENTENCE_ENDS = [
    ("title", "I saw Dr. Smith and his two friends at the market.", "Dr."),
    ("e-g", "Bring fruit e.g. apples and pears to the party.", "e.g."),
    ("i-e", "Bring the fruit i.e. apples and pears to the party.", "i.e."),
    ("dotted-acronym", "He moved to the U.S. and then to Spain for work.", "U.S."),
    ("time-of-day", "We met at 5 p.m. and then went home for dinner.", "p.m."),
    ("etc", "Bring apples and pears etc. and then come home again.", "etc."),
]


@pytest.mark.parametrize(
    ("text", "abbreviation"), [c[1:] for c in NOT_SENTENCE_ENDS], ids=[c[0] for c in NOT_SENTENCE_ENDS]
)
def test_abbreviation_before_lowercase_is_not_a_sentence_end(text: str, abbreviation: str) -> None:
    # Were it a sentence end, the planner would cut right after it; a word cut goes further.
    first = plan_chunks(text, first_chunk_chars=40, max_chunk_chars=80)[0]
    assert abbreviation in first.text
    assert not first.text.endswith(abbreviation)
    assert first.boundary != "sentence"


CUT_KINDS = [
    ("sentence", "First sentence here. Second one follows and keeps going on.", "sentence"),
    ("exclamation", "What a day it was! Second one follows and keeps going on.", "sentence"),
    ("question", "Did you see it too? Second one follows and keeps going on.", "sentence"),
    ("comma", "After the long meeting, everyone went straight home to sleep.", "clause"),
    ("semicolon", "The meeting ran long; everyone went straight home to sleep.", "clause"),
    ("em-dash", "The meeting ran long — everyone went straight home to sleep.", "clause"),
    ("single-newline", "The meeting ran long\neveryone went straight home to sleep.", "clause"),
]


@pytest.mark.parametrize(("text", "kind"), [c[1:] for c in CUT_KINDS], ids=[c[0] for c in CUT_KINDS])
def test_cut_prefers_punctuation_and_reports_its_kind(text: str, kind: str) -> None:
    first = plan_chunks(text, first_chunk_chars=30, max_chunk_chars=60)[0]
    assert first.boundary == kind
    assert first.gap_after_s == GAP_AFTER_S[kind]
    assert "\n" not in first.text


def test_gaps_grow_with_the_strength_of_the_boundary() -> None:
    gaps = GAP_AFTER_S
    assert gaps["end"] == gaps["pause"] == 0.0
    assert 0 <= gaps["word"] < gaps["clause"] < gaps["sentence"] < gaps["paragraph"]


@pytest.mark.parametrize("separator", ["\n\n", "\n  \n", "\r\n\r\n", "\n\n\n\n"], ids=repr)
def test_paragraph_break_always_ends_a_chunk_with_a_longer_gap(separator: str) -> None:
    chunks = plan_chunks(f"First paragraph.{separator}Second paragraph.")
    assert texts(chunks) == ["First paragraph.", "Second paragraph."]
    assert chunks[0].boundary == "paragraph"
    assert chunks[0].gap_after_s > GAP_AFTER_S["sentence"]
    assert chunks[1].boundary == "end"


def test_single_newline_joins_lines_in_one_chunk() -> None:
    assert texts(plan_chunks("a wrapped\nline of text")) == ["a wrapped line of text"]


@pytest.mark.parametrize(
    "text", ["", " ", "\n\n\t ", "🎉🚀", "**  **", "---", "# ", "> ", "...", "— — —"], ids=repr
)
def test_nothing_speakable_gives_no_speech(text: str) -> None:
    chunks = plan_chunks(text)
    assert not has_speech(chunks)
    assert all(chunk.is_pause for chunk in chunks)


def test_has_speech_sees_text() -> None:
    assert has_speech(plan_chunks("🎉 yes"))


VALID_PAUSES = [
    ("seconds", "[pause:1.5s]", 1.5),
    ("whole-seconds", "[pause:2s]", 2.0),
    ("milliseconds", "[pause:500ms]", 0.5),
    ("upper-case", "[PAUSE:1S]", 1.0),
    ("spaces-inside", "[ pause : 1.5 s ]", 1.5),
    ("leading-dot", "[pause:.25s]", 0.25),
    ("at-the-limit", "[pause:10s]", MAX_PAUSE_S),
]


@pytest.mark.parametrize(("tag", "seconds"), [c[1:] for c in VALID_PAUSES], ids=[c[0] for c in VALID_PAUSES])
@pytest.mark.parametrize("normalized", [True, False], ids=["normalized", "raw"])
def test_pause_tag_becomes_an_exact_silence(tag: str, seconds: float, normalized: bool) -> None:
    text = f"Hello {tag} world."
    chunks = plan_chunks(text, normalize=normalized)
    assert [(c.text, c.pause_s) for c in chunks] == [("Hello", 0.0), ("", seconds), ("world.", 0.0)]
    pause = chunks[1]
    assert text[pause.start : pause.end] == tag
    assert chunks[0].boundary == "pause"
    assert chunks[0].gap_after_s == 0.0, "the tag alone sets the silence"


INVALID_PAUSES = [
    ("not-a-number", "[pause:abc]"),
    ("negative", "[pause:-1s]"),
    ("too-long", "[pause:99s]"),
    ("just-over", "[pause:10.5s]"),
    ("no-unit", "[pause:1.5]"),
    ("empty", "[pause:]"),
    ("unknown-unit", "[pause:2m]"),
]


@pytest.mark.parametrize("tag", [c[1] for c in INVALID_PAUSES], ids=[c[0] for c in INVALID_PAUSES])
def test_invalid_pause_tag_is_rejected_with_a_clear_message(tag: str) -> None:
    text = f"Some **bold** words {tag} and more."
    with pytest.raises(InvalidPauseTag) as error:
        plan_chunks(text)
    assert error.value.tag == tag
    assert error.value.position == text.index(tag)
    message = str(error.value)
    assert tag in message
    assert "[pause:1.5s]" in message
    assert f"at most {MAX_PAUSE_S:g} s" in message


@pytest.mark.parametrize(
    "text", ["Take a [pause] here.", "[Pause for effect] then go."], ids=["bare", "no-colon"]
)
def test_brackets_that_are_not_pause_tags_are_spoken(text: str) -> None:
    chunks = plan_chunks(text)
    assert not any(chunk.is_pause for chunk in chunks)
    assert "pause" in chunks[0].text.lower()


ADJACENT_PAUSES = [
    ("touching", "A [pause:1s][pause:2s] B", 3.0),
    ("spaced", "A [pause:1s] [pause:500ms] B", 1.5),
    ("emoji-between", "A [pause:1s] 🎉 [pause:1s] B", 2.0),
    ("each-at-the-limit", "A [pause:10s][pause:10s] B", 20.0),
]


@pytest.mark.parametrize(
    ("text", "total"), [c[1:] for c in ADJACENT_PAUSES], ids=[c[0] for c in ADJACENT_PAUSES]
)
def test_adjacent_pauses_add_up(text: str, total: float) -> None:
    chunks = plan_chunks(text)
    assert [(c.text, c.pause_s) for c in chunks] == [("A", 0.0), ("", total), ("B", 0.0)]
    assert text[chunks[1].start : chunks[1].end].startswith("[pause:")
    assert text[chunks[1].start : chunks[1].end].endswith("]")


def test_pause_at_start_and_end() -> None:
    chunks = plan_chunks("[pause:1s] Hello there. [pause:2s]")
    assert [(c.text, c.pause_s, c.boundary) for c in chunks] == [
        ("", 1.0, "pause"),
        ("Hello there.", 0.0, "pause"),
        ("", 2.0, "pause"),
    ]


def test_zero_pause_adds_no_silence() -> None:
    assert not any(chunk.is_pause for chunk in plan_chunks("A [pause:0s] B"))


def test_pause_alone_has_no_speech() -> None:
    chunks = plan_chunks("[pause:1s]")
    assert [c.pause_s for c in chunks] == [1.0]
    assert not has_speech(chunks)


SPAN_TEXTS = [
    ("plain", LONG_PARAGRAPH),
    ("paragraphs", "One two three.\n\nFour five six seven.\n\n\nEight nine ten."),
    (
        "markdown",
        "# Title\n\nSome **bold** and *italic* words, a [link](https://x.org), `code`.\n- item\n- item two",
    ),
    ("addresses", "Visit https://www.example.com/docs or write to jane.doe@example.co.uk today, please."),
    ("emoji-and-pauses", "Great 🎉 news! [pause:1s] We shipped it ✅. [pause:500ms] Thanks → everyone."),
    ("long-word", "start " + "y" * 900 + " end"),
]
READ_ALOUD = {"dot", "slash", "at", "colon", "underscore", "dash", "plus", "to", "about"}


def _collapse(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("text", [c[1] for c in SPAN_TEXTS], ids=[c[0] for c in SPAN_TEXTS])
@pytest.mark.parametrize("normalized", [True, False], ids=["normalized", "raw"])
def test_spans_are_ordered_disjoint_and_cover_the_chunk_text(text: str, normalized: bool) -> None:
    chunks = plan_chunks(text, normalize=normalized, first_chunk_chars=30, max_chunk_chars=120)
    previous_end = 0
    for chunk in chunks:
        assert previous_end <= chunk.start <= chunk.end <= len(text)
        previous_end = chunk.end
        original = text[chunk.start : chunk.end]
        if chunk.is_pause:
            assert original.lower().startswith("[pause:")
        elif not normalized:
            assert _collapse(original) == chunk.text
        else:
            words = set(re.findall(r"\w+", original))
            assert set(re.findall(r"\w+", chunk.text)) <= words | READ_ALOUD


WHOLE_WORDS = [c for c in SPAN_TEXTS if c[0] in {"plain", "paragraphs", "markdown", "addresses"}]


@pytest.mark.parametrize("text", [c[1] for c in WHOLE_WORDS], ids=[c[0] for c in WHOLE_WORDS])
def test_no_text_is_lost_between_chunks(text: str) -> None:
    spoken = " ".join(chunk.text for chunk in plan_chunks(text, first_chunk_chars=30, max_chunk_chars=120))
    assert spoken == _collapse(normalize(text).text)


WORD_TIMESTAMPS = [
    ("plain", "The quick brown fox jumps.", "brown", "brown"),
    ("bold", "A **very** bold claim about nothing at all.", "very", "very"),
    ("after-emoji", "Ship it 🚀 today and tomorrow too.", "today", "today"),
    ("url-word", "Go to https://www.example.com/docs now.", "example", "example"),
    ("read-aloud-dot", "Go to https://www.example.com/docs now.", "dot", "."),
]


@pytest.mark.parametrize(
    ("text", "word", "original"), [c[1:] for c in WORD_TIMESTAMPS], ids=[c[0] for c in WORD_TIMESTAMPS]
)
def test_chunk_maps_a_word_back_to_the_request_text(text: str, word: str, original: str) -> None:
    chunk = next(chunk for chunk in plan_chunks(text) if word in chunk.text.split())
    start = chunk.text.split().index(word)
    offset = len(" ".join(chunk.text.split()[:start])) + (1 if start else 0)
    span_start, span_end = chunk.original_span(offset, offset + len(word))
    assert text[span_start:span_end] == original


@pytest.mark.parametrize(
    ("first", "cap"), [(0, 100), (101, 100), (-5, 100)], ids=["zero", "first-over-cap", "negative"]
)
def test_bad_budgets_are_rejected(first: int, cap: int) -> None:
    with pytest.raises(ValueError, match="first_chunk_chars"):
        plan_chunks("hello", first_chunk_chars=first, max_chunk_chars=cap)


ADVERSARIAL = {
    "dots": "." * 100_000,
    "spaces": " " * 100_000,
    "a-dot": "a." * 50_000,
    "a-dot-space": "a. " * 33_333,
    "titles": "Dr. " * 25_000,
    "digits": "1" * 100_000,
    "em-dashes": "a—" * 50_000,
    "open-pause-tags": "[pause:" * 14_000,
    "newlines": "x\n" * 50_000,
}


@pytest.mark.parametrize("text", ADVERSARIAL.values(), ids=ADVERSARIAL.keys())
def test_adversarial_input_completes_within_the_cap(text: str) -> None:
    chunks = plan_chunks(text)
    assert all(0 < len(chunk.text) <= MAX_CHUNK_CHARS for chunk in chunks)
    assert all(a.end <= b.start for a, b in itertools.pairwise(chunks))
