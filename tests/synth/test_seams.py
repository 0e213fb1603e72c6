"""Seams between pieces: fixed margins around the speech, fades to zero, exact gaps."""

from __future__ import annotations

import numpy as np
import pytest

from tts_api.synth.seams import KEEP_LEAD_S, KEEP_TAIL_S, shape_piece, silence, speech_bounds

SR = 24_000


def piece(lead_s: float, speech_s: float, tail_s: float, noise: float = 1e-4) -> np.ndarray:
    """Kokoro-like output: faint noise, a loud tone, faint noise."""
    rng = np.random.default_rng(0)
    n_lead, n_speech, n_tail = (round(x * SR) for x in (lead_s, speech_s, tail_s))
    audio = rng.normal(0, noise, n_lead + n_speech + n_tail).astype(np.float32)
    t = np.arange(n_speech) / SR
    audio[n_lead : n_lead + n_speech] += 0.4 * np.sin(2 * np.pi * 220 * t).astype(np.float32)
    return audio


def test_speech_bounds_find_the_loud_part() -> None:
    start, end = speech_bounds(piece(0.3, 1.0, 0.5))
    assert abs(start - 0.3 * SR) <= 120 and abs(end - 1.3 * SR) <= 120  # within one 5 ms frame
    assert speech_bounds(silence(0.5)) is None
    assert speech_bounds(np.zeros(10, np.float32)) is None


@pytest.mark.parametrize(("lead", "tail"), [(0.3, 0.5), (0.1, 0.2), (0.45, 0.25)])
def test_uneven_kokoro_padding_becomes_the_same_margins(lead: float, tail: float) -> None:
    shaped = shape_piece(piece(lead, 1.0, tail), gap_before_s=0.0)
    expected = KEEP_LEAD_S + 1.0 + KEEP_TAIL_S
    assert abs(len(shaped.audio) / SR - expected) <= 2 * 120 / SR
    assert abs(shaped.shift_s + lead - KEEP_LEAD_S) <= 120 / SR


def test_edges_fade_to_zero_and_the_gap_is_exact() -> None:
    shaped = shape_piece(piece(0.3, 1.0, 0.4, noise=0.003), gap_before_s=0.35)
    gap = round(0.35 * SR)
    assert not shaped.audio[:gap].any()
    assert abs(shaped.audio[gap]) < 1e-6 and abs(shaped.audio[-1]) < 1e-6
    joined = np.concatenate([shaped.audio, shape_piece(piece(0.2, 0.5, 0.3), 0.25).audio])
    seam = len(shaped.audio)
    assert np.abs(np.diff(joined[seam - 3 : seam + 3])).max() < 1e-3


def test_a_piece_without_speech_is_kept_whole_and_faded() -> None:
    quiet = np.full(2400, 1e-5, np.float32)
    shaped = shape_piece(quiet, gap_before_s=0.1)
    assert len(shaped.audio) == 2400 + 2400 and shaped.audio[-1] == 0.0
