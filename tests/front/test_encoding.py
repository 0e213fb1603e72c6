"""A request's encoder in the HTTP process: encodes off the loop, and is closed exactly once, never under a
running call, however the request ends."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from tts_api.front.encoding import EncoderClosed, RequestEncoder
from tts_api.schemas import RequestContext, SpeechRequest
from tts_api.voices import VoiceCatalogue

CONTEXT = RequestContext(VoiceCatalogue(["af_heart"]), max_input_chars=1000, languages=frozenset("a"))

SAMPLES = (np.sin(np.arange(24_000) / 20) * 8000).astype("<i2").tobytes()  # 1 s at the model's rate


def speech(**fields: object) -> SpeechRequest:
    return SpeechRequest.model_validate({"input": "hi", **fields}, context=CONTEXT)


def recorded_closes(encoder: RequestEncoder) -> list[None]:
    """Each call that closes the PyAV encoder inside `encoder`, recorded."""
    inner, closes = encoder._encoder, []
    close = inner.close

    def recorded() -> None:
        closes.append(None)
        close()

    inner.close = recorded  # type: ignore[method-assign]
    return closes


def test_raw_pcm_passes_through_and_a_codec_makes_its_format() -> None:
    async def encode(fmt: str) -> bytes:
        encoder = RequestEncoder(speech(response_format=fmt))
        try:
            return await encoder.write(SAMPLES) + await encoder.finish()
        finally:
            encoder.close()

    assert asyncio.run(encode("pcm")) == SAMPLES
    mp3 = asyncio.run(encode("mp3"))
    assert mp3[:3] == b"ID3" or mp3[0] == 0xFF  # an MP3 stream: a tag or a frame sync
    assert 0 < len(mp3) < len(SAMPLES) // 4


def test_a_close_while_a_chunk_encodes_waits_for_it_and_closes_once() -> None:
    counts: list[int] = []
    encoder = RequestEncoder(speech(response_format="mp3"), counts.append)
    inner = encoder._encoder
    entered, go_on = threading.Event(), threading.Event()
    write = inner.write_pcm

    def slow_write(pcm: np.ndarray) -> bytes:
        entered.set()
        go_on.wait(10)
        return write(pcm)

    inner.write_pcm = slow_write  # type: ignore[method-assign]
    closes = recorded_closes(encoder)

    async def scenario() -> None:
        task = asyncio.ensure_future(encoder.write(SAMPLES))
        assert await asyncio.to_thread(entered.wait, 10)
        encoder.close()  # the request was cut off while its chunk encodes
        assert closes == [] and counts == [1], "closed under a running encode"
        go_on.set()
        await task  # the chunk finishes; the encoder closes as it returns
        encoder.close()  # a second close changes nothing

    asyncio.run(scenario())
    assert len(closes) == 1 and counts == [1, -1]
    with pytest.raises(EncoderClosed):
        asyncio.run(encoder.write(SAMPLES))


def test_a_close_between_chunks_closes_at_once() -> None:
    counts: list[int] = []
    encoder = RequestEncoder(speech(response_format="opus"), counts.append)
    closes = recorded_closes(encoder)
    asyncio.run(encoder.write(SAMPLES))
    encoder.close()
    encoder.close()
    assert len(closes) == 1 and counts == [1, -1]
