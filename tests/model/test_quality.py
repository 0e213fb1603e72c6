"""The speech-quality scorer: like-with-like cuts and margins, and DNSMOS telling clean speech from noisy."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import pytest

from tts_api.model.quality import MARGIN_S, comparable, dnsmos, speech_score

if TYPE_CHECKING:
    from tts_api.synth.engine import KokoroEngine

SR = 24_000


def tone(lead_s: float, tone_s: float, tail_s: float) -> np.ndarray:
    t = np.arange(round(tone_s * SR)) / SR
    body = (0.3 * np.cos(2 * np.pi * 200 * t)).astype(np.float32)  # loud at both ends
    return np.concatenate(
        [np.zeros(round(lead_s * SR), np.float32), body, np.zeros(round(tail_s * SR), np.float32)]
    )


def test_clips_with_different_silences_get_the_same_margins() -> None:
    a, b = comparable(tone(0.05, 1.0, 0.6), SR), comparable(tone(0.4, 1.0, 0.0), SR)
    assert len(a) == len(b) == round((2 * MARGIN_S + 1.0) * SR)
    margin = round(MARGIN_S * SR)
    assert not a[:margin].any() and not a[-margin:].any() and np.abs(a[margin : margin + 240]).max() > 0


def test_the_same_speech_is_cut_alike_at_any_offset() -> None:
    # Cut on a 10 ms grid, the same speech after different silences came out a few samples apart, and
    # DNSMOS (which loops short clips) scored the two up to 0.3 apart.
    speech = tone(0.0, 0.5, 0.0)
    early = np.concatenate([tone(0.037, 0.0, 0.0), speech])
    late = np.concatenate([tone(0.2413, 0.0, 0.0), speech, tone(0.05, 0.0, 0.0)])
    assert np.array_equal(comparable(early, SR), comparable(late, SR))


def test_a_silent_clip_is_kept_whole() -> None:
    assert len(comparable(np.zeros(4800, np.float32), SR)) == 4800 + 2 * round(MARGIN_S * SR)


@pytest.fixture(scope="module")
def spoken(real_engines: Callable[[bool], KokoroEngine]) -> np.ndarray:
    from tts_api.synth.speech import speak_all
    from tts_api.voices import VoiceBlend

    engine = real_engines(True)
    text = "The quick brown fox jumps over the lazy dog, and then it runs away into the forest."
    chunks = speak_all(engine, text, VoiceBlend((("af_heart", 1.0),)), seed=0)
    return np.concatenate([c.audio for c in chunks])


@pytest.mark.slow
def test_dnsmos_hears_the_noise_added_to_clean_speech(spoken: np.ndarray) -> None:
    speech = comparable(spoken, SR)
    level = float(np.sqrt(np.mean(speech**2)))
    noise = np.random.default_rng(0).normal(0.0, level / 10, len(speech)).astype(np.float32)  # 20 dB SNR
    clean, noisy = dnsmos(speech, SR), dnsmos(speech + noise, SR)
    assert clean.ovrl >= 3.0 and clean.p808 >= 3.5  # Kokoro's speech, as DNSMOS rates good TTS
    assert noisy.bak < clean.bak - 1.0 and noisy.ovrl < clean.ovrl - 0.5


@pytest.mark.slow
def test_the_same_speech_scores_the_same_however_much_silence_came_with_it(spoken: np.ndarray) -> None:
    words = spoken[: len(spoken) // 3]  # a short clip, which DNSMOS loops
    offset = speech_score(np.concatenate([np.zeros(887, np.float32), words]), SR)
    assert speech_score(words, SR) == offset
    with_noise = words + np.random.default_rng(1).normal(0.0, 0.01, len(words)).astype(np.float32)
    assert speech_score(with_noise, SR).ovrl < offset.ovrl - 0.3
