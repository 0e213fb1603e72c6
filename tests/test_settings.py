"""Settings from flags and `TTS_*` variables: the silence trimming switch."""

from __future__ import annotations

import pytest

from tts_api.server import parse_flags
from tts_api.settings import EmulatedSpec, Settings, parse_emulated


def test_trimming_is_on_unless_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TTS_TRIM_SILENCE", raising=False)
    assert Settings().trim_silence is True
    assert Settings(**parse_flags(["--no-trim-silence"])).trim_silence is False  # type: ignore[arg-type]
    monkeypatch.setenv("TTS_TRIM_SILENCE", "0")
    assert Settings().trim_silence is False
    assert Settings(**parse_flags(["--trim-silence"])).trim_silence is True  # type: ignore[arg-type]
    assert "trim_silence" not in parse_flags([])  # no flag: the variable decides


@pytest.mark.parametrize(
    ("flags", "env", "wyoming_host"),
    [
        (["--host", "0.0.0.0"], {}, "0.0.0.0"),  # no key: nothing to bypass
        (["--host", "0.0.0.0", "--api-key", "k"], {}, "127.0.0.1"),
        (["--host", "::", "--api-key", "k"], {}, "::1"),
        (["--host", "0.0.0.0", "--api-key", "k", "--wyoming-open"], {}, "0.0.0.0"),
        (["--host", "0.0.0.0"], {"TTS_API_KEY": "k", "TTS_WYOMING_OPEN": "1"}, "0.0.0.0"),
        (["--host", "0.0.0.0"], {"TTS_API_KEY": "k"}, "127.0.0.1"),
    ],
)
def test_wyoming_listens_on_loopback_only_when_a_key_guards_the_api_unless_opened(
    monkeypatch: pytest.MonkeyPatch, flags: list[str], env: dict[str, str], wyoming_host: str
) -> None:
    """Wyoming cannot send a key: open on every interface, it would synthesize for anyone the key keeps
    out of /v1/* (the image enables Wyoming on 0.0.0.0:10200)."""
    for name in ("TTS_API_KEY", "TTS_WYOMING_OPEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings(**parse_flags([*flags, "--wyoming-port", "10200"]))  # type: ignore[arg-type]
    assert settings.wyoming_host == wyoming_host


@pytest.mark.parametrize("off", ["off", "", "0", "none"])
def test_an_environment_can_switch_wyoming_off(monkeypatch: pytest.MonkeyPatch, off: str) -> None:
    monkeypatch.setenv("TTS_WYOMING_PORT", off)
    assert Settings().wyoming_port is None
    monkeypatch.setenv("TTS_WYOMING_PORT", "10200")
    assert Settings().wyoming_port == 10200


def test_the_emulated_engine_takes_listeners_a_fixed_cost_and_a_batch_size() -> None:
    assert parse_emulated("auto") is None
    assert parse_emulated("emulated:8") == EmulatedSpec(8.0)
    assert parse_emulated("emulated:8:0.05") == EmulatedSpec(8.0, 0.05)
    spec = parse_emulated("emulated:8:0.05:64")
    assert spec == EmulatedSpec(8.0, 0.05, 64) and spec.label == "emulated:8:0.05:64"
    for bad in ("emulated:0", "emulated:8:0.05:0", "emulated:8::64", "emulated:x"):
        with pytest.raises(ValueError, match="BATCH"):
            parse_emulated(bad)
