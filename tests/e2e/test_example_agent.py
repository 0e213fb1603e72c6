"""examples/agent.py, run as a user runs it, against a server on the tiny model (which speaks noise, so the
checks are structural): it exits cleanly, writes a WAV file, prints the words Pipecat rebuilt from the
server's timings, and a barge-in stops the audio."""

from __future__ import annotations

import re
import subprocess
import sys
import wave
from dataclasses import dataclass
from pathlib import Path

import pytest

from tts_api.processes import ROOT, ServerProcess

pytestmark = pytest.mark.server

AGENT = ROOT / "examples" / "agent.py"
TEXT = (
    "Sure! The weather is lovely today, so we could walk to the park after lunch. I will bring the blanket."
)
TIMED_WORD = re.compile(r"\s*(?P<at>\d+\.\d+) s  (?P<word>\S+)")


@dataclass(frozen=True)
class Run:
    stdout: str
    words: list[str]
    times: list[float]
    audio_s: float


def run_agent(server: ServerProcess, out: Path, *args: str) -> Run:
    """Run the example to its end (killed if it hangs) and read what it printed and wrote."""
    done = subprocess.run(
        [sys.executable, str(AGENT), "--url", f"ws://127.0.0.1:{server.port}", "--out", str(out), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    timed = [m for line in done.stdout.splitlines() if (m := TIMED_WORD.fullmatch(line))]
    with wave.open(str(out)) as audio:
        assert (audio.getframerate(), audio.getnchannels(), audio.getsampwidth()) == (24_000, 1, 2)
        audio_s = audio.getnframes() / audio.getframerate()
    return Run(done.stdout, [m["word"] for m in timed], [float(m["at"]) for m in timed], audio_s)


@pytest.fixture(scope="module")
def whole_reply(tiny_server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Run:
    return run_agent(tiny_server, tmp_path_factory.mktemp("agent") / "agent.wav", "--text", TEXT)


def test_the_example_agent_speaks_a_streamed_reply_and_prints_its_timed_words(whole_reply: Run) -> None:
    assert whole_reply.audio_s > 0.5
    assert re.search(r"^first audio after \d+\.\d+ s$", whole_reply.stdout, re.MULTILINE)
    assert whole_reply.words == TEXT.split()
    assert whole_reply.times == sorted(whole_reply.times)
    assert whole_reply.times[-1] < whole_reply.audio_s


def test_a_barge_in_stops_the_example_agents_audio(
    tiny_server: ServerProcess, tmp_path: Path, whole_reply: Run
) -> None:
    cut = run_agent(tiny_server, tmp_path / "cut.wav", "--text", TEXT, "--barge-in", "0.5")
    assert "barge-in at 0.50 s: 0.00 s of audio came after it" in cut.stdout
    assert cut.audio_s < whole_reply.audio_s
    assert cut.words == TEXT.split()[: len(cut.words)]
