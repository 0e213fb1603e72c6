"""Judge speech the way a listener would: DNSMOS (Microsoft's speech-quality predictor, offline).

The DNSMOS P.835 (SIG, BAK, OVRL) and P.808 ONNX models ship inside the `speechmos` wheel (it needs
librosa and onnxruntime); nothing is downloaded. DNSMOS scores 9-second windows and loops a shorter clip
back to back, so a clip's silent margins change its score: `comparable` cuts a clip to its speech and gives
it the same margins as any other before scoring, so two engines' clips are judged like with like.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["MARGIN_S", "SpeechScore", "comparable", "dnsmos"]

Audio = npt.NDArray[np.float32]

DNSMOS_RATE = 16_000
MARGIN_S = 0.3  # silence on each side of the speech before scoring (Kokoro's own lead is about this)
SPEECH_DBFS = -45.0  # 10 ms frames whose peak reaches this count as speech
FRAME_S = 0.01


@dataclass(frozen=True)
class SpeechScore:
    """DNSMOS of one clip, each on a 1-5 scale: overall, signal, background, and P.808."""

    ovrl: float
    sig: float
    bak: float
    p808: float


def comparable(audio: Audio, rate: int, margin_s: float = MARGIN_S) -> Audio:
    """`audio` cut to its speech (first to last frame over -45 dBFS), with `margin_s` of silence each side."""
    frame = max(1, round(FRAME_S * rate))
    frames = len(audio) // frame
    peaks = np.abs(audio[: frames * frame]).reshape(frames, frame).max(axis=1) if frames else np.zeros(0)
    loud = np.flatnonzero(peaks >= 10 ** (SPEECH_DBFS / 20))
    body = audio if loud.size == 0 else audio[int(loud[0]) * frame : (int(loud[-1]) + 1) * frame]
    pad = np.zeros(round(margin_s * rate), dtype=np.float32)
    return np.concatenate([pad, body.astype(np.float32), pad])


def dnsmos(audio: Audio, rate: int) -> SpeechScore:
    """DNSMOS of mono float `audio` at `rate` Hz, as it is (see `comparable` to compare two clips)."""
    from scipy.signal import resample_poly
    from speechmos import dnsmos as model

    divisor = np.gcd(DNSMOS_RATE, rate)
    resampled = resample_poly(audio.astype(np.float64), DNSMOS_RATE // divisor, rate // divisor)
    scores = model.run(np.clip(resampled, -1.0, 1.0).astype(np.float32), sr=DNSMOS_RATE)
    return SpeechScore(
        ovrl=float(scores["ovrl_mos"]),
        sig=float(scores["sig_mos"]),
        bak=float(scores["bak_mos"]),
        p808=float(scores["p808_mos"]),
    )
