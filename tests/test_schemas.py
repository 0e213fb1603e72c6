"""Request validation: every bad input gets a status, a param and a message a client can act on."""

from __future__ import annotations

import json

import pytest

from tts_api.errors import InputTooLong, InvalidRequest, TTSError
from tts_api.schemas import PlannedSpeech, RequestContext, parse_speech_request
from tts_api.voices import VoiceCatalogue

CONTEXT = RequestContext(
    catalogue=VoiceCatalogue(["af_heart", "af_bella", "af_sky", "bf_emma", "ef_dora", "jf_alpha"]),
    max_input_chars=100,
    languages=frozenset("abe"),
)


def parse(body: object) -> PlannedSpeech:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return parse_speech_request(raw, CONTEXT)


@pytest.mark.parametrize(
    ("body", "status", "param", "message"),
    [
        ({"input": ""}, 400, "input", "no speakable text"),
        ({"input": "   \n\t"}, 400, "input", "no speakable text"),
        ({"input": "?!..."}, 400, "input", "no speakable text"),
        ({"input": "x" * 101}, 413, "input", "at most 100"),
        ({}, 400, "input", "input is required"),
        ({"input": 5}, 400, "input", "valid string"),
        ({"input": "hi", "voice": "af_nope"}, 400, "voice", "'af_nope' not found"),
        ({"input": "hi", "voice": "../x"}, 400, "voice", "not a voice id"),
        ({"input": "hi", "voice": "x.pt"}, 400, "voice", "not a voice id"),
        ({"input": "hi", "voice": "/etc/passwd"}, 400, "voice", "not a voice id"),
        ({"input": "hi", "voice": "af_heart+"}, 400, "voice", "not a voice id"),
        ({"input": "hi", "voice": "af_heart(0)"}, 400, "voice", "must be positive"),
        ({"input": "hi", "voice": 7}, 400, "voice", "valid string"),
        ({"input": "hi", "voice": "jf_alpha"}, 400, "lang_code", "needs a G2P package"),
        ({"input": "hi", "lang_code": "xx"}, 400, "lang_code", "not a language"),
        ({"input": "hi", "response_format": "ogg"}, 400, "response_format", "must be one of"),
        ({"input": "hi", "speed": 0}, 400, "speed", "from 0.25 to 4.0, got 0"),
        ({"input": "hi", "speed": 5}, 400, "speed", "from 0.25 to 4.0, got 5"),
        ({"input": "hi", "speed": "fast"}, 400, "speed", "got 'fast'"),
        ({"input": "hi", "model": "tts-2"}, 400, "model", "'tts-2' not found"),
        ({"input": "hi", "stream_format": "ws"}, 400, "stream_format", "must be one of"),
        (b"not json", 400, None, "not valid JSON"),
        (b"\xff\xfe", 400, None, "not valid JSON"),
        ([{"input": "hi"}], 400, None, "must be a JSON object"),
    ],
    ids=lambda v: str(v)[:40] if not isinstance(v, int) else None,
)
def test_bad_requests_are_rejected_with_a_clear_error(
    body: object, status: int, param: str, message: str
) -> None:
    with pytest.raises(TTSError) as caught:
        parse(body)
    error = caught.value
    assert error.status == status
    assert error.param == param
    assert message in error.message
    assert error.body()["error"]["type"] == "invalid_request_error"


def test_too_long_input_is_a_413() -> None:
    with pytest.raises(InputTooLong):
        parse({"input": "word " * 30})


def test_defaults_follow_openai() -> None:
    request = parse({"input": "Hello"}).request
    assert (request.model, request.voice, request.response_format, request.speed) == (
        "kokoro",
        "af_heart",
        "mp3",
        1.0,
    )
    assert request.stream and request.stream_format == "audio"


@pytest.mark.parametrize("model", ["kokoro", "tts-1", "tts-1-hd", "gpt-4o-mini-tts"])
def test_openai_model_names_are_accepted(model: str) -> None:
    assert parse({"input": "Hello", "model": model}).request.model == model


def test_unknown_fields_are_ignored_and_instructions_accepted() -> None:
    request = parse(
        {"input": "Hello", "instructions": "whisper", "temperature": 3, "voice": {"id": "af_bella"}}
    ).request
    assert request.voice_expression == "af_bella"
    assert request.instructions == "whisper"


def test_language_comes_from_the_voice_or_lang_code() -> None:
    assert parse({"input": "Hola", "voice": "ef_dora"}).lang_code == "e"
    assert parse({"input": "Hi", "voice": "af_heart", "lang_code": "en-gb"}).lang_code == "b"


def test_a_japanese_voice_is_accepted_with_an_installed_lang_code() -> None:
    assert parse({"input": "Hi", "voice": "jf_alpha", "lang_code": "a"}).lang_code == "a"


def test_errors_are_invalid_request_subclasses() -> None:
    with pytest.raises(InvalidRequest):
        parse({"input": ""})


def test_the_script_comes_with_the_request_and_is_normalized_only_for_english() -> None:
    def spoken(body: dict[str, object]) -> str:
        return parse(body).script.source.text

    assert spoken({"input": "**Bold** move"}) == "Bold move"
    assert "**Bold**" in spoken({"input": "**Bold** move", "normalize": False})
    assert "**Bold**" in spoken({"input": "**Bold** move", "voice": "ef_dora"})


def test_pause_tags_that_add_up_past_the_bound_are_a_413_before_anything_is_planned() -> None:
    """3.6 KB of tags asked for an hour of silence (and, in one piece, 825 MB more in the server)."""
    context = RequestContext(VoiceCatalogue(["af_heart"]), max_input_chars=50_000, languages=frozenset("a"))
    within = parse_speech_request({"input": "Hi. " + "[pause:10s]" * 30}, context)
    assert within.script.pause_s == 300.0
    with pytest.raises(InputTooLong) as error:
        parse_speech_request({"input": "Hi. " + "[pause:10s]" * 31}, context)
    assert error.value.code == "pause_too_long" and "310" in error.value.message


def test_audio_longer_than_the_bound_is_a_413_pauses_and_speed_included() -> None:
    context = RequestContext(
        VoiceCatalogue(["af_heart"]), max_input_chars=100_000, languages=frozenset("a"), max_audio_s=600
    )
    words = "word " * 1_500  # about 400 s at speed 1
    parse_speech_request({"input": words}, context)
    with pytest.raises(InputTooLong) as error:
        parse_speech_request({"input": words, "speed": 0.5}, context)
    assert error.value.code == "audio_too_long" and error.value.status == 413
    with pytest.raises(InputTooLong):
        parse_speech_request({"input": words + "[pause:10s]" * 25}, context)
