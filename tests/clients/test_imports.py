"""The CLI and the Wyoming service are thin HTTP clients: they must never load the model's heavy libraries."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tts_api.processes import ROOT

CLIENT_MODULES = (
    "tts_api.cli",
    "tts_api.clients.http",
    "tts_api.clients.speech",
    "tts_api.terminal",
    "tts_api.wyoming.service",
    "tts_api.wyoming.handler",
    "tts_api.wyoming.speech",
    "tts_api.wyoming.sentences",
    "tts_api.wyoming.child",
)
HEAVY = ("torch", "av", "kokoro", "misaki", "spacy", "litserve")


def _loaded_after(imports: str) -> str:
    code = f"import sys\n{imports}\nprint(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.mark.parametrize("module", CLIENT_MODULES)
def test_a_client_module_loads_neither_torch_pyav_kokoro_nor_litserve(module: str) -> None:
    assert _loaded_after(f"import {module}") == ""


def test_the_check_itself_sees_a_heavy_import() -> None:
    """Negative control: the same probe notices PyAV when something does import it."""
    assert "av" in _loaded_after("import tts_api.encoders").split(",")
