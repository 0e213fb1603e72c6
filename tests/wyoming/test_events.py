"""Reading Wyoming events with bounds: the wyoming package reads whatever length a header declares."""

from __future__ import annotations

import asyncio
import json

import pytest

from tts_api.wyoming.handler import MAX_EVENT_BYTES, BadEvent, read_event


def read(raw: bytes) -> object:
    async def go() -> object:
        reader = asyncio.StreamReader()
        reader.feed_data(raw)
        reader.feed_eof()
        return await read_event(reader)

    return asyncio.run(go())


def header(**fields: object) -> bytes:
    return json.dumps(fields).encode() + b"\n"


def test_an_event_with_data_and_payload_is_read() -> None:
    data = json.dumps({"text": "Hello."}).encode()
    event = read(header(type="synthesize", data_length=len(data), payload_length=3) + data + b"abc")
    assert event.type == "synthesize" and event.data == {"text": "Hello."} and event.payload == b"abc"


@pytest.mark.parametrize(
    "raw",
    [
        header(type="synthesize", payload_length=10**10),  # would be read into memory as it came
        header(type="synthesize", data_length=MAX_EVENT_BYTES + 1),
        header(type="synthesize", data_length=-5),
        b"{" + b" " * 70_000 + b"\n",  # a header past 64 KiB
        b"not json\n",
        header(data={}),  # no type
        header(type="synthesize", data_length=4) + b"[1] ",  # data that is not an object
    ],
    ids=["huge-payload", "big-data", "negative", "long-header", "not-json", "no-type", "data-not-object"],
)
def test_a_malformed_or_oversized_event_is_refused_before_it_is_read(raw: bytes) -> None:
    with pytest.raises(BadEvent):
        read(raw)


def test_the_end_of_the_stream_or_a_cut_event_is_the_end() -> None:
    assert read(b"") is None
    assert read(header(type="synthesize", payload_length=100) + b"short") is None
