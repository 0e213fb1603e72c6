"""End to end on the real Kokoro-82M weights built offline: the server speaks intelligibly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.audio_check import decode, transcribe, word_error_rate
from tts_api.processes import ROOT, ServerProcess

pytestmark = [pytest.mark.slow, pytest.mark.server]


@pytest.mark.parametrize(
    ("text", "voice", "fmt", "heard"),
    [
        (
            "Hello world, it costs $5.20 on 3/4/2025.",
            "af_heart",
            "wav",
            "hello world it costs five dollars and twenty cents on three for twenty twenty five",
        ),
        (
            "The weather today is sunny and warm.\nPlease remember to bring your umbrella tomorrow.",
            "am_michael",
            "pcm",
            "the weather today is sunny and warm please remember to bring your umbrella tomorrow",
        ),
        (
            "Good morning, the train to London is delayed.",
            "bf_emma",
            "wav",
            "good morning the train to london is delayed",
        ),
    ],
)
def test_the_server_speaks_intelligible_english(
    real_server: ServerProcess, text: str, voice: str, fmt: str, heard: str
) -> None:
    response = httpx.post(
        real_server.url + "/v1/audio/speech",
        json={"model": "kokoro", "input": text, "voice": voice, "response_format": fmt},
        timeout=300,
    )
    assert response.status_code == 200, response.text
    samples, rate = decode(response.content, fmt)
    transcript = transcribe(samples, rate)
    assert word_error_rate(heard, transcript) <= 0.25, f"heard {transcript!r}"


def test_random_weights_are_not_intelligible(tiny_server: ServerProcess) -> None:
    """The negative control: the same check fails on the tiny random model."""
    text = "Hello world, it costs five dollars."
    response = httpx.post(
        tiny_server.url + "/v1/audio/speech", json={"input": text, "response_format": "wav"}, timeout=120
    )
    transcript = transcribe(*decode(response.content, "wav"))
    assert word_error_rate("hello world it costs five dollars", transcript) > 0.75, transcript


def test_the_built_directory_verifies_and_a_second_build_does_nothing(real_model_dir: Path) -> None:
    manifest = real_model_dir / "manifest.json"
    assert manifest.is_file(), "the model directory should come from our asset build"
    before = (real_model_dir / "kokoro-v1_0.pth").stat().st_mtime_ns
    command = [sys.executable, "-m", "tts_api.model.assets", "--model-dir", str(real_model_dir)]
    rebuilt = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
    assert "model directory ready" in rebuilt.stderr
    assert (real_model_dir / "kokoro-v1_0.pth").stat().st_mtime_ns == before
    verified = subprocess.run([*command, "--verify"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert verified.returncode == 0, verified.stderr
    assert "verify: ok" in verified.stderr
