"""Server configuration: the one place that reads the environment (`TTS_*` variables)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "DEFAULT_MAX_AUDIO_S",
    "DEFAULT_MAX_PAUSE_S",
    "MODEL_ENGINES",
    "Device",
    "EmulatedSpec",
    "ModelEngine",
    "SchedulerPolicy",
    "Settings",
    "default_model_dir",
    "parse_emulated",
]

Device = Literal["auto", "cpu", "cuda", "mps"]
ModelEngine = Literal["auto", "torch", "onnx", "bf16"]
MODEL_ENGINES: tuple[str, ...] = get_args(ModelEngine)
EMULATED_PREFIX = "emulated:"
_EMULATED = re.compile(r"emulated:(?P<n>\d+(?:\.\d+)?)(?::(?P<overhead>\d+(?:\.\d+)?)(?::(?P<batch>\d+))?)?")
DEFAULT_EMULATED_OVERHEAD_S = 0.02  # a GPU call's fixed cost, roughly
SchedulerPolicy = Literal["edf", "fifo"]

# A request's pause tags add up to at most this much silence, and its audio (pauses included, estimated from
# its text before anything is queued) to at most this much: 50,000 characters at speed 0.25 fit.
DEFAULT_MAX_PAUSE_S = 300.0
DEFAULT_MAX_AUDIO_S = 4 * 3600.0

# Kokoro-82M v1.0: bump the directory name when the asset recipe changes so old caches are not reused.
MODEL_DIR_NAME = "kokoro-82m-v1.0"


@dataclass(frozen=True)
class EmulatedSpec:
    """`emulated:N[:OVERHEAD_S[:BATCH]]`: the load-testing engine that feeds N real-time listeners per
    worker, each step costing OVERHEAD_S more; a step may carry the chunks of up to BATCH streams and costs
    what its longest member costs alone, as a GPU's batched pass does (synth/emulated.py)."""

    listeners: float
    overhead_s: float = DEFAULT_EMULATED_OVERHEAD_S
    batch: int = 1

    @property
    def label(self) -> str:
        batch = f":{self.batch}" if self.batch > 1 else ""
        return f"emulated:{self.listeners:g}:{self.overhead_s:g}{batch}"


def parse_emulated(engine: str) -> EmulatedSpec | None:
    """The spec of an `emulated:...` engine name; None for any other engine; ValueError if malformed."""
    if not engine.startswith(EMULATED_PREFIX):
        return None
    match = _EMULATED.fullmatch(engine)
    if match is None or float(match["n"]) <= 0 or int(match["batch"] or 1) < 1:
        raise ValueError(
            f"engine {engine!r}: use emulated:N, emulated:N:OVERHEAD_S or emulated:N:OVERHEAD_S:BATCH, N > 0 "
            "real-time listeners per worker, OVERHEAD_S the fixed seconds each step costs and BATCH >= 1 the "
            "most streams one step carries"
        )
    overhead = match["overhead"]
    return EmulatedSpec(
        float(match["n"]),
        DEFAULT_EMULATED_OVERHEAD_S if overhead is None else float(overhead),
        int(match["batch"] or 1),
    )


def default_model_dir() -> Path:
    """`$XDG_CACHE_HOME/tts-api/kokoro-82m-v1.0`, falling back to `~/.cache`."""
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "tts-api" / MODEL_DIR_NAME


class Settings(BaseSettings):
    """Everything configurable, from `TTS_<NAME>` environment variables or `server.py` flags.

    Plain, picklable values only: a copy travels into every spawned inference worker.
    """

    model_config = SettingsConfigDict(env_prefix="TTS_", extra="ignore")

    host: Literal["127.0.0.1", "0.0.0.0", "::"] = "127.0.0.1"
    port: int = Field(default=8000, ge=1024, le=65535)
    device: Device = "auto"
    # The decoder engine: `onnx` (the export `make model` verified; CPU), `torch`, `bf16` (torch's decoder
    # in bfloat16; see docs/engines.md), or `auto`: onnx on a CPU when its export is there (or bf16 where the
    # CPU has bfloat16 kernels and start-up timed it clearly faster: synth/race.py), torch otherwise.
    # `emulated:N[:OVERHEAD_S[:BATCH]]` sleeps instead of synthesizing, like a worker that feeds N real-time
    # listeners (load tests; see synth/emulated.py).
    engine: str = "auto"
    workers_per_device: int = Field(default=1, ge=1)
    # Skip synthesizing the silence Kokoro pads each chunk with, beyond what the seams keep; off only to
    # measure what it saves (the joined stream follows the same rules either way).
    trim_silence: bool = True
    api_servers: int | None = Field(
        default=None, ge=1, description="uvicorn processes; default one per worker"
    )
    model_dir: Path = Field(default_factory=default_model_dir)
    # Long-form is a core use, so well above OpenAI's 4096, but bounded.
    max_input_chars: int = Field(default=50_000, ge=1)
    # The silence a request's pause tags add up to, and its audio's length (estimated from the text, pauses
    # included): bounded like its text, so that a few kilobytes cannot ask for hours of output.
    max_pause_s: float = Field(default=DEFAULT_MAX_PAUSE_S, ge=0)
    max_audio_s: float = Field(default=DEFAULT_MAX_AUDIO_S, gt=0)
    # When set, /v1/* requires `Authorization: Bearer <key>` (what the OpenAI SDK sends).
    api_key: SecretStr | None = None
    # Requests queued or being synthesized, server-wide; beyond it new ones get 503 + Retry-After.
    max_pending: int = Field(default=64, ge=1)
    # A request with no audio this long after it came (queued, or waiting for room on a worker) gets 503 +
    # Retry-After, and one the measured pace says would wait longer is refused at once; 0: wait as long as
    # it takes (until the client gives up).
    max_queue_wait_s: float = Field(default=30.0, ge=0)
    # 0 = share the cores evenly between the workers of one machine.
    torch_threads: int = Field(default=0, ge=0)
    # How a worker shares itself between streams: earliest deadline first, or one at a time (`fifo`).
    scheduler: SchedulerPolicy = "edf"
    # Streams one worker synthesizes at once; 0 = the real-time streams it can feed (measured at start-up).
    max_streams_per_worker: int = Field(default=0, ge=0)
    # Streams whose chunks the Kokoro engine synthesizes in one pass; 0 = 1 on a CPU (a batch costs what its
    # members cost one by one there: bench/batching.py), BATCH_ON_GPU on a GPU.
    batch: int = Field(default=0, ge=0)
    # Never synthesize more than this many seconds of audio ahead of what the client has read.
    max_lead_s: float = Field(default=30.0, gt=0)
    # A streaming client that reads nothing for this long is cut off and its synthesis cancelled.
    idle_timeout_s: float = Field(default=60.0, gt=0)
    # ...and one that, over `read_window_s`, takes less than this many seconds of audio per second while the
    # server waits on it (its place on the board comes back); 0 turns the floor off. Real time is 1.
    min_read_rate: float = Field(default=0.5, ge=0)
    read_window_s: float = Field(default=30.0, gt=0)
    # The voice-agent sockets (ElevenLabs', Together's): contexts open at once on one socket, the largest
    # message, messages a second (bursts of twice as many pass), silence from the client before the socket
    # closes, the most silence a client may ask for (ElevenLabs' `inactivity_timeout`; also Together's
    # sockets' bound, since its clients send no keepalives between turns), and text over a socket's life.
    # A context's text is bounded by `max_input_chars`, and each context holds one of `max_pending` places
    # while it is open.
    socket_max_contexts: int = Field(default=8, ge=1)
    socket_max_message_bytes: int = Field(default=64 * 1024, ge=1024)
    socket_max_messages_per_s: float = Field(default=100.0, gt=0)
    socket_inactivity_s: float = Field(default=20.0, gt=0)
    socket_max_inactivity_s: float = Field(default=180.0, gt=0)
    socket_max_chars: int = Field(default=500_000, ge=1)
    # On SIGTERM or Ctrl-C, let requests in flight finish for up to this long, then cancel them.
    drain_grace_s: float = Field(default=30.0, ge=0)
    # When set, a Wyoming service (Home Assistant's protocol) listens on this TCP port, on `host`; `off`
    # (or empty) turns it off where an image's environment turned it on.
    wyoming_port: int | None = Field(default=None, ge=1, le=65535)
    # Wyoming has no authentication: with `api_key` set, the service listens on loopback only (Home
    # Assistant on the same machine), unless this opts in to serving it on `host` for anyone who reaches it.
    wyoming_open: bool = False
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"

    @field_validator("engine")
    @classmethod
    def _known_engine(cls, engine: str) -> str:
        if engine in MODEL_ENGINES or parse_emulated(engine) is not None:  # ValueError if malformed
            return engine
        raise ValueError(f"engine must be one of {', '.join(MODEL_ENGINES)} or emulated:N, got {engine!r}")

    @field_validator("wyoming_port", mode="before")
    @classmethod
    def _port_or_off(cls, port: object) -> object:
        if isinstance(port, str) and port.strip().lower() in ("", "0", "off", "none"):
            return None
        return port

    @property
    def wyoming_host(self) -> str:
        """Where the Wyoming service listens: `host`, but loopback when a key guards /v1/* and the operator
        did not opt in (`wyoming_open`): Wyoming cannot ask for the key."""
        if self.api_key is None or self.wyoming_open or self.host == "127.0.0.1":
            return self.host
        return "::1" if self.host == "::" else "127.0.0.1"

    @property
    def emulated(self) -> bool:
        """Whether the workers run the load-testing engine instead of the model."""
        return self.engine.startswith(EMULATED_PREFIX)
