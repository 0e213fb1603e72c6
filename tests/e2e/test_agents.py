"""Real voice-agent clients against a real server with the real weights: Pipecat's ElevenLabsTTSService and
TogetherTTSService, LiveKit's ElevenLabs plugin, each driven as its framework drives it (an LLM's reply
pushed in pieces, the end of the turn, an interruption), each pointed at the server by its URL alone.

The audio is heard (PocketSphinx: word error ≤ 0.15), the words the client rebuilds from the timings are
the text's, and an interruption stops the synthesis on the server (its place comes back, its stream is
counted cancelled) with no audio of it reaching the client after.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from tests.audio_check import transcribe, word_error_rate
from tests.rawclient import metrics, wait_for
from tts_api.processes import ServerProcess

pytestmark = [pytest.mark.slow, pytest.mark.server]

REPLY = "The weather is lovely today. We could walk to the park after lunch."
HEARD = "the weather is lovely today we could walk to the park after lunch"
LONG_REPLY = " ".join(
    ["This reply goes on for a long while, so that it is still speaking when it is cut."] * 6
)
PIECES = re.findall(r"\S+\s*", REPLY)  # an LLM's tokens: a word and its space at a time
CANCELLED = "tts_requests_cancelled_total"
BOARD = "tts_cancel_board_entries"


def words_of(text: str) -> list[str]:
    return [w.strip(".,!?;:").lower() for w in text.split()]


def heard(pcm: bytes) -> str:
    return transcribe(np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768, 24_000)


def idle(server: ServerProcess) -> float:
    """Wait until no stream holds a place; the cancelled count then."""
    wait_for(lambda: metrics(server.url)[BOARD] == 0, 60, "an idle server")
    return metrics(server.url)[CANCELLED]


def cut_and_given_back(server: ServerProcess, before: float) -> None:
    wait_for(lambda: metrics(server.url)[CANCELLED] > before, 30, "the interrupted stream cancelled")
    wait_for(lambda: metrics(server.url)[BOARD] == 0, 30, "its place given back")


# Pipecat's TTS services call a context that gets nothing for `stop_frame_timeout_s` (3 s by default)
# quiet, and report it as one that produced no audio: on a machine shared with other work (CI, the image
# build beside these tests) first audio can take longer, so the clients here wait as long as the test does.
QUIET_S = 60.0
AFTER_INTERRUPTION_S = 3.0  # how long the client listens for audio that should no longer come


@dataclass(frozen=True)
class Until:
    """In a script of frames to send: wait until the frames received so far satisfy `done` (or fail)."""

    done: Callable[[list[Any]], bool]
    what: str


def _pipecat_turn(text_pieces: list[str], *, interrupt: bool = False) -> list[Any]:
    """An LLM's reply pushed in pieces at 20 tokens a second; then the end of the turn and its audio to
    the end, or (`interrupt`) an interruption once it speaks, and what comes after it."""
    from pipecat.frames.frames import (
        InterruptionFrame,
        LLMFullResponseEndFrame,
        LLMFullResponseStartFrame,
        LLMTextFrame,
        TTSAudioRawFrame,
        TTSStoppedFrame,
    )
    from pipecat.tests.utils import SleepFrame

    frames: list[Any] = [LLMFullResponseStartFrame()]
    for piece in text_pieces:
        frames += [LLMTextFrame(piece), SleepFrame(sleep=0.05)]
    if not interrupt:
        ended = Until(lambda down: any(isinstance(f, TTSStoppedFrame) for f in down), "the audio's end")
        return [*frames, LLMFullResponseEndFrame(), ended]
    speaking = Until(lambda down: any(isinstance(f, TTSAudioRawFrame) for f in down), "audio")
    return [*frames, speaking, InterruptionFrame(), SleepFrame(sleep=AFTER_INTERRUPTION_S)]


def _run_pipecat(service: Any, script: list[Any]) -> tuple[list[Any], list[Any]]:
    """pipecat.tests.utils.run_test's pipeline (source, service, sink), with `Until` steps in the script."""
    from pipecat.frames.frames import EndFrame
    from pipecat.pipeline.pipeline import Pipeline
    from pipecat.pipeline.worker import PipelineParams, PipelineWorker
    from pipecat.processors.frame_processor import FrameDirection
    from pipecat.tests.utils import QueuedFrameProcessor, SleepFrame
    from pipecat.workers.runner import WorkerRunner

    async def run() -> tuple[list[Any], list[Any]]:
        up_queue: asyncio.Queue[Any] = asyncio.Queue()
        down_queue: asyncio.Queue[Any] = asyncio.Queue()
        source = QueuedFrameProcessor(queue=up_queue, queue_direction=FrameDirection.UPSTREAM)
        sink = QueuedFrameProcessor(queue=down_queue, queue_direction=FrameDirection.DOWNSTREAM)
        worker = PipelineWorker(
            Pipeline([source, service, sink]),
            cancel_on_idle_timeout=False,
            params=PipelineParams(audio_out_sample_rate=24_000),
        )
        started = asyncio.Event()
        down: list[Any] = []

        @worker.event_handler("on_pipeline_started")
        async def _started(worker: Any, frame: Any) -> None:
            started.set()

        async def push() -> None:
            await asyncio.wait_for(started.wait(), timeout=60)
            for step in script:
                if isinstance(step, SleepFrame):
                    await asyncio.sleep(step.sleep)
                elif isinstance(step, Until):
                    deadline = asyncio.get_running_loop().time() + QUIET_S
                    while not step.done(down):
                        assert asyncio.get_running_loop().time() < deadline, f"no {step.what} in {QUIET_S} s"
                        await asyncio.sleep(0.05)
                        while not down_queue.empty():
                            down.append(down_queue.get_nowait())
                else:
                    await worker.queue_frame(step)
            await worker.queue_frame(EndFrame())

        runner = WorkerRunner()
        await runner.add_workers(worker)
        await asyncio.gather(runner.run(), push())
        while not down_queue.empty():
            down.append(down_queue.get_nowait())
        up = []
        while not up_queue.empty():
            up.append(up_queue.get_nowait())
        return [f for f in down if not isinstance(f, EndFrame)], up

    return asyncio.run(run())


def _elevenlabs_pipecat(server: ServerProcess) -> Any:
    from pipecat.services.elevenlabs.tts import ElevenLabsTTSService

    return ElevenLabsTTSService(
        api_key="not-needed",
        url=f"ws://127.0.0.1:{server.port}",
        sample_rate=24_000,
        settings=ElevenLabsTTSService.Settings(voice="af_heart", model="eleven_flash_v2_5"),
        stop_frame_timeout_s=QUIET_S,
    )


def _together_pipecat(server: ServerProcess) -> Any:
    from pipecat.services.together.tts import TogetherTTSService

    return TogetherTTSService(
        api_key="not-needed",
        url=f"ws://127.0.0.1:{server.port}/v1/audio/speech/websocket",
        stop_frame_timeout_s=QUIET_S,
    )


@pytest.mark.parametrize("client", [_elevenlabs_pipecat, _together_pipecat], ids=["elevenlabs", "together"])
def test_pipecat_speaks_an_llm_reply_streamed_in_and_times_its_words(
    real_server: ServerProcess, client: Callable[[ServerProcess], Any]
) -> None:
    from pipecat.frames.frames import ErrorFrame, TTSAudioRawFrame, TTSTextFrame

    idle(real_server)
    down, up = _run_pipecat(client(real_server), _pipecat_turn(PIECES))
    assert not [f for f in up if isinstance(f, ErrorFrame)]
    pcm = b"".join(f.audio for f in down if isinstance(f, TTSAudioRawFrame))
    assert word_error_rate(HEARD, heard(pcm)) <= 0.15, heard(pcm)
    spoken = [f for f in down if isinstance(f, TTSTextFrame)]
    assert words_of(" ".join(f.text for f in spoken)) == words_of(REPLY)
    if client is _elevenlabs_pipecat:  # timed from the alignment, in order (Together's are sentences)
        times = [f.pts for f in spoken]
        assert all(t is not None for t in times) and times == sorted(times)


@pytest.mark.parametrize("client", [_elevenlabs_pipecat, _together_pipecat], ids=["elevenlabs", "together"])
def test_a_pipecat_interruption_stops_the_synthesis_and_its_audio(
    real_server: ServerProcess, client: Callable[[ServerProcess], Any]
) -> None:
    from pipecat.frames.frames import InterruptionFrame, TTSAudioRawFrame

    before = idle(real_server)
    down, _ = _run_pipecat(
        client(real_server), _pipecat_turn(re.findall(r"\S+\s*", LONG_REPLY), interrupt=True)
    )
    cut = next(k for k, f in enumerate(down) if isinstance(f, InterruptionFrame))
    assert any(isinstance(f, TTSAudioRawFrame) for f in down[:cut])  # it was speaking
    assert not any(isinstance(f, TTSAudioRawFrame) for f in down[cut:])
    cut_and_given_back(real_server, before)


async def _livekit(
    server: ServerProcess, pieces: list[str], *, interrupt: bool = False
) -> tuple[bytes, list[Any]]:
    import aiohttp
    from livekit.agents import APIConnectOptions
    from livekit.agents.types import USERDATA_TIMED_TRANSCRIPT
    from livekit.plugins import elevenlabs

    async with aiohttp.ClientSession() as http:
        tts = elevenlabs.TTS(
            api_key="not-needed",
            base_url=f"http://127.0.0.1:{server.port}/v1",
            voice_id="af_heart",
            encoding="pcm_24000",
            http_session=http,
        )
        stream = tts.stream(conn_options=APIConnectOptions(max_retry=0, timeout=30))
        for piece in pieces:
            stream.push_text(piece)
            await asyncio.sleep(0.05)
        if not interrupt:
            stream.end_input()
        pcm, words = b"", []
        async for event in stream:
            pcm += bytes(event.frame.data)
            words += event.frame.userdata.get(USERDATA_TIMED_TRANSCRIPT, [])
            if interrupt:
                break  # the user speaks: the agent stops its speech
        await stream.aclose()
        await tts.aclose()
    return pcm, words


def test_livekit_speaks_an_llm_reply_streamed_in_and_times_its_words(real_server: ServerProcess) -> None:
    idle(real_server)
    pcm, words = asyncio.run(_livekit(real_server, PIECES))
    assert word_error_rate(HEARD, heard(pcm)) <= 0.15, heard(pcm)
    assert words_of("".join(str(w) for w in words)) == words_of(REPLY)
    starts = [w.start_time for w in words]
    assert starts == sorted(starts) and words[-1].end_time <= len(pcm) / 48_000 + 0.05


def test_a_livekit_interruption_stops_the_synthesis(real_server: ServerProcess) -> None:
    before = idle(real_server)
    pcm, _ = asyncio.run(_livekit(real_server, re.findall(r"\S+\s*", LONG_REPLY), interrupt=True))
    assert pcm  # it was speaking
    cut_and_given_back(real_server, before)
