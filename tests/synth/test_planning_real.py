"""Text planning on the real Kokoro-82M weights: clean seams, even gaps, timed words."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable

import numpy as np
import pytest

from tts_api.synth.engine import KokoroEngine
from tts_api.synth.seams import speech_bounds
from tts_api.synth.speech import speak_all
from tts_api.voices import VoiceBlend

pytestmark = pytest.mark.slow
SR = 24_000
TEXT = (
    "The quick brown fox jumps over the lazy dog. Then it sleeps in the warm sun all afternoon, "
    "dreaming of fields. Nobody wakes it.\n\nA new paragraph begins after a longer pause."
)


@pytest.fixture(scope="module")
def chunks(real_engines: Callable[[bool], KokoroEngine]) -> list:
    return list(speak_all(real_engines(True), TEXT, VoiceBlend((("af_heart", 1.0),)), seed=0))


def test_the_text_is_planned_into_several_chunks_with_a_short_first(chunks: list) -> None:
    assert len(chunks) >= 3
    assert len(chunks[0].graphemes) <= 50


def test_no_seam_jumps_more_than_the_audio_inside_the_chunks(chunks: list) -> None:
    audio = np.concatenate([c.audio for c in chunks])
    inside = max(float(np.abs(np.diff(c.audio)).max()) for c in chunks)
    position, seams = 0, []
    for chunk in chunks:
        gap = int(np.argmax(chunk.audio != 0))  # the silence owed to the previous chunk
        seams += [position, position + gap]  # previous chunk -> gap, gap -> this chunk's speech
        position += len(chunk.audio)
    for seam in seams[1:]:
        around = audio[max(0, seam - 4) : seam + 4]
        assert np.abs(np.diff(around)).max() <= inside, f"jump at sample {seam}"
        # Stronger than the jump test: every cut falls in near-silence, never through a word.
        quiet = audio[max(0, seam - 240) : seam + 240]  # 10 ms either side
        assert np.abs(quiet).max() < 0.02, f"seam at sample {seam} cuts through sound"


def test_gaps_between_sentences_and_paragraphs_are_in_range(chunks: list) -> None:
    position, speech = 0, []
    for chunk in chunks:
        start, end = speech_bounds(chunk.audio)
        speech.append((position + start, position + end, chunk.graphemes))
        position += len(chunk.audio)
    for (_, end, text), (next_start, _, _) in itertools.pairwise(speech):
        gap_s = (next_start - end) / SR
        if text.endswith(("fields.", "dog.", "it.")) and "\n" not in text:
            low, high = (0.7, 1.2) if text.endswith("it.") else (0.3, 0.75)  # "it." ends the paragraph
            assert low <= gap_s <= high, f"{gap_s:.2f} s after {text!r}"
        else:
            assert 0.05 <= gap_s <= 0.75, f"{gap_s:.2f} s after {text!r}"


def test_every_input_word_is_timed_in_order_inside_the_audio(chunks: list) -> None:
    words = [w for c in chunks for w in c.words]
    assert [w.word for w in words] == [re.sub(r"[.,]$", "", w) for w in TEXT.split()]
    total_s = sum(len(c.audio) for c in chunks) / SR
    assert all(0 <= w.start <= w.end <= total_s for w in words)
    assert all(a.start <= b.start and a.end <= b.end for a, b in itertools.pairwise(words))
    assert all(TEXT[w.char_start : w.char_end] == w.word for w in words)
    # Each word is heard where it is timed: its span holds speech, not silence.
    audio = np.concatenate([c.audio for c in chunks])
    for w in words:
        span = audio[int(w.start * SR) : int(w.end * SR)]
        assert span.size and np.abs(span).max() > 0.01, w
