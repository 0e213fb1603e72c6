"""The built wheel starts itself: installed into a fresh venv, its `tts-api serve` and `python -m tts_api`
run from a directory outside the source tree and take the server's flags. (That such a venv serves speech
is tests/bundle/'s check: the offline bundle installs this wheel with its real dependencies and speaks.)

The wheel goes in with `--no-deps`; its dependencies come from this checkout's venv through a path file
(installing torch and the rest again would cost minutes of the suite). The fresh venv's own site-packages
comes first on the path, so `tts_api` is the wheel's copy, never this checkout's editable one, and the wheel's
declared dependencies are checked against pyproject.toml's (through the checkout's own install), which is
what pip resolves for a user.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tts_api.processes import ROOT

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(dist),
            ".",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = dist.glob("tts_api-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv (outside the source tree) with the wheel installed and this checkout's dependencies."""
    root = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=120)
    python = root / "bin" / "python"
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)]
    subprocess.run(install, check=True, capture_output=True, timeout=300)
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    (site / "checkout-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return root


def outside(venv: Path, *command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a command of the fresh venv from `cwd`, with nothing of the checkout on the path."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(
        [str(venv / "bin" / command[0]), *command[1:]],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_wheel_declares_the_dependencies_pyproject_pins(wheel: Path) -> None:
    # The checkout's install (`make install`, redone when pyproject.toml changes) read them from there.
    project = [Requirement(r) for r in importlib.metadata.requires("tts-api") or []]
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        lines = archive.read(metadata).decode().splitlines()
        names = archive.namelist()
    required = {Requirement(line.split(": ", 1)[1]) for line in lines if line.startswith("Requires-Dist: ")}
    runtime = {(r.name, r.specifier) for r in required if r.marker is None}
    assert runtime == {(r.name, r.specifier) for r in project if r.marker is None}
    assert len(runtime) > 10  # the pins themselves, not an empty list on both sides
    # What the server reads at run time besides code: the model config, the web page.
    assert "tts_api/data/kokoro-config.json" in names
    assert any(n.startswith("tts_api/front/static/") for n in names)
    assert "tts_api/server.py" in names and "tts_api/__main__.py" in names


def test_the_installed_package_is_the_wheels_and_exposes_the_server_to_compose(
    venv: Path, tmp_path: Path
) -> None:
    probe = (
        "import tts_api, tts_api.app, tts_api.server, tts_api.worker.api, litserve as ls;"
        "assert issubclass(tts_api.worker.api.SpeechAPI, ls.LitAPI);"
        "assert callable(tts_api.app.build_server);"
        "print(tts_api.__file__)"
    )
    result = outside(venv, "python", "-c", probe, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).is_relative_to(venv), result.stdout
    for command in (("tts-api", "serve", "--help"), ("python", "-m", "tts_api", "--help")):
        shown = outside(venv, *command, cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr
        assert "--wyoming-port" in shown.stdout and "--max-pending" in shown.stdout
    bad = outside(venv, "python", "-m", "tts_api", "--port", "0", cwd=tmp_path)
    assert bad.returncode == 2 and "invalid port" in bad.stderr, bad.stderr
