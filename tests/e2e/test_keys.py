"""With `--api-key` set, no port of the server makes audio without the key: the HTTP port asks for it, and the
Wyoming port (a protocol with no authentication) is not reachable but from loopback.

The server binds every interface (`--host 0.0.0.0`, as in the image), so it runs in a network namespace of
its own, where "every interface" is a loopback that nothing outside reaches; the clients run in the same
namespace (`nsenter`). 127.0.0.2 stands for another machine's address: it reaches what listens on 0.0.0.0,
not what listens on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.system import require_program, unavailable
from tts_api.processes import ROOT, ServerProcess, free_port

pytestmark = pytest.mark.server

KEY = "s3cret"
# Runs inside the namespace: waits for /health, then tries each port from "elsewhere" and from loopback.
PROBE = """
import json, socket, sys, time
import httpx
from wyoming.client import AsyncTcpClient
from wyoming.info import Describe, Info
import asyncio

port, wyoming, key = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
deadline = time.monotonic() + 300
while time.monotonic() < deadline:
    try:
        if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
            break
    except httpx.TransportError:
        pass
    time.sleep(0.2)
result = {}
body = {"input": "Hello there.", "response_format": "pcm"}
url = f"http://127.0.0.2:{port}/v1/audio/speech"
result["http_without_key"] = httpx.post(url, json=body, timeout=60).status_code
answer = httpx.post(url, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=60)
result["http_with_key"] = [answer.status_code, len(answer.content)]

def reachable(host):
    with socket.socket() as s:
        s.settimeout(5)
        return s.connect_ex((host, wyoming)) == 0

for _ in range(100):  # the Wyoming child starts beside the server
    if reachable("127.0.0.1"):
        break
    time.sleep(0.1)
result["wyoming_elsewhere"] = reachable("127.0.0.2")

async def describe():
    async with AsyncTcpClient("127.0.0.1", wyoming) as client:
        await client.write_event(Describe().event())
        event = await asyncio.wait_for(client.read_event(), 30)
        return Info.is_type(event.type)

result["wyoming_loopback_describes"] = asyncio.run(describe())
print(json.dumps(result))
"""


def _namespaces_or_skip() -> None:
    for program, package in (("unshare", "util-linux"), ("nsenter", "util-linux"), ("ip", "iproute2")):
        require_program(shutil.which(program), program, package)
    probe = subprocess.run(["unshare", "--net", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        # A container without CAP_SYS_ADMIN cannot make one, whatever is installed.
        unavailable(
            f"cannot make a network namespace here ({probe.stderr.strip()}): needs root or CAP_SYS_ADMIN"
        )


def _own_namespace_of(pid: int, timeout: float = 60.0) -> str:
    """The path of `pid`'s network namespace, once it has left ours: `unshare` makes its own a moment after
    it starts, and a probe that entered before that would look for the server in this machine's namespace."""
    ours = os.readlink("/proc/self/ns/net")
    path = f"/proc/{pid}/ns/net"
    deadline = time.monotonic() + timeout
    while os.readlink(path) == ours:
        if time.monotonic() > deadline:
            raise TimeoutError(f"process {pid} did not make its own network namespace in {timeout:.0f} s")
        time.sleep(0.05)
    return path


def test_no_port_makes_audio_without_the_key(tiny_model_dir: Path, tmp_path: Path) -> None:
    _namespaces_or_skip()
    port, wyoming = free_port(), free_port()
    server_args = [
        sys.executable,
        str(ROOT / "server.py"),
        "--host",
        "0.0.0.0",
        "--port",
        str(port),
        "--model-dir",
        str(tiny_model_dir),
        "--api-key",
        KEY,
        "--wyoming-port",
        str(wyoming),
    ]
    isolated = ["unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$0" "$@"', *server_args]
    server = ServerProcess(isolated, port, tmp_path / "server.log")
    try:
        namespace = _own_namespace_of(server.process.pid)
        probe = subprocess.run(
            [
                "nsenter",
                f"--net={namespace}",
                sys.executable,
                "-c",
                PROBE,
                str(port),
                str(wyoming),
                KEY,
            ],
            capture_output=True,
            text=True,
            timeout=360,
            cwd=ROOT,
        )
        assert probe.returncode == 0, probe.stderr[-3000:] + server.log()[-3000:]
        result = json.loads(probe.stdout.strip().splitlines()[-1])
    finally:
        server.stop()
    assert result["http_without_key"] == 401
    status, size = result["http_with_key"]
    assert status == 200 and size > 0
    assert result["wyoming_elsewhere"] is False, "Wyoming synthesizes for anyone who reaches it"
    assert result["wyoming_loopback_describes"] is True  # Home Assistant on the same machine still can
    assert "listens on 127.0.0.1 only" in server.log()
