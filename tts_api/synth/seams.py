"""Join synthesized pieces without clicks or uneven gaps: trim edge silence, fade, insert the gap.

Kokoro pads every piece it synthesizes with ~0.3 s of silence before the speech and ~0.2-0.5 s
after, varying piece to piece. Joined as they come, pieces would leave uneven gaps; cut carelessly,
they would click. So each piece keeps a fixed margin around its speech, fades to zero over its last
and first few milliseconds (cuts fall in near-silence, so the fades are inaudible), and is preceded
by exactly the silence the text plan asks for after the previous piece.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ..formats import SAMPLE_RATE

__all__ = ["KEEP_LEAD_S", "KEEP_TAIL_S", "Shaped", "shape_piece", "silence", "speech_bounds"]

SPEECH_THRESHOLD = 10 ** (-45 / 20)  # peak amplitude that counts as speech (-45 dBFS)
FRAME_SAMPLES = SAMPLE_RATE // 200  # 5 ms analysis frames
KEEP_LEAD_S = 0.04  # silence kept before the first speech frame
KEEP_TAIL_S = 0.12  # after the last speech frame: room for the natural decay of the voice
FADE_S = 0.005

Audio = npt.NDArray[np.float32]


def silence(seconds: float) -> Audio:
    return np.zeros(round(seconds * SAMPLE_RATE), dtype=np.float32)


def speech_bounds(audio: Audio) -> tuple[int, int] | None:
    """First and one-past-last sample of the 5 ms frames that reach SPEECH_THRESHOLD; None if none do."""
    frames = len(audio) // FRAME_SAMPLES
    if frames == 0:
        return None
    peaks = np.abs(audio[: frames * FRAME_SAMPLES]).reshape(frames, FRAME_SAMPLES).max(axis=1)
    loud = np.flatnonzero(peaks >= SPEECH_THRESHOLD)
    if loud.size == 0:
        return None
    return int(loud[0]) * FRAME_SAMPLES, min(len(audio), (int(loud[-1]) + 1) * FRAME_SAMPLES)


@dataclass(frozen=True)
class Shaped:
    """A piece ready to append to the stream, and how its time axis moved."""

    audio: Audio
    shift_s: float  # add to a time in the raw piece to get the time in `audio`


def shape_piece(raw: Audio, gap_before_s: float) -> Shaped:
    """`gap_before_s` of silence, then `raw` cut to its speech plus fixed margins, faded at both ends."""
    bounds = speech_bounds(raw)
    start, end = (0, len(raw)) if bounds is None else bounds
    start = max(0, start - round(KEEP_LEAD_S * SAMPLE_RATE))
    end = min(len(raw), end + round(KEEP_TAIL_S * SAMPLE_RATE))
    body = raw[start:end].astype(np.float32, copy=True)
    fade = min(round(FADE_S * SAMPLE_RATE), len(body) // 2)
    if fade:
        ramp = (0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, fade, dtype=np.float32))).astype(np.float32)
        body[:fade] *= ramp
        body[-fade:] *= ramp[::-1]
    gap = silence(gap_before_s)
    return Shaped(np.concatenate([gap, body]), (len(gap) - start) / SAMPLE_RATE)
