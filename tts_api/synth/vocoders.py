"""Kokoro's model in a worker: kokoro's front in torch, then a vocoder engine; interruptible.

Between the two, the silence at a chunk's edges that the seams would throw away is cut from the decoder's
inputs (model/edges.py), so the vocoder never makes it.

Three engines run the decoder: `torch` (kokoro's own modules, any device), `bf16` (the same modules under
bfloat16 autocast: ~26 dB from fp32, which DNSMOS and PocketSphinx do not tell apart; faster than `onnx`
on some CPUs and slower on others, so `auto` times the two at start-up where both can run: synth/race.py)
and `onnx` (the export made and verified by `make model`, on ONNX Runtime, CPU). All take the sine
source's random draws from the current request's generator (on the GPU for a CUDA model), and all
stop mid-chunk when `interrupt()` is called from another thread: ONNX Runtime between kernels
(`RunOptions.terminate`), torch (either precision) before any of the decoder's convolutions. The front
stops before any of its layers too: on a 2-vCPU CPU it is a few hundred milliseconds of a chunk, and a
stop that waited for the vocoder came that much later. `bf16` on a CPU without bfloat16 kernels falls
back to `torch` (said in one log line): emulated, it ran 85x slower than fp32.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from kokoro import KModel

from ..formats import SAMPLE_RATE
from ..model.batched import decode_batch, front_batch
from ..model.edges import EdgeTrim, trim_edges
from ..model.export import INPUTS, export_path, verified_export
from ..model.layout import ModelDir
from ..model.vocoder import DecoderInputs, NoiseDecoder, draw_noise, front
from ..settings import ModelEngine
from .race import faster, race_chunks
from .seams import KEEP_LEAD_S, KEEP_TAIL_S
from .speech import Interrupted

__all__ = ["EDGE_TRIM", "SpeechModel", "Vocoder", "bf16_unavailable", "choose_vocoder"]

logger = logging.getLogger(__name__)

FRAMES_PER_S = 40  # Kokoro's duration steps: 600 samples at 24 kHz
# The predicted energy marks the speech to within one frame (model/edges.py); beside a cut edge the
# decoder's convolutions see zeros where silence was and its instance norms see other statistics, so more
# frames let its output settle. Measured on the real weights: with 4 (7 and 10 frames in all) PocketSphinx
# heard "Hello world," as "you know where that" in every seed (0 of 11 words wrong without trimming);
# with 9 before and 10 after it hears it right, and the DNSMOS mean of 24 sentences stays level.
DETECTION_FRAMES = 1
SETTLE_LEAD_FRAMES = 9
SETTLE_TAIL_FRAMES = 10
EDGE_TRIM = EdgeTrim(
    lead_frames=math.ceil(KEEP_LEAD_S * FRAMES_PER_S) + DETECTION_FRAMES + SETTLE_LEAD_FRAMES,
    tail_frames=math.ceil(KEEP_TAIL_S * FRAMES_PER_S) + DETECTION_FRAMES + SETTLE_TAIL_FRAMES,
)

# The front's parts (KModel's, before the decoder) and the layers a stop is checked before: ALBERT's
# linear layers run a few dozen times per chunk, the predictor's LSTMs and convolutions a few each.
FRONT_PARTS = ("bert", "bert_encoder", "predictor", "text_encoder")
STOP_POINTS = (torch.nn.Linear, torch.nn.LSTM, torch.nn.Conv1d)

Noise = tuple[torch.Tensor, torch.Tensor]  # the sine source's draws: rand_ini, noise


class Vocoder(Protocol):
    name: str

    def decode(self, inputs: DecoderInputs, rand_ini: torch.Tensor, noise: torch.Tensor) -> torch.Tensor: ...
    def decode_many(
        self, members: Sequence[DecoderInputs], noises: Sequence[Noise]
    ) -> list[torch.Tensor]: ...
    def interrupt(self) -> None: ...
    def reset(self) -> None: ...


class TorchVocoder:
    """kokoro's decoder in torch, with a stop check before each of its convolutions."""

    name = "torch"

    def __init__(self, model: KModel) -> None:
        self.decoder = NoiseDecoder(model.decoder).eval()
        self.device = model.device
        self._stop = threading.Event()
        self._hooks = [
            module.register_forward_pre_hook(self._check)
            for module in self.decoder.modules()
            if isinstance(module, torch.nn.Conv1d | torch.nn.ConvTranspose1d)
        ]

    def _check(self, module: torch.nn.Module, args: Any) -> None:
        if self._stop.is_set():
            raise Interrupted

    def decode(self, inputs: DecoderInputs, rand_ini: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.decoder(
                inputs.asr,
                inputs.f0,
                inputs.energy,
                inputs.style,
                rand_ini.to(self.device),
                noise.to(self.device),
            ).squeeze(0)

    def decode_many(self, members: Sequence[DecoderInputs], noises: Sequence[Noise]) -> list[torch.Tensor]:
        """Several chunks in one batched pass (model/batched.py), each as it would be alone."""
        moved = [(r.to(self.device), n.to(self.device)) for r, n in noises]
        return decode_batch(self.decoder, members, moved)

    def interrupt(self) -> None:
        self._stop.set()

    def reset(self) -> None:
        self._stop.clear()

    def release(self) -> None:
        """Take its stop checks off the model's convolutions (a decoder not kept shares them)."""
        for hook in self._hooks:
            hook.remove()


def decode_each(
    vocoder: Vocoder, members: Sequence[DecoderInputs], noises: Sequence[Noise]
) -> list[torch.Tensor]:
    """Several chunks one at a time, for a vocoder with no batched pass."""
    return [vocoder.decode(m, r, n) for m, (r, n) in zip(members, noises, strict=True)]


class Bf16Vocoder(TorchVocoder):
    """kokoro's decoder in torch under bfloat16 autocast (its convolutions and matmuls in bf16); audio in
    fp32. 1.3-1.5x ONNX Runtime on a Zen 4 with AVX512-BF16, slower than it in the server on an AMX Xeon;
    on an H200 slower than fp32. A chunk length it has not seen costs it more than a repeated one."""

    name = "bf16"

    def decode(self, inputs: DecoderInputs, rand_ini: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        with torch.autocast(self.device.type, dtype=torch.bfloat16):
            return super().decode(inputs, rand_ini, noise).float()

    def decode_many(self, members: Sequence[DecoderInputs], noises: Sequence[Noise]) -> list[torch.Tensor]:
        return decode_each(self, members, noises)


class OnnxVocoder:
    """The exported decoder on ONNX Runtime; a run in flight stops at the next kernel when interrupted."""

    name = "onnx"

    def __init__(self, path: str, threads: int) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Spinning threads burn the core the torch front or another worker needs.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self._options = onnxruntime.RunOptions
        self._run: Any = onnxruntime.RunOptions()
        self._lock = threading.Lock()

    def decode(self, inputs: DecoderInputs, rand_ini: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        tensors = (inputs.asr, inputs.f0, inputs.energy, inputs.style, rand_ini, noise)
        feeds = {name: t.detach().cpu().numpy() for name, t in zip(INPUTS, tensors, strict=True)}
        with self._lock:
            run = self._run
        try:
            audio = self._session.run(None, feeds, run)[0]
        except Exception as exc:  # ONNX Runtime's own Fail when terminated, or a real failure
            if run.terminate:
                raise Interrupted from exc
            raise
        if run.terminate:
            raise Interrupted
        return torch.from_numpy(np.ascontiguousarray(audio.squeeze(0)))

    def decode_many(self, members: Sequence[DecoderInputs], noises: Sequence[Noise]) -> list[torch.Tensor]:
        return decode_each(self, members, noises)

    def interrupt(self) -> None:
        with self._lock:
            self._run.terminate = True

    def reset(self) -> None:
        with self._lock:
            self._run = self._options()


def choose_vocoder(requested: ModelEngine, model: KModel, files: ModelDir, threads: int) -> Vocoder:
    """The engine asked for, or for `auto` the fastest verified one for the device (on a CPU with both a
    verified export and bfloat16 kernels, timed: synth/race.py); torch when the one asked for cannot run
    here or fails to load (said in one log line, never a crash)."""
    if requested == "bf16":
        reason = bf16_unavailable(model.device)
        if reason is None:
            return Bf16Vocoder(model)
        logger.warning("engine: the bf16 decoder is not available (%s); using torch", reason)
        return TorchVocoder(model)
    if requested == "torch" or (requested == "auto" and model.device.type != "cpu"):
        return TorchVocoder(model)
    reason = _onnx_unavailable(files, model)
    if reason is None:
        try:
            onnx = OnnxVocoder(str(export_path(files)), threads)
        except Exception as exc:  # a damaged file, a missing runtime library
            reason = f"it failed to load ({exc})"
        else:
            if requested == "auto" and bf16_unavailable(model.device) is None:
                return _race(model, onnx, Bf16Vocoder(model))
            return onnx
    logger.warning("engine: the onnx decoder is not available (%s); using torch", reason)
    return TorchVocoder(model)


def _race(model: KModel, onnx: OnnxVocoder, bf16: Bf16Vocoder) -> Vocoder:
    """The faster of the two on this machine (synth/race.py), said in one log line."""
    chunks = race_chunks(model)
    race = faster(chunks, onnx, bf16)
    kept = race.kept
    logger.info(
        "engine: auto timed the decoders on %d chunks of ~%.1f s of audio: onnx %.2f s, bf16 %.2f s "
        "per chunk (bf16 / onnx, median: %.2f); using %s",
        len(chunks),
        chunks[0].samples / SAMPLE_RATE,
        race.seconds[onnx.name],
        race.seconds[bf16.name],
        race.ratio,
        kept.name,
    )
    if kept is onnx:
        bf16.release()
        return onnx
    return bf16


def bf16_unavailable(device: torch.device) -> str | None:
    """Why bfloat16 would not pay on `device`, or None. Without oneDNN's bf16 kernels (AVX512 or AMX;
    on ARM, BF16) torch emulates each product: a Conv1d ran 85x slower than fp32 on an AVX2-only Zen 1."""
    if device.type == "cpu" and not _onednn_bf16():
        return "this CPU has no bfloat16 kernels; oneDNN needs AVX512, AMX or ARM's BF16 for them"
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return f"{torch.cuda.get_device_name(device)} has no bfloat16"
    return None


def _onednn_bf16() -> bool:
    if not torch.backends.mkldnn.is_available():  # a torch built without oneDNN
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a private check that a build may lack
        return False


def _onnx_unavailable(files: ModelDir, model: KModel) -> str | None:
    if model.device.type != "cpu":
        return f"it runs on the CPU only, and this worker is on {model.device}"
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return "onnxruntime is not installed"
    if verified_export(files) is None:
        return f"no verified {export_path(files).name} in {files.root}; `make model` makes it"
    return None


@dataclass
class SpeechModel:
    """Kokoro's model with the decoder on a chosen vocoder engine: phonemes in, audio and durations out.

    With `trim` (the default), the decoder makes only the speech and the margins around it; the
    durations returned are those of the audio made.
    """

    model: KModel
    vocoder: Vocoder
    trim: EdgeTrim | None = EDGE_TRIM
    _stop: threading.Event = field(default_factory=threading.Event, init=False, repr=False)

    def __post_init__(self) -> None:
        for part in FRONT_PARTS:
            for module in getattr(self.model, part).modules():
                if isinstance(module, STOP_POINTS):
                    module.register_forward_pre_hook(self._check)

    def _check(self, module: torch.nn.Module, args: Any) -> None:
        if self._stop.is_set():
            raise Interrupted

    @property
    def device(self) -> torch.device:
        return self.model.device

    def generator(self, seed: int) -> torch.Generator:
        """A request's generator for the sine source's draws: on the GPU for a CUDA model (drawn on the CPU,
        the noise took half of a long text's time on an H200), else on the CPU."""
        device = self.device if self.device.type == "cuda" else torch.device("cpu")
        return torch.Generator(device=device).manual_seed(seed)

    def __call__(
        self, phonemes: str, ref_s: torch.Tensor, speed: float, generator: torch.Generator
    ) -> KModel.Output:
        """Synthesize one piece; the sine source's random draws come from `generator` (the request's)."""
        inputs = front(self.model, self._ids(phonemes), ref_s.to(self.device), speed)
        if self.trim is not None:
            inputs = trim_edges(inputs, self.trim)
        rand_ini, noise = draw_noise(inputs.f0.shape[-1], generator)
        audio = self.vocoder.decode(inputs, rand_ini, noise)
        return KModel.Output(audio=audio.cpu(), pred_dur=inputs.pred_dur.cpu())

    def batch(
        self, pieces: Sequence[tuple[str, torch.Tensor, float, torch.Generator]]
    ) -> list[KModel.Output]:
        """Synthesize several pieces (phonemes, voice vector, speed, generator) in one pass: the front
        batched, and the decoder as the vocoder can (batched in torch, one by one in onnx and bf16); each
        gets what it would alone (its durations exactly, its audio within rounding)."""
        fronts = front_batch(
            self.model,
            [self._ids(phonemes) for phonemes, _, _, _ in pieces],
            [ref_s.to(self.device) for _, ref_s, _, _ in pieces],
            [speed for _, _, speed, _ in pieces],
        )
        inputs = [trim_edges(i, self.trim) for i in fronts] if self.trim is not None else fronts
        noises = [draw_noise(i.f0.shape[-1], p[3]) for i, p in zip(inputs, pieces, strict=True)]
        audios = self.vocoder.decode_many(inputs, noises)
        return [
            KModel.Output(audio=a.cpu(), pred_dur=i.pred_dur.cpu())
            for a, i in zip(audios, inputs, strict=True)
        ]

    def _ids(self, phonemes: str) -> torch.Tensor:
        ids = [i for i in (self.model.vocab.get(p) for p in phonemes) if i is not None]
        if len(ids) + 2 > self.model.context_length:
            raise ValueError(f"{len(ids)} phonemes is more than the model's context")
        return torch.LongTensor([[0, *ids, 0]]).to(self.device)

    def interrupt(self) -> None:
        """Stop the synthesis in flight (from another thread); it raises Interrupted."""
        self._stop.set()
        self.vocoder.interrupt()

    def reset(self) -> None:
        """Forget an interrupt: the next synthesis runs."""
        self._stop.clear()
        self.vocoder.reset()
