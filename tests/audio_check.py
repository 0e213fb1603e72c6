"""Decode audio in tests (PyAV for every format); transcribe is the package's own (PocketSphinx)."""

from __future__ import annotations

import io

import av
import numpy as np
import numpy.typing as npt

from tts_api.model.listening import transcribe

__all__ = ["decode", "transcribe", "word_error_rate"]


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


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word-level edit distance over the reference's length."""
    ref, hyp = reference.split(), hypothesis.split()
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        previous, row[0] = row[0], i
        for j, h in enumerate(hyp, start=1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (r != h))
    return row[-1] / len(ref)
