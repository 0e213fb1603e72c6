"""The `/v1/audio/speech` request schema, validated identically in the front and in the workers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from .errors import InputTooLong, InvalidRequest, TTSError
from .formats import OPUS_RATES, SAMPLE_RATE, SAMPLE_RATES, ULAW_RATE, ResponseFormat
from .settings import DEFAULT_MAX_AUDIO_S, DEFAULT_MAX_PAUSE_S, Settings
from .text.segmentation import InvalidPauseTag, Paragraph, Script, segment
from .voices import ENGLISH, LANGUAGES, VoiceBlend, VoiceCatalogue, VoiceNotFound

__all__ = ["MODEL_IDS", "PlannedSpeech", "RequestContext", "SpeechRequest", "parse_speech_request"]

# OpenAI's model names are accepted so existing clients work unchanged; all mean Kokoro-82M.
MODEL_IDS = ("kokoro", "tts-1", "tts-1-hd", "gpt-4o-mini-tts", "gpt-4o-mini-tts-2025-12-15")
SPEED_MIN, SPEED_MAX = 0.25, 4.0
_CODE_BY_LANGUAGE = {name: code for code, name in LANGUAGES.items()}  # "en-gb" -> "b"


@dataclass(frozen=True)
class RequestContext:
    """What validation needs to know about this deployment."""

    catalogue: VoiceCatalogue
    max_input_chars: int
    languages: frozenset[str]  # lang codes whose G2P is installed
    max_pause_s: float = DEFAULT_MAX_PAUSE_S  # pause tags, added up
    max_audio_s: float = DEFAULT_MAX_AUDIO_S  # the whole audio, estimated from the text

    @classmethod
    def from_settings(
        cls, settings: Settings, catalogue: VoiceCatalogue, languages: frozenset[str]
    ) -> RequestContext:
        """The context `settings` configure."""
        return cls(
            catalogue=catalogue,
            max_input_chars=settings.max_input_chars,
            languages=languages,
            max_pause_s=settings.max_pause_s,
            max_audio_s=settings.max_audio_s,
        )


class VoiceRef(BaseModel):
    """OpenAI's object form of a voice: `{"id": "af_heart"}`."""

    id: str


class SpeechRequest(BaseModel):
    """OpenAI's speech request plus Kokoro extensions (sent by the OpenAI SDK through `extra_body`)."""

    # OpenAI ignores fields it does not know; so do we.
    model_config = ConfigDict(extra="ignore", frozen=True)

    model: str = "kokoro"
    input: str
    voice: str | VoiceRef = "af_heart"
    # OpenAI: response_format defaults to mp3.
    response_format: ResponseFormat = "mp3"
    speed: float = Field(default=1.0, ge=SPEED_MIN, le=SPEED_MAX)
    # Extension: "ndjson" carries the same events as "sse", one JSON object per line.
    stream_format: Literal["audio", "sse", "ndjson"] = "audio"
    stream: bool = True
    # Accepted for compatibility; Kokoro cannot follow style instructions.
    instructions: str | None = None
    lang_code: str | None = None
    # Extension: strip Markdown and emoji, read URLs and emails aloud (English voices).
    normalize: bool = True
    # Extension: Kokoro's vocoder adds random noise; a seed makes the audio reproducible.
    seed: int | None = Field(default=None, ge=0, le=2**63 - 1)
    # Extensions: the model's 24 kHz resampled to another rate (telephony's 8 kHz, a player's 44.1 kHz),
    # and the lossy codecs' bit rate (64 kbps by default).
    sample_rate: int | None = None
    bit_rate: int | None = Field(default=None, ge=16_000, le=320_000)

    @property
    def rate(self) -> int:
        """The audio's sample rate: the one asked for, else the model's (telephony's 8 kHz for mu-law)."""
        return self.sample_rate or (ULAW_RATE if self.response_format == "ulaw" else SAMPLE_RATE)

    @field_validator("sample_rate")
    @classmethod
    def _rate_fits_the_format(cls, rate: int | None, info: ValidationInfo) -> int | None:
        fmt = info.data.get("response_format", "mp3")
        rates = OPUS_RATES if fmt == "opus" else SAMPLE_RATES
        if rate is not None and rate not in rates:
            raise ValueError(
                f"sample_rate {rate} is not available for {fmt}; use one of {', '.join(map(str, rates))}"
            )
        return rate

    @field_validator("bit_rate")
    @classmethod
    def _bit_rate_fits_the_format(cls, bit_rate: int | None, info: ValidationInfo) -> int | None:
        fmt = info.data.get("response_format", "mp3")
        if bit_rate is not None and fmt not in ("mp3", "opus", "aac"):
            raise ValueError(f"bit_rate applies to mp3, opus and aac, not {fmt}")
        return bit_rate

    @field_validator("model")
    @classmethod
    def _known_model(cls, model: str) -> str:
        if model not in MODEL_IDS:
            raise ValueError(f"model {model!r} not found; use one of {', '.join(MODEL_IDS)}")
        return model

    @field_validator("input")
    @classmethod
    def _speakable(cls, text: str, info: ValidationInfo) -> str:
        context = _context(info)
        if len(text) > context.max_input_chars:
            raise InputTooLong(
                f"input is {len(text)} characters; this server accepts at most {context.max_input_chars}",
                param="input",
            )
        return text

    @field_validator("lang_code")
    @classmethod
    def _known_language(cls, lang_code: str | None, info: ValidationInfo) -> str | None:
        if lang_code is None:
            return None
        code = _CODE_BY_LANGUAGE.get(lang_code.lower(), lang_code.lower())
        _require_language(code, _context(info), f"lang_code {lang_code!r}")
        return code

    @property
    def voice_expression(self) -> str:
        return self.voice.id if isinstance(self.voice, VoiceRef) else self.voice


@dataclass(frozen=True)
class PlannedSpeech:
    """A valid request and what validating it worked out: its voice, language and segmented text."""

    request: SpeechRequest
    voice: VoiceBlend
    lang_code: str  # `lang_code` if given, else the first voice's prefix
    script: Script  # `request.input`, normalized (English) and segmented: what chunks are cut from


def _context(info: ValidationInfo) -> RequestContext:
    if not isinstance(info.context, RequestContext):
        raise TypeError("SpeechRequest must be validated with a RequestContext")
    return info.context


def _require_language(code: str, context: RequestContext, what: str) -> None:
    if code not in LANGUAGES:
        raise InvalidRequest(
            f"{what} is not a language; use one of {', '.join(LANGUAGES)}", param="lang_code"
        )
    if code not in context.languages:
        raise InvalidRequest(
            f"{what} ({LANGUAGES[code]}) needs a G2P package this server does not have installed",
            param="lang_code",
            code="language_unavailable",
        )


def parse_speech_request(
    body: bytes | dict[str, Any], context: RequestContext, *, live: bool = False
) -> PlannedSpeech:
    """Validate and plan a request body; raise TTSError with the message and param a client can act on.

    `live`: the text comes later, in pieces (a voice agent's context): `input` may be empty, and its bounds
    are kept as it grows.
    """
    if isinstance(body, bytes | bytearray):
        try:
            body = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidRequest(f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    try:
        request = SpeechRequest.model_validate(body, context=context)
    except ValidationError as exc:
        raise _from_validation_error(exc) from None
    try:
        voice = context.catalogue.resolve(request.voice_expression)
    except VoiceNotFound as exc:
        raise InvalidRequest(str(exc), param="voice", code="voice_not_found") from None
    if request.lang_code is None:
        _require_language(voice.lang_code, context, f"voice {request.voice_expression!r}")
    lang_code = request.lang_code or voice.lang_code
    try:
        # Normalization reads URLs and symbols in English, so only English text gets it.
        script = segment(request.input, normalize=request.normalize and lang_code in ENGLISH)
    except InvalidPauseTag as exc:
        raise InvalidRequest(str(exc), param="input", code="invalid_pause_tag") from None
    if live:
        return PlannedSpeech(request, voice, lang_code, script)
    if not any(isinstance(part, Paragraph) and part.has_speech for part in script.parts):
        raise InvalidRequest("input has no speakable text", param="input")
    _check_length(script, request.speed, context)
    return PlannedSpeech(request, voice, lang_code, script)


def _check_length(script: Script, speed: float, context: RequestContext) -> None:
    """What the text asks for stays within the server's bounds: its pauses, and its audio in all."""
    if script.pause_s > context.max_pause_s:
        raise InputTooLong(
            f"input's pause tags add up to {script.pause_s:g} s of silence; this server allows at most "
            f"{context.max_pause_s:g} s per request",
            param="input",
            code="pause_too_long",
        )
    audio_s = script.audio_s(speed)
    if audio_s > context.max_audio_s:
        raise InputTooLong(
            f"input would make about {audio_s / 60:.0f} minutes of audio at speed {speed:g}; this server "
            f"makes at most {context.max_audio_s / 60:g} minutes per request: split the text",
            param="input",
            code="audio_too_long",
        )


def _from_validation_error(exc: ValidationError) -> TTSError:
    """The first problem, phrased for the client, keyed by pydantic's error type (not its text)."""
    error = exc.errors(include_url=False)[0]
    field = str(error["loc"][0]) if error["loc"] else "body"
    param = field if error["loc"] else None
    kind, ctx, given = error["type"], error.get("ctx", {}), error.get("input")
    if kind == "missing":
        message = f"{field} is required"
    elif kind == "value_error":
        message = str(ctx["error"])
    elif field == "speed":
        message = f"speed must be a number from {SPEED_MIN} to {SPEED_MAX}, got {given!r}"
    elif kind == "literal_error":
        message = f"{field} must be one of {ctx['expected']}, got {given!r}"
    else:
        message = f"{field}: {error['msg']}, got {given!r}"
    return InvalidRequest(message, param=param)
