"""The image, built and run: what the README's Container section promises, checked on a real container.

One container of `tts-api` (as `docker run -p 8000:8000 -p 10200:10200 tts-api` runs it, on loopback ports)
serves every test here; the last one stops it with `podman stop` while it streams.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import os
import re
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from wyoming.audio import AudioChunk, AudioStart
from wyoming.client import AsyncTcpClient
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.tts import Synthesize, SynthesizeVoice

from tests.audio_check import decode, transcribe, word_error_rate
from tests.container.build import BuildResult
from tests.container.container import Container
from tests.container.engine import Podman
from tests.rawclient import wait_for
from tts_api.processes import ROOT, START_TIMEOUT_S

pytestmark = [pytest.mark.slow, pytest.mark.server]

USER_ID = "10001"  # the Dockerfile's USER
MODEL_DIR = "/opt/tts-api/model"
HEARD_WER = 0.25  # as tests/e2e/test_real_weights.py
# `docker stop -t 70` (README, Dockerfile): the whole stop, drain included, fits in it.
STOP_GRACE_S = 70


def _start_period_s() -> float:
    """The HEALTHCHECK's --start-period: the image's own budget for becoming healthy."""
    found = re.search(r"--start-period=(\d+)s", (ROOT / "Dockerfile").read_text())
    assert found is not None, "the Dockerfile's HEALTHCHECK has no --start-period"
    return float(found.group(1))


class Running:
    """The test container, how long it took to be healthy, and its health check's verdict while starting."""

    def __init__(self, container: Container, healthy_after_s: float, early_check: int) -> None:
        self.container = container
        self.healthy_after_s = healthy_after_s
        self.early_check = early_check


@pytest.fixture(scope="module")
def running(image: BuildResult, podman: Podman) -> Iterator[Running]:
    # One torch thread, as every test server here (tests/conftest.py): the image's default (CPUs / workers)
    # makes two threads spin against the other tests on a 2-core machine, 2-4 times slower.
    container = Container.start(podman, image.tag, "--env=TTS_TORCH_THREADS=1")
    try:
        # Within a second of `run`, the server is still importing: the health check must not pass yet.
        early = podman.run("healthcheck", "run", container.name, check=False).returncode
        healthy_after_s = container.wait_healthy(START_TIMEOUT_S)
        yield Running(container, healthy_after_s, early)
    finally:
        container.remove()


def test_the_image_is_in_the_store_with_this_machines_torch(image: BuildResult, podman: Podman) -> None:
    """pip inside the build resolved torch as pip outside does (here: the CPU wheel, not the CUDA one)."""
    assert podman.run("image", "exists", "tts-api", check=False).returncode == 0
    assert image.size_bytes > 0
    found = podman.run(
        "run", "--rm", "--entrypoint=python", image.tag, "-c", "import torch; print(torch.__version__)"
    )
    assert found.stdout.strip() == importlib.metadata.version("torch")


def test_health_turns_200_within_the_start_up_budget(running: Running) -> None:
    assert running.healthy_after_s <= _start_period_s(), running.container.logs()[-2000:]


def test_the_healthcheck_command_passes_once_healthy(running: Running, podman: Podman) -> None:
    assert running.early_check == 1, "the health check did not say unhealthy before the server could answer"
    checked = podman.run("healthcheck", "run", running.container.name, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_request_returns_intelligible_audio(running: Running) -> None:
    text = "Good morning, the train to London is delayed."
    response = httpx.post(
        running.container.url + "/v1/audio/speech",
        json={"model": "kokoro", "input": text, "voice": "bf_emma", "response_format": "wav"},
        timeout=300,
    )
    assert response.status_code == 200, response.text
    transcript = transcribe(*decode(response.content, "wav"))
    assert word_error_rate("good morning the train to london is delayed", transcript) <= HEARD_WER, transcript


def test_the_model_was_built_and_verified_at_build_time(running: Running) -> None:
    """The asset build writes manifest.json only after its verification passed, and the export's record
    only after the export was verified; no npm in the image: nothing was built at run time. The server's
    user can read every file of it (a root-only decoder.onnx would silently cost it the ONNX engine)."""
    probe = running.container.python(
        "import json, os, pathlib, shutil\n"
        "from tts_api.model.layout import ModelDir\n"
        "from tts_api.model.export import verified_export\n"
        f"files = ModelDir(pathlib.Path({MODEL_DIR!r}))\n"
        "unreadable = [str(p) for p in files.root.rglob('*') if not os.access(p, os.R_OK)]\n"
        "print(json.dumps({'missing': files.missing(), 'manifest': files.manifest.is_file(),\n"
        "    'export': verified_export(files) is not None, 'npm': shutil.which('npm'),\n"
        "    'unreadable': unreadable}))"
    )
    assert probe.returncode == 0, probe.stderr
    assert json.loads(probe.stdout) == {
        "missing": [],
        "manifest": True,
        "export": True,
        "npm": None,
        "unreadable": [],
    }


def test_every_process_runs_as_the_non_root_user(running: Running) -> None:
    probe = running.container.python(
        "import json, os\n"
        "found = []\n"
        "for pid in filter(str.isdigit, os.listdir('/proc')):\n"
        "    try:\n"
        "        status = open(f'/proc/{pid}/status').read()\n"
        "        command = open(f'/proc/{pid}/cmdline').read().replace(chr(0), ' ').strip()\n"
        "    except OSError:\n"
        "        continue\n"
        "    uids = next(line.split()[1:] for line in status.splitlines() if line.startswith('Uid:'))\n"
        "    found.append([int(pid), uids, command])\n"
        "print(json.dumps(found))"
    )
    assert probe.returncode == 0, probe.stderr
    processes = {pid: (uids, command) for pid, uids, command in json.loads(probe.stdout)}
    assert processes[1][1].startswith("tini"), processes  # PID 1, which hands SIGTERM on
    assert any("server.py" in command for _, command in processes.values()), processes
    assert len(processes) >= 4, processes  # tini, the server, its HTTP server and worker, this probe
    assert {uid for uids, _ in processes.values() for uid in uids} == {USER_ID}, processes


def _changes(podman: Podman, container: str) -> set[str]:
    """Every path `podman diff` reports for `container`: added, changed or deleted."""
    diff = json.loads(podman.run("diff", "--format=json", container).stdout or "{}")
    return {path for paths in diff.values() for path in paths}


def _podmans_own_changes(podman: Podman, image: str) -> set[str]:
    """What podman itself changes in any container of `image` (its /etc/hosts and the like)."""
    name = f"tts-api-test-idle-{os.getpid()}"
    podman.run("run", "--detach", f"--name={name}", "--entrypoint=sleep", image, "300")
    try:
        return _changes(podman, name)
    finally:
        podman.run("rm", "--force", "--time=0", name, check=False)


def test_the_server_can_write_only_where_it_must(running: Running, podman: Podman) -> None:
    """Its temporary files (multiprocessing's sockets, spooled audio, espeak's library) and its home (ONNX
    Runtime's cache); not its code, venv, model or /etc. Then `podman diff`: whatever the server changed,
    beyond what podman changes in any container, lies in those two places."""
    probe = running.container.python(
        "import json, os, site, tempfile\n"
        "places = {'venv': site.getsitepackages()[0], 'model': '/opt/tts-api/model', 'app': '/app',\n"
        "    'etc': '/etc', 'tmp': tempfile.gettempdir(), 'home': os.path.expanduser('~')}\n"
        "outcome = {}\n"
        "for name, place in places.items():\n"
        "    try:\n"
        "        handle, path = tempfile.mkstemp(dir=place)\n"
        "        os.close(handle)\n"
        "        os.unlink(path)\n"
        "        outcome[name] = 'written'\n"
        "    except OSError as exc:\n"
        "        outcome[name] = type(exc).__name__\n"
        "print(json.dumps([outcome, places]))"
    )
    assert probe.returncode == 0, probe.stderr
    outcome, places = json.loads(probe.stdout)
    assert outcome == {
        "venv": "PermissionError",
        "model": "PermissionError",
        "app": "PermissionError",
        "etc": "PermissionError",
        "tmp": "written",
        "home": "written",
    }
    writable = (places["tmp"], places["home"])
    changed = _changes(podman, running.container.name) - _podmans_own_changes(podman, running.container.image)
    assert any(p.startswith(places["tmp"] + "/") for p in changed), changed  # the diff does see its writes
    # A directory above a writable place is reported changed when something inside it is.
    above = {str(parent) for place in writable for parent in Path(place).parents}
    outside = [
        p for p in changed if p not in above and not any(p == w or p.startswith(w + "/") for w in writable)
    ]
    assert outside == [], sorted(changed)


async def _wyoming(port: int, text: str) -> tuple[Info, list[Event]]:
    async with AsyncTcpClient("127.0.0.1", port, connect_timeout=10, read_timeout=120) as client:
        await client.write_event(Describe().event())
        info_event = await client.read_event()
        assert info_event is not None and Info.is_type(info_event.type), info_event
        await client.write_event(Synthesize(text=text, voice=SynthesizeVoice(name="af_heart")).event())
        events: list[Event] = []
        while not events or events[-1].type not in ("audio-stop", "error"):
            event = await client.read_event()
            assert event is not None, f"the connection closed after {[e.type for e in events]}"
            events.append(event)
    return Info.from_event(info_event), events


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_the_wyoming_port_answers(running: Running) -> None:
    port = running.container.wyoming_port
    wait_for(lambda: _listening(port), 60, f"the Wyoming port (published on {port})")
    info, events = asyncio.run(_wyoming(port, "Good morning, the kitchen lights are on."))
    voices = {voice.name for program in info.tts for voice in program.voices}
    assert "af_heart" in voices and len(voices) >= 50, voices
    [start] = [AudioStart.from_event(e) for e in events if AudioStart.is_type(e.type)]
    assert (start.width, start.channels) == (2, 1), start
    pcm = b"".join(AudioChunk.from_event(e).audio for e in events if AudioChunk.is_type(e.type))
    samples, _ = decode(pcm, "pcm")
    transcript = transcribe(samples, start.rate)
    assert word_error_rate("good morning the kitchen lights are on", transcript) <= HEARD_WER, transcript


# ~10 s of speech: still streaming seconds after its first audio, done well within the 30 s drain.
LONG_TEXT = (
    "The weather today is sunny and warm. Please remember to bring your umbrella tomorrow. "
    "The library opens at nine in the morning and closes at six in the evening."
)
LONG_HEARD = (
    "the weather today is sunny and warm please remember to bring your umbrella tomorrow "
    "the library opens at nine in the morning and closes at six in the evening"
)


def _health(url: str) -> int | None:
    try:
        return httpx.get(f"{url}/health", timeout=2).status_code
    except httpx.TransportError:
        return None


def test_podman_stop_drains_an_in_flight_stream_and_exits_0(running: Running, podman: Podman) -> None:
    """SIGTERM through tini while a stream is in flight: the server drains (new requests get 503), the
    stream ends with all its audio, and the container exits 0 within the grace period. Stops the container:
    this module's last test."""
    container = running.container
    received = bytearray()
    status: list[int] = []
    errors: list[BaseException] = []
    first_audio, ended = threading.Event(), threading.Event()

    def stream() -> None:
        body = {"input": LONG_TEXT, "voice": "af_heart", "response_format": "pcm", "stream": True}
        try:
            with httpx.stream("POST", container.url + "/v1/audio/speech", json=body, timeout=120) as response:
                status.append(response.status_code)
                for chunk in response.iter_bytes():
                    received.extend(chunk)
                    first_audio.set()
        except BaseException as exc:  # reported by the test's thread
            errors.append(exc)
        finally:
            ended.set()
            first_audio.set()

    reader = threading.Thread(target=stream, name="in-flight-stream")
    reader.start()
    assert first_audio.wait(120) and received, (status, errors)
    stop = subprocess.Popen(
        podman.command("stop", f"--time={STOP_GRACE_S}", container.name),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # The drain has begun (health says 503) while the stream still runs: it was in flight.
        wait_for(lambda: _health(container.url) in (503, None), 30, "the server to start draining")
        in_flight_at_drain = not ended.is_set()
        reader.join(timeout=STOP_GRACE_S)
        _, stop_errors = stop.communicate(timeout=STOP_GRACE_S + 30)
    finally:
        if stop.poll() is None:
            stop.kill()
    assert in_flight_at_drain, "the stream ended before the drain began: make LONG_TEXT longer"
    assert not reader.is_alive() and errors == [] and status == [200], (status, errors)
    transcript = transcribe(*decode(bytes(received), "pcm"))
    assert word_error_rate(LONG_HEARD, transcript) <= HEARD_WER, transcript
    assert stop.returncode == 0, stop_errors
    assert not container.running()
    assert container.exit_code() == 0, container.logs()[-3000:]
