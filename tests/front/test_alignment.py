"""Character timings for the ElevenLabs socket (front/sockets/alignment.py), from word timings."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from tts_api.front.sockets.alignment import Aligner, Alignment

TEXT = 'He said "hello, **world**!" Then left.'


def word(text: str, w: str, start: float, end: float, spoken: str = "", after: int = 0) -> dict[str, Any]:
    at = text.index(w, after)
    return {
        "word": w,
        "start": start,
        "end": end,
        "char_start": at,
        "char_end": at + len(w),
        "spoken": spoken,
    }


def check(alignment: Alignment, audio_s: float) -> None:
    """Monotone, one time per character, inside the message's audio."""
    a = alignment
    assert len(a.chars) == len(a.starts_ms) == len(a.durations_ms)
    assert all(x <= y for x, y in itertools.pairwise(a.starts_ms))
    assert all(
        s >= 0 and d >= 0 and s + d <= round(audio_s * 1000)
        for s, d in zip(a.starts_ms, a.durations_ms, strict=True)
    )


@pytest.mark.parametrize("cumulative", [False, True], ids=["per-message", "sync_alignment"])
def test_messages_cover_the_users_text_in_order_and_the_spoken_words(cumulative: bool) -> None:
    aligner = Aligner(cumulative=cumulative)
    first = [word(TEXT, "He", 0.0, 0.2), word(TEXT, "said", 0.2, 0.5), word(TEXT, "hello", 0.6, 0.9)]
    second = [word(TEXT, "**world**", 1.0, 1.4, spoken="world"), word(TEXT, "Then", 1.5, 1.7)]
    third = [word(TEXT, "left", 1.7, 2.0)]
    spans = [(first, 0.0, 1.0), (second, 1.0, 1.8), (third, 1.8, 2.2)]
    users, spoken = [], []
    for words, start, end in spans:
        result = aligner.align(TEXT, words, start, end)
        assert result is not None
        check(result[0], end - (0.0 if cumulative else start))
        check(result[1], end - (0.0 if cumulative else start))
        users.append(result[0])
        spoken.append(result[1])
    assert "".join(c for a in users for c in a.chars).split() == TEXT.split()
    assert "".join(c for a in spoken for c in a.chars).split() == [
        "He",
        "said",
        "hello",
        "world",
        "Then",
        "left",
    ]
    if cumulative:
        assert users[1].starts_ms[users[1].chars.index("*")] == 1000  # from the context's start
    else:
        assert users[1].starts_ms[users[1].chars.index("*")] == 0  # from the message's start
    assert users[0].chars[-1] == " "  # a client that splits at spaces closes the message's last word


def test_audio_with_no_new_words_has_no_alignment() -> None:
    aligner = Aligner(cumulative=False)
    assert aligner.align(TEXT, [], 0.0, 0.5) is None
    words = [word(TEXT, "He", 0.0, 0.2)]
    assert aligner.align(TEXT, words, 0.0, 0.5) is not None
    assert aligner.align(TEXT, words, 0.5, 1.0) is None  # said already


def test_times_past_the_audio_are_held_inside_it() -> None:
    aligner = Aligner(cumulative=False)
    result = aligner.align(
        "one two", [word("one two", "one", 0.0, 0.4), word("one two", "two", 0.4, 9.0)], 0.0, 1.0
    )
    assert result is not None
    check(result[0], 1.0)
    check(result[1], 1.0)
