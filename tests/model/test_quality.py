"""The speech-quality scorer: like-with-like margins, and DNSMOS telling clean speech from noisy speech."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import pytest

from tts_api.model.quality import MARGIN_S, comparable, dnsmos

if TYPE_CHECKING:
    from tts_api.synth.engine import KokoroEngine

SR = 24_000


def tone(lead_s: float, tone_s: float, tail_s: float) -> np.ndarray:
    t = np.arange(round(tone_s * SR)) / SR
    body = (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
    return np.concatenate(
        [np.zeros(round(lead_s * SR), np.float32), body, np.zeros(round(tail_s * SR), np.float32)]
    )


def test_clips_with_different_silences_get_the_same_margins() -> None:
    a, b = comparable(tone(0.05, 1.0, 0.6), SR), comparable(tone(0.4, 1.0, 0.0), SR)
    assert len(a) == len(b) == round((2 * MARGIN_S + 1.0) * SR)
    margin = round(MARGIN_S * SR)
    assert not a[:margin].any() and not a[-margin:].any() and np.abs(a[margin : margin + 240]).max() > 0


def test_a_silent_clip_is_kept_whole() -> None:
    assert len(comparable(np.zeros(4800, np.float32), SR)) == 4800 + 2 * round(MARGIN_S * SR)


@pytest.mark.slow
def test_dnsmos_hears_the_noise_added_to_clean_speech(real_engines: Callable[[bool], KokoroEngine]) -> None:
    from tts_api.synth.speech import speak_all
    from tts_api.voices import VoiceBlend

    engine = real_engines(True)
    text = "The quick brown fox jumps over the lazy dog, and then it runs away into the forest."
    speech = comparable(
        np.concatenate([c.audio for c in speak_all(engine, text, VoiceBlend((("af_heart", 1.0),)), seed=0)]),
        SR,
    )
    level = float(np.sqrt(np.mean(speech**2)))
    noise = np.random.default_rng(0).normal(0.0, level / 10, len(speech)).astype(np.float32)  # 20 dB SNR
    clean, noisy = dnsmos(speech, SR), dnsmos(speech + noise, SR)
    assert clean.ovrl >= 3.0 and clean.p808 >= 3.5  # Kokoro's speech, as DNSMOS rates good TTS
    assert noisy.bak < clean.bak - 1.0 and noisy.ovrl < clean.ovrl - 0.5
