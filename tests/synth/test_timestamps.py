"""Word timestamps from misaki-like tokens, mapped back to the words the user wrote."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from tts_api.synth.timestamps import word_timings
from tts_api.text.planning import plan_chunks


@dataclass
class Token:
    text: str
    whitespace: str
    start_ts: float | None
    end_ts: float | None


def tokens_for(text: str, times: list[tuple[float, float] | None]) -> list[Token]:
    """Split like misaki: words, punctuation as its own token, whitespace recorded."""
    import re

    pieces = [(m.group(), text[m.end() : m.end() + 1] if text[m.end() : m.end() + 1] == " " else "")
              for m in re.finditer(r"[\w$.']+(?<![.])|[^\w\s]", text)]  # fmt: skip
    return [Token(p, ws, *(t if t else (None, None))) for (p, ws), t in zip(pieces, times, strict=True)]


def test_words_map_back_to_what_the_user_wrote() -> None:
    original = "Say **hello** to https://example.com now."
    (chunk,) = plan_chunks(original)
    assert chunk.text == "Say hello to example dot com now."
    tokens = tokens_for(chunk.text, [(0, 0.2), (0.2, 0.5), (0.5, 0.6), (0.6, 1.0), (1.0, 1.2), (1.2, 1.4),
                                     (1.4, 1.7), None])  # fmt: skip
    words = word_timings(tokens, chunk, original, shift_s=2.0, start_s=2.0, end_s=4.0)
    assert [w.word for w in words] == ["Say", "hello", "to", "https://example.com", "now"]
    assert [w.spoken for w in words] == ["Say", "hello", "to", "example dot com", "now"]  # as read aloud
    assert all(original[w.char_start : w.char_end] == w.word for w in words)
    assert (words[3].start, words[3].end) == (2.6, 3.4)  # "example dot com" is one word
    assert words[0].start == 2.0 and words[-1].end == 3.7


def test_a_word_read_as_several_tokens_is_one_entry_and_punctuation_is_none() -> None:
    original = "It costs $5.20, fine."
    (chunk,) = plan_chunks(original, first_chunk_chars=60)  # one chunk: the plan is not under test
    tokens = [
        Token("It", " ", 0.0, 0.1),
        Token("costs", " ", 0.1, 0.4),
        Token("$", "", None, None),
        Token("5.20", "", 0.4, 1.5),
        Token(",", " ", 1.5, 1.6),
        Token("fine", "", 1.6, 1.9),
        Token(".", "", 1.9, 2.0),
    ]
    words = word_timings(tokens, chunk, original, shift_s=0.0, start_s=0.0, end_s=5.0)
    assert [(w.word, w.start, w.end) for w in words] == [
        ("It", 0.0, 0.1),
        ("costs", 0.1, 0.4),
        ("$5.20", 0.4, 1.5),
        ("fine", 1.6, 1.9),
    ]


def test_times_stay_inside_the_audio_and_never_run_backwards() -> None:
    original = "one two three"
    (chunk,) = plan_chunks(original)
    tokens = [Token("one", " ", -0.5, 0.3), Token("two", " ", 0.2, 0.6), Token("three", "", 0.6, 9.0)]
    words = word_timings(tokens, chunk, original, shift_s=0.0, start_s=0.0, end_s=1.0)
    assert [(w.start, w.end) for w in words] == [(0.0, 0.3), (0.2, 0.6), (0.6, 1.0)]
    assert all(a.start <= b.start for a, b in itertools.pairwise(words))


def test_a_token_that_is_not_in_the_text_is_skipped() -> None:
    original = "alpha beta"
    (chunk,) = plan_chunks(original)
    tokens = [Token("alpha", " ", 0.0, 0.5), Token("gamma", " ", 0.5, 0.7), Token("beta", "", 0.7, 1.0)]
    words = word_timings(tokens, chunk, original, shift_s=0.0, start_s=0.0, end_s=1.0)
    assert [w.word for w in words] == ["alpha", "beta"]


def test_a_hyphenated_word_is_one_entry() -> None:
    original = "A well-known fact."
    (chunk,) = plan_chunks(original)
    tokens = [
        Token("A", " ", 0.0, 0.1),
        Token("well", "", 0.1, 0.3),
        Token("-", "", 0.3, 0.3),
        Token("known", " ", 0.3, 0.6),
        Token("fact", "", 0.6, 0.9),
        Token(".", "", 0.9, 1.0),
    ]
    words = word_timings(tokens, chunk, original, shift_s=0.0, start_s=0.0, end_s=1.0)
    assert [w.spoken for w in words] == ["A", "well-known", "fact"]
    assert [(w.word, w.start, w.end) for w in words] == [
        ("A", 0.0, 0.1),
        ("well-known", 0.1, 0.6),
        ("fact", 0.6, 0.9),
    ]
