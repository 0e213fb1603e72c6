"""Hear what speech says: PocketSphinx's offline US-English recognizer (ships its own model on PyPI).

Used to check that an engine says the same words as the reference one, and by the tests.
"""

from __future__ import annotations

import av
import numpy as np
import numpy.typing as npt

__all__ = ["transcribe"]

RECOGNIZER_RATE = 16_000


def _to_16k_pcm(samples: npt.NDArray[np.float32], rate: int) -> bytes:
    resampler = av.AudioResampler(format="s16", layout="mono", rate=RECOGNIZER_RATE)
    frame = av.AudioFrame.from_ndarray(
        (np.clip(samples, -1, 1) * 32767).astype(np.int16)[None, :], format="s16", layout="mono"
    )
    frame.sample_rate = rate
    out = [f.to_ndarray() for f in resampler.resample(frame)]
    out += [f.to_ndarray() for f in resampler.resample(None)]
    return np.concatenate(out, axis=1).astype(np.int16).tobytes()


def transcribe(samples: npt.NDArray[np.float32], rate: int) -> str:
    """What PocketSphinx hears in mono float samples at `rate`."""
    from pocketsphinx import Decoder

    decoder = Decoder(samprate=RECOGNIZER_RATE, logfn="/dev/null")
    decoder.start_utt()
    decoder.process_raw(_to_16k_pcm(samples, rate), full_utt=True)
    decoder.end_utt()
    hypothesis = decoder.hyp()
    return hypothesis.hypstr if hypothesis else ""
