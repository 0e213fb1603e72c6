"""The OpenAI speech contract on real server processes (tiny model): formats, SSE, SDK, errors."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable

import httpx
import numpy as np
import openai
import pytest

from tests.audio_check import decode
from tests.rawclient import RawRequest, metrics, wait_for
from tests.servers import shared_server
from tts_api.processes import ServerProcess
from tts_api.text.planning import plan_chunks

pytestmark = pytest.mark.server
SPEECH = "/v1/audio/speech"
FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")
# Decoded length = input + priming, within one codec frame: raw MP3 and ADTS streams cannot signal the
# encoder delay (LAME 576 + decoder 529, AAC 1024 samples); a whole MP3 file's LAME header does.
PRIMING = {("mp3", True): 1105, ("aac", True): 1024, ("aac", False): 1024}
FRAME = {"mp3": 576, "aac": 1024, "opus": 480, "flac": 0, "wav": 0, "pcm": 0}
# Paragraphs are always chunk boundaries: at least eight chunks.
EIGHT_PARAGRAPHS = "\n\n".join(f"Paragraph number {i} is spoken as its own chunk." for i in range(8))


def speech(server: ServerProcess, body: dict, **kwargs: object) -> httpx.Response:
    return httpx.post(server.url + SPEECH, json=body, timeout=120, **kwargs)


def idle(server: ServerProcess) -> dict[str, float]:
    return wait_for(
        lambda: (m := metrics(server.url))["tts_cancel_board_entries"] == 0 and m, 60, "an idle server"
    )


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole-file"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_decodes_to_the_synthesized_duration(
    tiny_server: ServerProcess, tiny_expected: Callable[..., int], fmt: str, stream: bool
) -> None:
    text = "Every format.\nDecodes to the right length."
    response = speech(tiny_server, {"input": text, "response_format": fmt, "stream": stream, "seed": 1})
    assert response.status_code == 200
    samples, rate = decode(response.content, fmt)
    decoded_at_24k = len(samples) * 24_000 // rate
    expected = tiny_expected(text) + PRIMING.get((fmt, stream), 0)
    assert abs(decoded_at_24k - expected) <= FRAME[fmt], (decoded_at_24k, expected)
    if not stream:
        assert int(response.headers["content-length"]) == len(response.content)


@pytest.mark.parametrize(
    ("body", "rate", "bytes_per_sample"),
    [
        ({"response_format": "pcm", "sample_rate": 8000}, 8000, 2),
        ({"response_format": "pcm", "sample_rate": 44100}, 44100, 2),
        ({"response_format": "ulaw"}, 8000, 1),  # mu-law's own rate unless asked otherwise
        ({"response_format": "ulaw", "sample_rate": 16000}, 16000, 1),
        ({"response_format": "wav", "sample_rate": 16000}, 16000, None),
        ({"response_format": "mp3", "sample_rate": 22050, "bit_rate": 32000}, 22050, None),
    ],
    ids=["pcm-8k", "pcm-44.1k", "ulaw", "ulaw-16k", "wav-16k", "mp3-22.05k-32kbps"],
)
def test_audio_is_resampled_to_the_rate_asked_for(
    tiny_server: ServerProcess,
    tiny_expected: Callable[..., int],
    body: dict,
    rate: int,
    bytes_per_sample: int | None,
) -> None:
    text = "Resampled for a telephone line."
    response = speech(tiny_server, {"input": text, "seed": 1, **body})
    assert response.status_code == 200
    if bytes_per_sample is not None:
        media = {"pcm": f"audio/pcm; rate={rate}; channels=1", "ulaw": "audio/basic"}[body["response_format"]]
        if body["response_format"] == "ulaw" and rate != 8000:
            media += f"; rate={rate}"
        assert response.headers["content-type"] == media
        samples = len(response.content) // bytes_per_sample
    else:
        decoded, decoded_rate = decode(response.content, body["response_format"])
        assert decoded_rate == rate
        samples = len(decoded)
    expected = tiny_expected(text) * rate / 24_000
    assert abs(samples - expected) <= 0.02 * expected + 1200, (samples, expected)  # a codec frame or so


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"response_format": "pcm", "sample_rate": 12345}, "sample_rate"),
        ({"response_format": "opus", "sample_rate": 44100}, "sample_rate"),
        ({"response_format": "wav", "bit_rate": 64000}, "bit_rate"),
        ({"response_format": "mp3", "bit_rate": 1_000_000}, "bit_rate"),
    ],
    ids=["odd-rate", "rate-opus-lacks", "bit-rate-of-lossless", "bit-rate-too-high"],
)
def test_rates_a_format_cannot_take_are_a_400(tiny_server: ServerProcess, body: dict, param: str) -> None:
    response = speech(tiny_server, {"input": "hi", **body})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == param and param in error["message"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_first_bytes_arrive_before_the_last_chunk_is_synthesized(
    tiny_server: ServerProcess, fmt: str
) -> None:
    before = idle(tiny_server)
    client = RawRequest(tiny_server.url + SPEECH, {"input": EIGHT_PARAGRAPHS, "response_format": fmt})
    head = client.read_until_body()
    synthesized = (
        metrics(tiny_server.url)["tts_chunks_synthesized_total"] - before["tts_chunks_synthesized_total"]
    )
    client.close()
    assert b"200 OK" in head.split(b"\r\n")[0]
    planned = len(plan_chunks(EIGHT_PARAGRAPHS))
    assert planned >= 8
    assert synthesized < planned, "the first bytes only came after every chunk was synthesized"


@pytest.mark.parametrize(
    ("fmt", "media_type"),
    [
        ("mp3", "audio/mpeg"),
        ("opus", "audio/ogg; codecs=opus"),
        ("aac", "audio/aac"),
        ("flac", "audio/flac"),
        ("wav", "audio/wav"),
        ("pcm", "audio/pcm; rate=24000; channels=1"),
    ],
)
def test_the_openai_sdk_streams_every_format(tiny_server: ServerProcess, fmt: str, media_type: str) -> None:
    client = openai.OpenAI(base_url=tiny_server.url + "/v1", api_key="unused", max_retries=0)
    with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input="The SDK streams this.", response_format=fmt
    ) as response:
        assert response.headers["content-type"] == media_type
        data = b"".join(response.iter_bytes())
    samples, _ = decode(data, fmt)
    assert len(samples) > 0 and np.isfinite(samples).all()


def test_the_openai_sdk_reads_server_sent_events(tiny_server: ServerProcess) -> None:
    client = openai.OpenAI(base_url=tiny_server.url + "/v1", api_key="unused", max_retries=0)
    with client.audio.speech.with_streaming_response.create(
        model="gpt-4o-mini-tts",
        voice="af_heart",
        input="One.\n\nTwo.",
        response_format="pcm",
        stream_format="sse",
    ) as response:
        assert response.headers["content-type"] == "text/event-stream"
        events = [
            json.loads(line[len("data: ") :]) for line in response.iter_lines() if line.startswith("data: ")
        ]
    kinds = [e["type"] for e in events]
    assert set(kinds[:-1]) == {"speech.audio.delta", "speech.word_timestamps"}
    assert kinds[-1] == "speech.audio.done"
    usage = events[-1]["usage"]
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    audio = b"".join(base64.b64decode(e["audio"]) for e in events if e["type"] == "speech.audio.delta")
    gap = round(0.7 * 24_000)  # the paragraph break between the two chunks
    assert len(audio) == 2 * (600 * usage["output_tokens"] + gap)


def test_the_openai_sdk_error_carries_the_servers_message(tiny_server: ServerProcess) -> None:
    client = openai.OpenAI(base_url=tiny_server.url + "/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.BadRequestError) as caught:
        client.audio.speech.create(model="tts-1", voice="af_nobody", input="Hello")
    assert "voice 'af_nobody' not found" in str(caught.value)
    assert caught.value.body["param"] == "voice"  # type: ignore[index]


def test_six_concurrent_formats_each_get_their_own_audio(any_server: ServerProcess) -> None:
    requests = {fmt: {"input": f"The {fmt} request." + " word" * i,
                      "response_format": fmt, "seed": 7} for i, fmt in enumerate(FORMATS)}  # fmt: skip
    alone = {fmt: decode(speech(any_server, body).content, fmt)[0] for fmt, body in requests.items()}
    for _ in range(3):
        results: dict[str, httpx.Response] = {}

        def fetch(fmt: str, results: dict[str, httpx.Response] = results) -> None:
            results[fmt] = speech(any_server, requests[fmt])

        threads = [threading.Thread(target=fetch, args=(fmt,)) for fmt in FORMATS]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for fmt in FORMATS:
            assert results[fmt].status_code == 200, results[fmt].text
            together = decode(results[fmt].content, fmt)[0]
            assert np.array_equal(together, alone[fmt]), f"{fmt}: not the audio of its own text"


@pytest.mark.parametrize("voice", ["ef_dora", "af_bella+af_sky", "af_bella(2)+bf_emma(1)", "nova", "sage"])
def test_languages_blends_and_openai_names_speak(tiny_server: ServerProcess, voice: str) -> None:
    response = speech(tiny_server, {"input": "Hola, hello.", "voice": voice, "response_format": "pcm"})
    assert response.status_code == 200 and len(response.content) > 0


@pytest.mark.parametrize("lang_code", ["e", "f", "h", "i", "p"])
def test_the_espeak_languages_work_offline(tiny_server: ServerProcess, lang_code: str) -> None:
    body = {"input": "Uno dos tres.", "voice": "af_heart", "lang_code": lang_code, "response_format": "pcm"}
    response = speech(tiny_server, body)
    assert response.status_code == 200 and len(response.content) > 0


def test_a_japanese_voice_is_a_clear_400_until_its_g2p_is_installed(tiny_server: ServerProcess) -> None:
    response = speech(tiny_server, {"input": "こんにちは", "voice": "jf_alpha"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "language_unavailable"


BAD_REQUESTS = [
    ("empty input", {"input": ""}, 400, "input"),
    ("whitespace input", {"input": "  \n "}, 400, "input"),
    ("over-long input", {"input": "a" * 50_001}, 413, "input"),
    ("missing input", {"voice": "af_heart"}, 400, "input"),
    ("unknown voice", {"input": "hi", "voice": "af_nobody"}, 400, "voice"),
    ("parent path voice", {"input": "hi", "voice": "../x"}, 400, "voice"),
    ("file voice", {"input": "hi", "voice": "x.pt"}, 400, "voice"),
    ("absolute path voice", {"input": "hi", "voice": "/etc/passwd"}, 400, "voice"),
    ("unknown format", {"input": "hi", "response_format": "ogg"}, 400, "response_format"),
    ("speed 0", {"input": "hi", "speed": 0}, 400, "speed"),
    ("speed 5", {"input": "hi", "speed": 5}, 400, "speed"),
    ("speed fast", {"input": "hi", "speed": "fast"}, 400, "speed"),
    ("input not a string", {"input": ["a", "b"]}, 400, "input"),
    ("stream not a bool", {"input": "hi", "stream": "maybe"}, 400, "stream"),
    ("voice not a string", {"input": "hi", "voice": 12}, 400, "voice"),
    ("unknown model", {"input": "hi", "model": "tts-9"}, 400, "model"),
    ("unknown stream format", {"input": "hi", "stream_format": "websocket"}, 400, "stream_format"),
]


@pytest.mark.parametrize(
    ("body", "status", "param"), [case[1:] for case in BAD_REQUESTS], ids=[c[0] for c in BAD_REQUESTS]
)
def test_bad_requests_get_an_openai_shaped_4xx_and_the_server_stays_up(
    tiny_server: ServerProcess, body: dict, status: int, param: str
) -> None:
    response = speech(tiny_server, body)
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param and error["message"] and error["type"] == "invalid_request_error"
    assert response.headers["x-request-id"]
    assert speech(tiny_server, {"input": "Next.", "response_format": "pcm"}).status_code == 200


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"{not json", "not valid JSON"), (b'[{"input": "hi"}]', "JSON object"), (b"", "not valid JSON")],
    ids=["non-json", "json-array", "empty-body"],
)
def test_bodies_that_are_not_a_json_object_are_400(
    tiny_server: ServerProcess, content: bytes, message: str
) -> None:
    response = httpx.post(
        tiny_server.url + SPEECH, content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert message in response.json()["error"]["message"]


def test_voices_lists_all_voices_with_language_and_gender(tiny_server: ServerProcess) -> None:
    voices = httpx.get(tiny_server.url + "/v1/audio/voices").json()
    by_id = {v["id"]: v for v in voices["voices"]}
    assert by_id["bf_emma"] == {
        "id": "bf_emma",
        "name": "bf_emma",
        "language": "en-gb",
        "lang_code": "b",
        "gender": "female",
        "available": True,
    }
    assert by_id["jf_alpha"]["available"] is False
    assert voices["aliases"]["alloy"] == "af_alloy"


def test_models_and_unknown_routes_answer_in_the_openai_shape(tiny_server: ServerProcess) -> None:
    models = httpx.get(tiny_server.url + "/v1/models").json()
    assert {m["id"] for m in models["data"]} >= {"kokoro", "tts-1", "tts-1-hd", "gpt-4o-mini-tts"}
    assert httpx.get(tiny_server.url + "/v1/models/tts-1").json()["id"] == "tts-1"
    for path in ("/v1/models/whisper-1", "/v1/nothing-here"):
        response = httpx.get(tiny_server.url + path)
        assert response.status_code == 404
        assert response.json()["error"]["message"]


# A server with an API key and room for a single pending request.
strict_server = shared_server("strict_server", "--max-pending", "1", env={"TTS_API_KEY": "s3cret"})


def test_an_api_key_protects_the_v1_routes_but_not_health(strict_server: ServerProcess) -> None:
    assert httpx.get(strict_server.url + "/health").status_code == 200
    unauthorized = speech(strict_server, {"input": "hi", "response_format": "pcm"})
    assert unauthorized.status_code == 401
    assert unauthorized.json()["error"]["code"] == "invalid_api_key"
    wrong = openai.OpenAI(base_url=strict_server.url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError, match="API key"):
        wrong.audio.speech.create(model="tts-1", voice="alloy", input="Hello")
    right = openai.OpenAI(base_url=strict_server.url + "/v1", api_key="s3cret", max_retries=0)
    assert len(
        right.audio.speech.create(model="tts-1", voice="alloy", input="Hi", response_format="pcm").content
    )
    assert httpx.get(strict_server.url + "/v1/models").status_code == 401


def test_a_full_server_answers_503_with_retry_after(strict_server: ServerProcess) -> None:
    auth = {"Authorization": "Bearer s3cret"}
    busy = RawRequest(
        strict_server.url + SPEECH, {"input": EIGHT_PARAGRAPHS, "response_format": "pcm"}, headers=auth
    )
    busy.read_until_body()
    try:
        refused = speech(strict_server, {"input": "One more.", "response_format": "pcm"}, headers=auth)
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "2"
        assert refused.json()["error"]["code"] == "server_overloaded"
    finally:
        busy.close()
    assert "tts_requests_rejected_total" in httpx.get(strict_server.url + "/metrics").text
