"""`make bundle` makes a folder that installs and runs tts-api on a machine with no package registry: its
install.sh asks no index (pip goes through a proxy that answers nothing), the server starts from the venv
it made, outside the source tree, on the bundle's model, and speaks."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.audio_check import decode, transcribe, word_error_rate
from tests.bundle.background import DEAD_PROXY, Bundle, torch_version
from tts_api.model.layout import ModelDir
from tts_api.processes import ServerProcess, free_port

pytestmark = pytest.mark.server

TEXT = "The package starts itself from anywhere."
HEARD = "the package starts itself from anywhere"


@pytest.fixture(scope="module")
def bundled_server(bundle: Bundle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    cwd = tmp_path_factory.mktemp("elsewhere")
    port = free_port()
    command = [str(bundle.venv / "bin" / "tts-api"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--model-dir", str(bundle.folder / "model")]
    env = {"PYTHONPATH": "", **DEAD_PROXY}
    server = ServerProcess(command, port, cwd / "server.log", name="bundled tts-api", env=env, cwd=cwd)
    try:
        yield server.wait_ready()
    finally:
        server.stop()


def test_the_bundle_holds_the_wheels_the_model_and_a_manifest_of_both(bundle: Bundle) -> None:
    manifest = json.loads((bundle.folder / "manifest.json").read_text())
    assert manifest["python"] == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert manifest["torch"] == torch_version()
    files = manifest["files"]
    wheels = [name for name in files if name.startswith("wheels/")]
    assert any(n.startswith("wheels/tts_api-") for n in wheels) and any("/torch-" in n for n in wheels)
    assert len(wheels) > 50 and "install.sh" in files
    assert ModelDir(bundle.folder / "model").missing() == []
    config = bundle.folder / "model" / "config.json"
    entry = files["model/config.json"]
    assert entry == {
        "bytes": config.stat().st_size,
        "sha256": hashlib.sha256(config.read_bytes()).hexdigest(),
    }


def test_install_sh_made_a_venv_of_the_bundles_packages_alone(bundle: Bundle, tmp_path: Path) -> None:
    probe = "import tts_api, torch, litserve; print(tts_api.__file__); print(torch.__version__)"
    shown = subprocess.run(
        [str(bundle.venv / "bin" / "python"), "-c", probe],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    where, torch = shown.stdout.split()
    assert Path(where).is_relative_to(bundle.venv)  # the bundle's wheel, not this checkout
    assert torch == torch_version()
    wrong = subprocess.run(
        ["sh", str(bundle.folder / "install.sh"), str(tmp_path / "venv")],
        env={"PATH": "/usr/bin:/bin", "PYTHON": "/bin/false"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert wrong.returncode == 2 and "this bundle was built for Python" in wrong.stderr


def test_the_bundled_server_speaks_from_outside_the_source_tree(bundled_server: ServerProcess) -> None:
    response = httpx.post(
        bundled_server.url + "/v1/audio/speech",
        json={"model": "kokoro", "input": TEXT, "voice": "af_heart", "response_format": "wav"},
        timeout=300,
    )
    assert response.status_code == 200, response.text
    transcript = transcribe(*decode(response.content, "wav"))
    assert word_error_rate(HEARD, transcript) <= 0.25, f"heard {transcript!r}"
