"""How much each figure measures: the full plan (`make bench`) and the quick one (`make bench QUICK=1`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from .texts import (
    AGENT_BARGE_IN,
    AGENT_PHRASE,
    AGENT_REPLIES,
    AGENT_SHORT_REPLY,
    LISTENER_TEXTS,
    QUALITY_SENTENCES,
    QUICK_LISTENER_TEXTS,
    QUICK_TEXTS,
    TEXTS,
)

__all__ = ["FULL", "QUICK", "Plan"]

SIZES = ("short", "medium", "long")
FORMATS = ("pcm", "mp3")


@dataclass(frozen=True)
class Plan:
    """Repetitions per figure. The long text is the expensive one (~80 s of audio per pass on the real
    weights), so it runs to the end once on each side; its other first-audio samples come from streams
    that are abandoned after the first audio (figure 6 reuses them)."""

    name: str
    texts: Mapping[str, str]
    # Figures 1, 2, 4: requests per (size, format) on an idle server, and bare pipeline passes per size.
    server_reps: Mapping[str, Mapping[str, int]]
    bare_reps: Mapping[str, int]
    # Sizes whose mp3 requests are abandoned after the first audio (time to first audio only, no RTF).
    mp3_first_audio_only: tuple[str, ...]
    concurrency: tuple[int, ...]  # figure 3
    memory_requests: int  # figure 5
    memory_concurrency: int
    cancel_trials: Mapping[str, int]  # figure 6, per server and per measure
    cancel_window_s: float
    plain_idle_reps: int  # idle first-audio samples of the follow-up request on the plain server
    # Figures 7 and 9: the listeners' texts, the open-loop loads (fractions of capacity), seconds of
    # arrivals per load on the real engine and on the emulated ones, and which emulated workers.
    listener_texts: tuple[str, ...]
    real_burst: int  # listeners sent at once to the real engine (it measures the worker's capacity)
    listener_loads: tuple[float, ...]
    listener_duration_s: float
    emulated_duration_s: float
    emulated: tuple[str, ...]
    # Figure 8: concurrent streams on the emulated:200 worker; then on a batching one (emulated:8:0.05:64),
    # a burst of newcomers at once and long streams started over a few seconds.
    scale_streams: tuple[int, ...]
    batched_burst: int
    batched_streams: int
    # Figure 10: simultaneous medium streams on a server with two workers of one thread each.
    two_worker_streams: int
    # Figure 11: sentences (as written, as heard) each engine variant speaks for the quality scores.
    quality_sentences: tuple[tuple[str, str], ...]
    # Figure 12: voice agents over ElevenLabs' multi-stream-input socket. Replies streamed in (first audio
    # beside the HTTP agent's, quality beside the same text whole), flushes of the phrase on an open
    # context, barge-ins into the long reply, and conversations at once (three-sentence replies; as many
    # as 80 % of the worker's capacity feeds, at most agent_max_conversations).
    agent_replies: tuple[str, ...]
    agent_phrase: str
    agent_flush_reps: int
    agent_barge_in: str
    agent_barge_in_trials: int
    agent_conversation_texts: tuple[str, ...]
    agent_max_conversations: int
    # Figure 13: k chunks one by one against one batched pass of the model (bench/batching.py); none: skipped.
    batch_sizes: tuple[int, ...] = ()
    # Start each later server while the one before it is measured: the quick run's timings are not
    # read, and start-ups are most of its minutes; the full run starts each on a quiet machine.
    start_ahead: bool = False
    # Figures 10-11: also `--engine bf16`, on a CPU that multiplies in bfloat16 (AMX, AVX512-BF16).
    bf16_variant: bool = True

    def describe(self) -> dict[str, Any]:
        data = asdict(self)
        data["texts"] = {size: {"chars": len(text), "text": text} for size, text in self.texts.items()}
        data["listener_texts"] = [len(text) for text in self.listener_texts]
        data["quality_sentences"] = [text for text, _ in self.quality_sentences]
        return data


FULL = Plan(
    name="full",
    texts=TEXTS,
    server_reps={"short": {"pcm": 3, "mp3": 3}, "medium": {"pcm": 1, "mp3": 1}, "long": {"pcm": 1, "mp3": 1}},
    bare_reps={"short": 3, "medium": 2, "long": 1},
    mp3_first_audio_only=("long",),
    concurrency=(1, 2, 4, 6, 8),
    memory_requests=200,
    memory_concurrency=4,
    # tts-api stops within a chunk, so its trials are cheap; the plain server's follow-up trial waits
    # for the whole abandoned long text (~1 min).
    cancel_trials={"tts_api": 2, "plain_litserve": 1},
    cancel_window_s=5.0,
    plain_idle_reps=2,
    listener_texts=LISTENER_TEXTS,
    real_burst=8,
    listener_loads=(0.5, 0.8, 1.0, 1.2),
    listener_duration_s=120.0,
    emulated_duration_s=60.0,
    emulated=("emulated:8", "emulated:32"),
    scale_streams=(64, 128),
    batched_burst=64,
    batched_streams=256,
    two_worker_streams=6,
    quality_sentences=QUALITY_SENTENCES,
    agent_replies=AGENT_REPLIES,
    agent_phrase=AGENT_PHRASE,
    agent_flush_reps=3,
    agent_barge_in=AGENT_BARGE_IN,
    agent_barge_in_trials=3,
    agent_conversation_texts=(AGENT_REPLIES[2], AGENT_REPLIES[6], AGENT_REPLIES[11]),
    agent_max_conversations=32,
    batch_sizes=(1, 2, 4),
)

QUICK = Plan(
    name="quick",
    texts=QUICK_TEXTS,
    server_reps={size: {"pcm": 1, "mp3": 1} for size in SIZES},
    bare_reps=dict.fromkeys(SIZES, 1),
    mp3_first_audio_only=("long",),
    concurrency=(1, 2),
    memory_requests=6,
    memory_concurrency=4,
    cancel_trials={"tts_api": 1, "plain_litserve": 1},
    cancel_window_s=5.0,
    plain_idle_reps=1,
    listener_texts=QUICK_LISTENER_TEXTS,
    real_burst=4,  # each asks for its audio at once: enough to keep the worker busy throughout
    listener_loads=(0.8,),
    # Long enough for a few arrivals; the quick run checks the shape, not the numbers.
    listener_duration_s=4.0,
    emulated_duration_s=4.0,
    emulated=("emulated:8",),
    scale_streams=(16,),
    batched_burst=8,
    batched_streams=16,
    two_worker_streams=2,
    quality_sentences=(QUALITY_SENTENCES[0], QUALITY_SENTENCES[3]),
    agent_replies=(AGENT_REPLIES[7], AGENT_REPLIES[10]),  # one sentence each
    agent_phrase=AGENT_PHRASE,
    agent_flush_reps=1,
    agent_barge_in=AGENT_BARGE_IN,
    agent_barge_in_trials=1,
    agent_conversation_texts=(AGENT_SHORT_REPLY,),
    agent_max_conversations=2,
    start_ahead=True,
    bf16_variant=False,  # its quick run proves nothing the torch variant does not
)
