"""`make bundle` and its install.sh as one background command beside the test session."""

from __future__ import annotations

import importlib.metadata
import shutil
import sys
import tempfile
from pathlib import Path

from tests.background import Background

__all__ = ["DEAD_PROXY", "TIMEOUT_S", "Bundle", "torch_version"]

# Any index pip tried to reach would fail through this: the install must not need one.
DEAD_PROXY = {"http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9"}
TIMEOUT_S = 900.0  # building (a minute or two of pip) and installing (about as long), niced


def torch_version() -> str:
    """The torch this checkout's venv runs, as pip names it (`2.13.0+cpu`)."""
    return importlib.metadata.version("torch")


class Bundle:
    """`python -m deploy.bundle` into a fresh folder, then its install.sh into a venv beside it."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="tts-api-bundle-"))
        self.folder = self.root / "bundle"
        self.venv = self.root / "venv"
        logs = self.root / "logs"
        logs.mkdir()
        # This checkout's own torch build: the one pip has at hand (never a CUDA build fetched for a test).
        script = (
            f'"{sys.executable}" -m deploy.bundle --out "{self.folder}" --torch "torch=={torch_version()}" '
            f"&& env http_proxy={DEAD_PROXY['http_proxy']} https_proxy={DEAD_PROXY['https_proxy']} "
            f'sh "{self.folder}/install.sh" "{self.venv}"'
        )
        self.run = Background(["sh", "-c", script], logs)

    def stop(self) -> None:
        self.run.stop()
        shutil.rmtree(self.root, ignore_errors=True)
