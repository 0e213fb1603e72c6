"""The front runs on the HTTP processes' event loops: it must never pull in the model's heavy libraries.

It does encode (PyAV, front/encoding.py): each request's audio is encoded where its bytes leave, so that
a worker's thread only synthesizes."""

from __future__ import annotations

import subprocess
import sys

from tts_api.processes import ROOT

FRONT_MODULES = ("admission", "auth", "gateway", "relay", "encoding", "routes", "metrics", "ipc", "page")
HEAVY = ("torch", "kokoro", "misaki", "spacy")


def test_importing_the_front_loads_neither_torch_nor_kokoro() -> None:
    code = (
        "import sys\n"
        + "".join(f"import tts_api.front.{m}\n" for m in FRONT_MODULES)
        + f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "", f"the front imported {loaded}"


def test_the_check_itself_sees_a_heavy_import() -> None:
    """Negative control: the same probe notices torch when something does import it."""
    code = f"import sys, tts_api.model.kmodel; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert "torch" in loaded
