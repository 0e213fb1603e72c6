"""A request's encoder, in the HTTP process that sends its bytes, run off the event loop.

Workers hand over 16-bit PCM at the model's rate; the format the client asked for is made here, where its
bytes leave. A worker's one thread then only synthesizes (on a GPU its launches wait for no encoder: mp3
alone would cap a worker near 50 audio-s per s, bench/worker_cpu.py), and the encoding of many requests
spreads over the HTTP processes (`--api-servers`).

A chunk is encoded in a thread, so the loop goes on serving the process's other requests meanwhile (PyAV
gives the GIL back between codec frames). The relay awaits each call before the next, so calls never
overlap; `close` may come while one runs (the request was cut off), and then that call closes the encoder
as it returns: exactly once, never under a running call.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import TypeVar

import numpy as np

from ..encoders import Patch, open_encoder
from ..formats import SAMPLE_RATE
from ..schemas import SpeechRequest

__all__ = ["EncoderClosed", "RequestEncoder"]

T = TypeVar("T")


class EncoderClosed(RuntimeError):
    """Raised by a call after the request's encoder was closed."""


class RequestEncoder:
    """One request's encoder (see the module docstring). `count` hears +1 when it opens and -1 when it
    closes (the tts_open_encoders gauge); it may be called from a thread."""

    def __init__(self, speech: SpeechRequest, count: Callable[[int], None] | None = None) -> None:
        self._encoder = open_encoder(
            speech.response_format, streaming=speech.stream, rate=speech.rate, bit_rate=speech.bit_rate
        )
        self._count = count or _ignore
        self._count(1)
        # Raw samples at the model's rate are their own encoding: they go out as they came.
        self._as_is = speech.response_format == "pcm" and speech.rate == SAMPLE_RATE
        self._state = threading.Lock()
        self._busy = False
        self._closing = False

    @property
    def patches(self) -> list[Patch]:
        """What to write over a file's bytes handed out earlier, once `finish` returned."""
        return self._encoder.patches

    async def write(self, pcm: bytes) -> bytes:
        """Encode 16-bit little-endian samples at the model's rate; the bytes ready now (may be b"")."""
        if self._as_is:
            if self._closing:
                raise EncoderClosed("the request's encoder was closed")
            return pcm
        samples = np.frombuffer(pcm, dtype="<i2")
        return await asyncio.to_thread(self._call, self._encoder.write_pcm, samples)

    async def finish(self) -> bytes:
        """Flush the encoder: the last bytes (then `patches` holds a file's header fixes)."""
        return await asyncio.to_thread(self._call, self._encoder.finish)

    def close(self) -> None:
        """Release the encoder, now or as the call running in a thread returns; safe more than once."""
        with self._state:
            if self._closing:
                return
            self._closing = True
            now = not self._busy
        if now:
            self._release()

    def _call(self, work: Callable[..., T], *args: object) -> T:
        with self._state:
            if self._closing:
                raise EncoderClosed("the request's encoder was closed")
            self._busy = True
        try:
            return work(*args)
        finally:
            with self._state:
                self._busy = False
                closed_meanwhile = self._closing
            if closed_meanwhile:
                self._release()

    def _release(self) -> None:
        self._encoder.close()
        self._count(-1)


def _ignore(_: int) -> None:
    return None
