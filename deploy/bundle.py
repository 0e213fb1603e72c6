"""An offline bundle: everything a machine with no package registry needs to run tts-api, in one folder.

`python -m deploy.bundle [--out build/bundle] [--torch SPEC] [--model-dir DIR]`, or `make bundle`
(`TORCH_SPEC` picks torch, as for `make install`). The folder holds:
- `wheels/`: tts-api's wheel and a wheel of every package it needs, torch first from `--torch` (a CUDA build
  with its own index: `--torch "torch==2.13.0 --index-url <CUDA wheel index>"`);
- `model/`: the model directory `make model` built (weights, voices, config), hard-linked where it can be;
- `install.sh [VENV]`: makes a venv and installs from `wheels/` alone (no index, no pip configuration);
- `manifest.json`: what it was built for (Python, platform, torch) and every file's size and SHA-256.

Wheels are built for this machine's Python and platform: build the bundle where they match the target's
(`install.sh` refuses another Python version with a message). Copy the folder (or a tar of it) over, then
`sh install.sh && venv/bin/tts-api serve --model-dir model`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from tts_api.model.layout import ModelDir
from tts_api.processes import ROOT
from tts_api.settings import default_model_dir

__all__ = ["build_bundle", "install_script", "main"]


INSTALL_SH = """\
#!/bin/sh
# Installs tts-api from this folder alone: no package index is asked, no pip configuration is read.
# Usage: sh install.sh [VENV]   (default: ./venv beside this script); PYTHON picks the interpreter.
set -eu
here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
venv=${{1:-"$here/venv"}}
python=${{PYTHON:-python3}}
if ! "$python" -c 'import sys; sys.exit(sys.version_info[:2] != ({major}, {minor}))'; then
    echo "install.sh: this bundle was built for Python {major}.{minor} ({platform}); $python is not it" >&2
    echo "install.sh: set PYTHON to a Python {major}.{minor}, or build the bundle with the target's" >&2
    exit 2
fi
export PIP_CONFIG_FILE=/dev/null PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1
"$python" -m venv "$venv"
offline() {{ "$venv/bin/python" -m pip install --no-index --find-links "$here/wheels" "$@"; }}
offline torch  # first, as `make install` does: the others' bare `torch` requirement then finds it installed
offline tts-api
echo "install.sh: installed into $venv; start it with:"
echo "  HF_HUB_OFFLINE=1 $venv/bin/tts-api serve --model-dir $here/model"
"""


def install_script() -> str:
    """install.sh for a bundle built by this Python."""
    return INSTALL_SH.format(
        major=sys.version_info.major,
        minor=sys.version_info.minor,
        platform=f"{sys.platform} {platform.machine()}",
    )


def _say(started: float, message: str) -> None:
    print(f"bundle: [{time.monotonic() - started:6.1f}s] {message}", flush=True)


def _pip_wheel(wheels: Path, *args: str) -> None:
    command = [sys.executable, "-m", "pip", "wheel", "--wheel-dir", str(wheels), *args]
    subprocess.run(command, cwd=ROOT, check=True)


def _torch_version(wheels: Path) -> str:
    """The version of the torch wheel in `wheels` (`torch-2.13.0+cpu-cp311-...whl` -> `2.13.0+cpu`)."""
    (wheel,) = wheels.glob("torch-*.whl")
    return wheel.name.split("-")[1]


def _copy_model(source: Path, target: Path) -> None:
    """The model directory, hard-linked file by file where it is on the same filesystem, else copied."""

    def link_or_copy(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(source, target, copy_function=link_or_copy)


def _manifest(out: Path, torch: str) -> dict[str, object]:
    files = {}
    for path in sorted(p for p in out.rglob("*") if p.is_file() and p.name != "manifest.json"):
        digest = hashlib.sha256()
        with path.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
        files[path.relative_to(out).as_posix()] = {"bytes": path.stat().st_size, "sha256": digest.hexdigest()}
    return {
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "platform": f"{sys.platform} {platform.machine()}",
        "torch": torch,
        "files": files,
    }


def build_bundle(out: Path, torch_spec: str, model_dir: Path) -> dict[str, object]:
    """Build the bundle into `out` (which must not exist yet); its manifest."""
    missing = ModelDir(model_dir).missing()
    if missing:
        raise SystemExit(
            f"bundle: the model is not built at {model_dir} (missing {missing}); run `make model`"
        )
    started = time.monotonic()
    out.mkdir(parents=True)
    wheels = out / "wheels"
    _say(started, f"torch wheels: {torch_spec}")
    _pip_wheel(wheels, *shlex.split(torch_spec))
    torch = _torch_version(wheels)
    constraint = out / "torch-constraint.txt"
    constraint.write_text(f"torch=={torch}\n")  # the others resolve to this torch, not the index's newest
    _say(started, f"tts-api and its dependencies (torch {torch})")
    _pip_wheel(wheels, "--find-links", str(wheels), "--constraint", str(constraint), ".")
    constraint.unlink()
    _say(started, f"{len(list(wheels.glob('*.whl')))} wheels, {_size(wheels)}; model from {model_dir}")
    _copy_model(model_dir, out / "model")
    script = out / "install.sh"
    script.write_text(install_script())
    script.chmod(0o755)
    manifest = _manifest(out, torch)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    _say(started, f"done: {out} ({_size(out)}); copy it over, then `sh install.sh`")
    return manifest


def _size(path: Path) -> str:
    total = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return f"{total / 1e6:.0f} MB"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.bundle", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "bundle", help="default: build/bundle")
    parser.add_argument(
        "--torch",
        default=os.environ.get("TORCH_SPEC", "torch==2.13.0"),
        help="pip's words for torch (default: TORCH_SPEC, else torch==2.13.0)",
    )
    parser.add_argument("--model-dir", type=Path, default=None, help="default: TTS_MODEL_DIR or the cache")
    args = parser.parse_args(argv)
    if args.out.exists():
        parser.error(f"{args.out} exists; remove it first (a bundle is built whole)")
    build_bundle(args.out, args.torch, args.model_dir or default_model_dir())
    return 0


if __name__ == "__main__":
    sys.exit(main())
