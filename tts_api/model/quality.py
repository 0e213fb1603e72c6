"""Judge speech the way a listener would: DNSMOS (Microsoft's speech-quality predictor, offline).

The DNSMOS P.835 (SIG, BAK, OVRL) and P.808 ONNX models ship inside the `speechmos` wheel (it needs
librosa and onnxruntime); nothing is downloaded. DNSMOS scores 9-second windows and loops a shorter clip
back to back, so a short clip's score depends on its length: the same waveform cut on a 10 ms grid at two
offsets scored 2.76 and 3.08 ("Thanks!"), and one clip moves by up to ±0.1 as its margins grow from 0.2 to
0.4 s. So `speech_score` cuts a clip to its speech at the sample (the same speech always gives the same
clip, however much silence came with it), gives it the same margins as any other, and averages DNSMOS over
several margins.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import numpy.typing as npt

__all__ = ["MARGINS_S", "MARGIN_S", "SpeechScore", "comparable", "dnsmos", "speech_score"]

Audio = npt.NDArray[np.float32]

DNSMOS_RATE = 16_000
DNSMOS_WINDOW = int(9.01 * DNSMOS_RATE)  # speechmos's input length
MARGIN_S = 0.3  # silence on each side of the speech before scoring (Kokoro's own lead is about this)
MARGINS_S = (0.2, 0.25, 0.3, 0.35, 0.4)  # `speech_score` averages over these
SPEECH_DBFS = -45.0  # the first and last samples reaching this bound the speech


@dataclass(frozen=True)
class SpeechScore:
    """DNSMOS of one clip, each on a 1-5 scale: overall, signal, background, and P.808."""

    ovrl: float
    sig: float
    bak: float
    p808: float


def comparable(audio: Audio, rate: int, margin_s: float = MARGIN_S) -> Audio:
    """`audio` cut to its speech (first to last sample at or over -45 dBFS), with `margin_s` of silence
    each side."""
    loud = np.flatnonzero(np.abs(audio) >= 10 ** (SPEECH_DBFS / 20))
    body = audio if loud.size == 0 else audio[int(loud[0]) : int(loud[-1]) + 1]
    pad = np.zeros(round(margin_s * rate), dtype=np.float32)
    return np.concatenate([pad, body.astype(np.float32), pad])


def speech_score(audio: Audio, rate: int) -> SpeechScore:
    """The clip's DNSMOS as speech, comparable with any other clip's: the mean over `MARGINS_S` of the
    score of its `comparable` cut."""
    scores = [dnsmos(comparable(audio, rate, margin), rate) for margin in MARGINS_S]
    return SpeechScore(
        **{f.name: float(np.mean([getattr(s, f.name) for s in scores])) for f in fields(SpeechScore)}
    )


def dnsmos(audio: Audio, rate: int) -> SpeechScore:
    """DNSMOS of mono float `audio` at `rate` Hz, as it is (see `speech_score` to compare two clips).

    A clip shorter than DNSMOS's window is repeated to fill exactly one window (speechmos itself doubles it
    past the window and scores every 1 s hop of the result: the same loop, several times the work)."""
    from scipy.signal import resample_poly
    from speechmos import dnsmos as model

    divisor = np.gcd(DNSMOS_RATE, rate)
    resampled = resample_poly(audio.astype(np.float64), DNSMOS_RATE // divisor, rate // divisor)
    if 0 < len(resampled) < DNSMOS_WINDOW:
        resampled = np.resize(resampled, DNSMOS_WINDOW)
    scores = model.run(np.clip(resampled, -1.0, 1.0).astype(np.float32), sr=DNSMOS_RATE)
    return SpeechScore(
        ovrl=float(scores["ovrl_mos"]),
        sig=float(scores["sig_mos"]),
        bak=float(scores["bak_mos"]),
        p808=float(scores["p808_mos"]),
    )
