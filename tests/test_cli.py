"""The `tts-api` command line against a real server: files, pipes, voices, exit codes, the progress bar."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
import wave
from collections.abc import Callable
from importlib import import_module
from pathlib import Path
from typing import Literal

import pytest

from tests.rawclient import silent_server
from tts_api import cli as cli_module
from tts_api.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, wyoming_host
from tts_api.processes import ROOT, ServerProcess, free_port

pytestmark = pytest.mark.server

TEXT = "Hello from the command line."


def cli(
    *args: str, stdin: bytes | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run `tts-api ARGS` (from this checkout) with pipes for stdin, stdout and stderr."""
    return subprocess.run(
        [sys.executable, "-m", "tts_api.cli", *args],
        cwd=ROOT,
        input=stdin if stdin is not None else b"",
        capture_output=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_the_entry_point_is_installed_with_the_package() -> None:
    tomllib = pytest.importorskip("tomllib", reason="Python 3.11+ reads pyproject.toml")
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, function = scripts["tts-api"].partition(":")
    assert callable(getattr(import_module(module), function))


def test_say_writes_a_wav_file_with_true_sizes(
    tiny_server: ServerProcess, tmp_path: Path, tiny_expected: Callable[..., int]
) -> None:
    out = tmp_path / "hello.wav"
    result = cli("--server", tiny_server.url, "say", TEXT, "-o", str(out))
    assert result.returncode == EXIT_OK, result.stderr
    assert result.stderr == b""  # no bar: stderr is not a terminal
    # The format came from the suffix, and stdlib `wave` (which trusts the header) reads the true length.
    with wave.open(str(out)) as audio:
        assert (audio.getframerate(), audio.getnchannels(), audio.getsampwidth()) == (24_000, 1, 2)
        assert audio.getnframes() == tiny_expected(TEXT)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hello.wav"]  # no partial file left


def test_say_reads_stdin_and_writes_stdout_for_a_pipe(
    tiny_server: ServerProcess, tiny_expected: Callable[..., int]
) -> None:
    result = cli(
        "say", "--format", "pcm", "-o", "-", stdin=TEXT.encode(), env={"TTS_SERVER": tiny_server.url}
    )
    assert result.returncode == EXIT_OK, result.stderr
    assert len(result.stdout) == 2 * tiny_expected(TEXT)


def test_say_defaults_to_mp3_on_a_pipe(tiny_server: ServerProcess) -> None:
    result = cli("say", TEXT, "--server", tiny_server.url)
    assert result.returncode == EXIT_OK, result.stderr
    assert result.stdout[:3] == b"ID3" or result.stdout[:2] in (b"\xff\xf3", b"\xff\xfb")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["say", ""], "input has no speakable text"),
        (["say", "Hello.", "--voice", "af_nobody"], "voice 'af_nobody' not found"),
        (["say", "Hello.", "--speed", "9"], "speed must be a number from 0.25 to 4.0"),
    ],
    ids=["empty-text", "unknown-voice", "speed-out-of-range"],
)
def test_a_rejected_request_exits_2_with_the_servers_message_and_leaves_no_file(
    tiny_server: ServerProcess, tmp_path: Path, args: list[str], message: str
) -> None:
    result = cli("--server", tiny_server.url, *args, "-o", str(tmp_path / "out.mp3"))
    assert result.returncode == EXIT_USAGE
    assert message in result.stderr.decode()
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments_exit_2() -> None:
    assert cli("say", TEXT, "--format", "ogg").returncode == EXIT_USAGE
    assert cli("nonsense").returncode == EXIT_USAGE


def test_no_server_exits_1_and_says_so(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    for args in (["say", TEXT, "-o", str(tmp_path / "out.mp3")], ["voices"]):
        result = cli("--server", url, *args)
        assert result.returncode == EXIT_FAILED
        assert f"no tts-api server answers at {url}" in result.stderr.decode()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("answer", "message"),
    [("nothing", "is busy"), ("close", "the connection to the server")],
    ids=["nothing-within-the-timeout", "connection-closed"],
)
@pytest.mark.parametrize("command", [["say", TEXT], ["voices"]], ids=["say", "voices"])
def test_a_server_that_does_not_answer_exits_1_and_says_why(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    answer: Literal["nothing", "close"],
    message: str,
    command: list[str],
) -> None:
    monkeypatch.setattr(cli_module, "READ_TIMEOUT_S", 1.0)  # the default of --timeout
    output = ["-o", str(tmp_path / "out.wav")] if command[0] == "say" else []
    with silent_server(answer) as url:
        code = cli_module.main(["--server", url, *command, *output])
    err = capsys.readouterr().err
    assert code == EXIT_FAILED, err
    assert message in err and url in err
    assert list(tmp_path.iterdir()) == []


def test_the_read_timeout_is_the_users_to_set(capsys: pytest.CaptureFixture[str]) -> None:
    with silent_server("nothing") as url:
        code = cli_module.main(["--server", url, "--timeout", "0.5", "voices"])
    assert code == EXIT_FAILED
    assert "sent no audio within 0.5 s" in capsys.readouterr().err


def test_voices_lists_languages_voices_and_openai_names(tiny_server: ServerProcess) -> None:
    result = cli("voices", "--server", tiny_server.url)
    assert result.returncode == EXIT_OK, result.stderr
    lines = result.stdout.decode().splitlines()
    assert lines[0] == "American English (en-us)"
    assert "  af_heart       female" in lines
    assert "  alloy          -> af_alloy" in lines
    raw = cli("voices", "--json", "--server", tiny_server.url)
    assert len(json.loads(raw.stdout)["voices"]) == 54


def test_a_long_text_shows_a_progress_bar_on_a_terminal(tiny_server: ServerProcess, tmp_path: Path) -> None:
    text = "This sentence makes the text long enough for a progress bar. " * 4
    terminal, stderr = pty.openpty()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tts_api.cli",
            "--server",
            tiny_server.url,
            "say",
            text,
            "-o",
            str(tmp_path / "a.mp3"),
        ],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )
    os.close(stderr)
    shown = b""
    deadline = time.monotonic() + 60
    while select.select([terminal], [], [], max(0.0, deadline - time.monotonic()))[0]:
        try:
            data = os.read(terminal, 4096)
        except OSError:  # the other side closed
            break
        if not data:
            break
        shown += data
    os.close(terminal)
    assert process.wait(timeout=60) == EXIT_OK
    frames = shown.decode().split("\r")
    assert any("%" in frame and "s of audio" in frame for frame in frames)  # it moved with the words
    assert "100%  done" in frames[-2] or "100%  done" in frames[-1]


def test_serve_runs_server_py(tmp_path: Path) -> None:
    result = cli("serve", "--help")
    assert result.returncode == EXIT_OK
    assert result.stdout.startswith(b"usage: tts-api serve ")
    assert b"--wyoming-port" in result.stdout


def test_the_standalone_wyoming_service_keeps_a_key_on_loopback_unless_a_host_is_named() -> None:
    assert wyoming_host(None, None) == "0.0.0.0"
    assert wyoming_host(None, "key") == "127.0.0.1"
    assert wyoming_host("0.0.0.0", "key") == "0.0.0.0"
