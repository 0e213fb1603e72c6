"""Settings from flags and `TTS_*` variables: the silence trimming switch."""

from __future__ import annotations

import pytest

from server import parse_flags
from tts_api.settings import Settings


def test_trimming_is_on_unless_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TTS_TRIM_SILENCE", raising=False)
    assert Settings().trim_silence is True
    assert Settings(**parse_flags(["--no-trim-silence"])).trim_silence is False  # type: ignore[arg-type]
    monkeypatch.setenv("TTS_TRIM_SILENCE", "0")
    assert Settings().trim_silence is False
    assert Settings(**parse_flags(["--trim-silence"])).trim_silence is True  # type: ignore[arg-type]
    assert "trim_silence" not in parse_flags([])  # no flag: the variable decides
