"""Decode and transcribe audio in tests: PyAV for every format, PocketSphinx for real speech."""

from __future__ import annotations

import io

import av
import numpy as np
import numpy.typing as npt


def decode(data: bytes, fmt: str) -> tuple[npt.NDArray[np.float32], int]:
    """Mono float32 samples and their sample rate, whatever the container."""
    if fmt == "pcm":
        return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768, 24_000
    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.audio[0]
        frames = [f.to_ndarray().astype(np.float32).reshape(-1) for f in container.decode(stream)]
        rate = stream.codec_context.sample_rate
    samples = np.concatenate(frames) if frames else np.zeros(0, np.float32)
    if np.issubdtype(samples.dtype, np.integer) or np.abs(samples).max(initial=0) > 1.5:
        samples = samples / 32768
    return samples.astype(np.float32), rate


def to_16k_pcm(samples: npt.NDArray[np.float32], rate: int) -> bytes:
    resampler = av.AudioResampler(format="s16", layout="mono", rate=16_000)
    frame = av.AudioFrame.from_ndarray(
        (np.clip(samples, -1, 1) * 32767).astype(np.int16)[None, :], format="s16", layout="mono"
    )
    frame.sample_rate = rate
    out = [f.to_ndarray() for f in resampler.resample(frame)] + [
        f.to_ndarray() for f in resampler.resample(None)
    ]
    return np.concatenate(out, axis=1).astype(np.int16).tobytes()


def transcribe(samples: npt.NDArray[np.float32], rate: int) -> str:
    """What PocketSphinx (offline, US English) hears."""
    from pocketsphinx import Decoder

    decoder = Decoder(samprate=16_000, logfn="/dev/null")
    decoder.start_utt()
    decoder.process_raw(to_16k_pcm(samples, rate), full_utt=True)
    decoder.end_utt()
    hypothesis = decoder.hyp()
    return hypothesis.hypstr if hypothesis else ""
