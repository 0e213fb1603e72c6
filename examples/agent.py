"""A voice agent's speech, offline: a fake LLM's reply streamed word by word into tts-api through Pipecat.

Pipecat's ElevenLabsTTSService, pointed at tts-api by its URL (no API key, no room), speaks the words as
they come; the audio goes to a WAV file and the words come back timed from the server's alignment.
`--barge-in S` interrupts the reply S seconds after its first word, as a user who starts to speak.

    .venv/bin/python examples/agent.py [--url ws://127.0.0.1:8000] [--out agent.wav] [--barge-in 2]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import wave
from collections.abc import AsyncIterator

from loguru import logger
from pipecat.frames.frames import (
    EndFrame,
    ErrorFrame,
    Frame,
    InterruptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TTSAudioRawFrame,
    TTSStoppedFrame,
    TTSTextFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.elevenlabs.tts import ElevenLabsTTSService
from pipecat.workers.runner import WorkerRunner

REPLY = (
    "Sure! The weather is lovely today, so we could walk to the park after lunch. "
    "I will bring the blue blanket, and you can choose the music."
)
SAMPLE_RATE = 24_000  # 16-bit mono PCM (pcm_24000): Kokoro's own rate
TOKEN_GAP_S = 0.05  # an LLM writing 20 tokens a second
WAIT_S = 60.0  # the most the agent waits for the server's last audio


async def fake_llm(text: str) -> AsyncIterator[str]:
    """Yield `text` a word (and its space) at a time, TOKEN_GAP_S apart, as an LLM streams a reply."""
    for word in text.split():
        yield word + " "
        await asyncio.sleep(TOKEN_GAP_S)


class Recorder(FrameProcessor):
    """The end of the pipeline: keeps the audio and the timed words, and notes what came after a cut."""

    def __init__(self) -> None:
        super().__init__()
        self.audio = bytearray()  # 16-bit mono PCM
        self.cut_at: int | None = None  # len(audio) when the interruption came through
        self.words: list[tuple[str, float]] = []  # (word, seconds into the audio)
        self.started_at = 0.0  # time.monotonic() at the reply's first word
        self.first_audio_at: float | None = None
        self._clock_ns = 0  # the pipeline clock at the first audio, where Pipecat's word times start
        self.done = asyncio.Event()  # the server's last audio of the turn came (or an error)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TTSAudioRawFrame):
            if self.first_audio_at is None:
                self.first_audio_at, self._clock_ns = time.monotonic(), self.get_clock().get_time()
            self.audio += frame.audio
        elif isinstance(frame, TTSTextFrame) and frame.pts is not None:
            self.words.append((frame.text, max(0, frame.pts - self._clock_ns) / 1e9))
        elif isinstance(frame, InterruptionFrame):
            self.cut_at = len(self.audio)
        elif isinstance(frame, TTSStoppedFrame):
            self.done.set()
        await self.push_frame(frame, direction)


async def converse(args: argparse.Namespace) -> Recorder:
    """Stream the reply into the TTS service, interrupt it if asked, and return what came out."""
    tts = ElevenLabsTTSService(
        api_key=args.api_key,  # sent as `xi-api-key`; any string when the server has no key
        url=args.url,
        sample_rate=SAMPLE_RATE,
        settings=ElevenLabsTTSService.Settings(voice=args.voice),
        stop_frame_timeout_s=WAIT_S,  # Pipecat drops a context after 3 s without audio; a slow CPU needs more
    )
    recorder = Recorder()
    worker = PipelineWorker(
        Pipeline([tts, recorder]), params=PipelineParams(audio_out_sample_rate=SAMPLE_RATE)
    )
    errors: list[ErrorFrame] = []
    started = asyncio.Event()

    @worker.event_handler("on_pipeline_started")
    async def on_started(worker: PipelineWorker, frame: Frame) -> None:
        started.set()

    @worker.event_handler("on_pipeline_error")
    async def on_error(worker: PipelineWorker, frame: ErrorFrame) -> None:
        errors.append(frame)
        recorder.done.set()

    async def say() -> None:
        await worker.queue_frame(LLMFullResponseStartFrame())
        async for token in fake_llm(args.text):
            await worker.queue_frame(LLMTextFrame(token))
        await worker.queue_frame(LLMFullResponseEndFrame())

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    running = asyncio.create_task(runner.run())
    try:
        await asyncio.wait_for(started.wait(), WAIT_S)
        recorder.started_at = time.monotonic()
        speaking = asyncio.create_task(say())
        if args.barge_in is None:
            await speaking
            await asyncio.wait_for(recorder.done.wait(), WAIT_S)
        else:
            await asyncio.sleep(args.barge_in)
            speaking.cancel()  # the LLM stops too
            await worker.queue_frame(InterruptionFrame())
            await asyncio.sleep(1.0)  # long enough to see that no more audio comes
    finally:
        await worker.queue_frame(EndFrame())  # Pipecat sends `close_socket`
        await running
    if errors:
        raise SystemExit(f"agent: {errors[0].error}")
    return recorder


def main() -> None:
    parser = argparse.ArgumentParser(description="A fake LLM's reply, spoken by tts-api through Pipecat.")
    parser.add_argument("--url", default="ws://127.0.0.1:8000", help="tts-api's address, as ws://HOST:PORT")
    parser.add_argument("--voice", default="af_heart")
    parser.add_argument("--api-key", default="not-needed", help="the server's TTS_API_KEY, if it has one")
    parser.add_argument("--text", default=REPLY, help="what the fake LLM says")
    parser.add_argument("--out", default="agent.wav", help="the WAV file to write")
    parser.add_argument("--barge-in", type=float, metavar="SECONDS", help="interrupt after this long")
    args = parser.parse_args()
    logger.remove()
    logger.add(sys.stderr, level="WARNING")  # Pipecat logs every frame at DEBUG
    recorder = asyncio.run(converse(args))
    with wave.open(args.out, "wb") as out:
        out.setparams((1, 2, SAMPLE_RATE, 0, "NONE", "not compressed"))
        out.writeframes(recorder.audio)
    seconds = len(recorder.audio) / 2 / SAMPLE_RATE
    if recorder.first_audio_at is not None:
        print(f"first audio after {recorder.first_audio_at - recorder.started_at:.2f} s")
    for word, at in recorder.words:
        print(f"{at:7.2f} s  {word}")
    if recorder.cut_at is not None:
        after = (len(recorder.audio) - recorder.cut_at) / 2 / SAMPLE_RATE
        print(f"barge-in at {args.barge_in:.2f} s: {after:.2f} s of audio came after it")
    print(f"wrote {args.out}: {seconds:.2f} s of audio at {SAMPLE_RATE} Hz")


if __name__ == "__main__":
    main()
