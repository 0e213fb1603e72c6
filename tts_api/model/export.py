"""Export the decoder to ONNX at `make model` time, verified against torch, cached in the model directory.

`decoder.onnx` is kokoro's iSTFTNet decoder in fp32 (weight norm folded, exact STFT, opset 17) with the
sine source's random draws as inputs (see vocoder.py). Beside it, `decoder.onnx.json` records what it was
built from and how it compared with the torch decoder on the same inputs and the same draws, for three
sentences (about 2, 6 and 17 s of audio): the largest sample difference over the first second and over the
whole chunk, the signal-to-difference ratio, the log-spectrogram correlation, that two runs agree bit for
bit, and (with real weights) that PocketSphinx hears the same words. An export that fails any check is not
kept; the server then runs the torch decoder and says so in one log line.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .layout import ModelDir

__all__ = [
    "EXPORT_RECIPE",
    "ExportError",
    "Verification",
    "ensure_export",
    "export_decoder",
    "snr_db",
    "verified_export",
]

Progress = Callable[[str], None]

EXPORT_RECIPE = 1  # bump when the export or its checks change: older exports are rebuilt
OPSET = 17
INPUTS = ("asr", "f0", "energy", "style", "rand_ini", "noise")
# Verification sentences as phonemes (misaki, American English), so no G2P is needed to check.
VERIFY_PHONEMES = (
    "həlˈO wˈɜɹld, ðɪs ɪz ɐ tˈɛst.",
    "ðə kwˈɪk bɹˈWn fˈɑks ʤˈʌmps ˈOvəɹ ðə lˈAzi dˈɔɡ, ænd ðˈɛn ɪt ɹˈʌnz əwˈA ˈɪntu ðə fˈɔɹəst.",
    "ˌɔn ɐ kwˈIət sˈʌndˌA mˈɔɹnɪŋ, ði ˈOld lˈIthˌWs kˈipəɹ klˈImd ðə nˈɛɹO stˈɛɹz wˈʌns mˈɔɹ, "
    "kˈWntɪŋ ˈɛvəɹi stˈɛp æz hi hæd dˈʌn fɔɹ fˈɔɹTi jˈɪɹz, ænd wˈʌndəɹd wˈɛðəɹ ˈɛniwˌʌn wʊd ɹəmˈɛmbəɹ "
    "ðə lˈIt ˈæftəɹ hi wʌz ɡˈɔn.",
)
VERIFY_VOICE = "af_heart"
# Measured on real weights: whole chunk 30-44 dB, log-spectrum ≥ 0.9994 (fp32 alone differs this much from
# fp64: the sine phase is a long cumulative sum); the same export fed a different seed gives 23 dB, and
# kokoro's own exportable STFT 5 dB. Sample differences are reported, not judged: they scale with loudness.
MIN_SNR_DB = 28.0
MIN_LOGSPEC_CORR = 0.999


class ExportError(RuntimeError):
    """Raised when the export cannot be made or does not match the torch decoder."""


@dataclass(frozen=True)
class Verification:
    """How the exported decoder compared with torch on one sentence (same inputs, same draws)."""

    audio_s: float
    max_diff_first_s: float
    max_diff: float
    snr_db: float
    logspec_corr: float
    deterministic: bool
    torch_heard: str | None = None  # PocketSphinx, real weights only
    onnx_heard: str | None = None

    def problems(self) -> list[str]:
        found = []
        if self.snr_db < MIN_SNR_DB:
            found.append(f"SNR {self.snr_db:.1f} dB < {MIN_SNR_DB}")
        if self.logspec_corr < MIN_LOGSPEC_CORR:
            found.append(f"log-spectrum correlation {self.logspec_corr:.5f} < {MIN_LOGSPEC_CORR}")
        if not self.deterministic:
            found.append("two runs on the same inputs differ")
        if self.torch_heard is not None and self.torch_heard != self.onnx_heard:
            found.append(f"heard {self.onnx_heard!r}, torch {self.torch_heard!r}")
        return found


def export_path(files: ModelDir) -> Path:
    return files.root / "decoder.onnx"


def _record_path(files: ModelDir) -> Path:
    return files.root / "decoder.onnx.json"


def _new_file_mode() -> int:
    """The mode `open()` gives a new file here: 0o666 less the umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _weights_sha256(files: ModelDir) -> str:
    digest = hashlib.sha256()
    with files.weights.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verified_export(files: ModelDir) -> dict[str, Any] | None:
    """The record of a verified, current export of this directory's weights, or None."""
    try:
        record = json.loads(_record_path(files).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if (
        not export_path(files).is_file()
        or record.get("recipe") != EXPORT_RECIPE
        or not record.get("verified")
    ):
        return None
    if record.get("weights_size") != files.weights.stat().st_size:
        return None
    return dict(record)


def ensure_export(files: ModelDir, progress: Progress, *, listen: bool = True) -> dict[str, Any]:
    """Export and verify unless a current, verified export is there; return its record."""
    record = verified_export(files)
    if record is not None and record.get("weights_sha256") == _weights_sha256(files):
        return record
    return export_decoder(files, progress, listen=listen)


def export_decoder(files: ModelDir, progress: Progress, *, listen: bool = True) -> dict[str, Any]:
    """Export `files`' decoder to ONNX and verify it; written into place only if it passes.

    `listen` also compares what PocketSphinx hears (meaningful with real weights only).
    """
    import torch

    from .kmodel import load_model
    from .vocoder import NoiseDecoder, draw_noise, front, use_exact_stft

    started = time.monotonic()
    threads = torch.get_num_threads()
    reference = load_model(files, "cpu")
    exported = use_exact_stft(load_model(files, "cpu"))
    decoder = NoiseDecoder(exported.decoder).eval()
    voice = files.voice(VERIFY_VOICE)
    pack = torch.load(voice if voice.is_file() else sorted(files.voices.glob("*.pt"))[0], weights_only=True)
    example = _inputs(reference, VERIFY_PHONEMES[1], pack, front, draw_noise)
    progress(f"export: decoder to ONNX (opset {OPSET})")
    handle, temp_name = tempfile.mkstemp(prefix=".decoder-", suffix=".onnx", dir=files.root)
    os.close(handle)
    temp = Path(temp_name)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about shape arithmetic: lengths stay dynamic
            torch.onnx.export(
                decoder,
                example,
                str(temp),
                input_names=list(INPUTS),
                output_names=["audio"],
                dynamic_axes={
                    "asr": {2: "frames"},
                    "f0": {1: "points"},
                    "energy": {1: "points"},
                    "noise": {2: "samples"},
                    "audio": {1: "samples_out"},
                },
                opset_version=OPSET,
                dynamo=False,
                do_constant_folding=True,
            )
        progress("export: verifying against the torch decoder")
        checks = [
            _verify(reference, temp, phonemes, pack, threads, listen=listen) for phonemes in VERIFY_PHONEMES
        ]
        problems = [f"sentence {i + 1}: {p}" for i, check in enumerate(checks) for p in check.problems()]
        if problems:
            raise ExportError("the exported decoder does not match torch: " + "; ".join(problems))
        record = {
            "recipe": EXPORT_RECIPE,
            "verified": True,
            "opset": OPSET,
            "inputs": list(INPUTS),
            "weights_size": files.weights.stat().st_size,
            "weights_sha256": _weights_sha256(files),
            "torch": torch.__version__,
            "onnxruntime": _ort_version(),
            "seconds": round(time.monotonic() - started, 1),
            "checks": [asdict(check) for check in checks],
            "largest_sample_difference": max(check.max_diff for check in checks),
        }
        # mkstemp made it 0600: a server running as another user (the image's) could not read it.
        temp.chmod(_new_file_mode())
        temp.replace(export_path(files))
        _record_path(files).write_text(json.dumps(record, indent=2) + "\n")
    finally:
        temp.unlink(missing_ok=True)
    worst = min(checks, key=lambda c: c.snr_db)
    progress(
        f"export: verified in {record['seconds']:.0f} s (largest sample difference "
        f"{record['largest_sample_difference']:.4f}, worst SNR {worst.snr_db:.1f} dB)"
    )
    return record


def _ort_version() -> str:
    import onnxruntime

    return str(onnxruntime.__version__)


def _inputs(
    model: Any, phonemes: str, pack: Any, front: Any, draw_noise: Any, seed: int = 0
) -> tuple[Any, ...]:
    import torch

    ids = torch.LongTensor([[0, *[model.vocab[p] for p in phonemes if p in model.vocab], 0]])
    inputs = front(model, ids, pack[len(phonemes) - 1], 1.0)
    rand_ini, noise = draw_noise(inputs.f0.shape[-1], torch.Generator().manual_seed(seed))
    return (inputs.asr, inputs.f0, inputs.energy, inputs.style, rand_ini, noise)


def _verify(
    reference: Any, path: Path, phonemes: str, pack: Any, threads: int, *, listen: bool
) -> Verification:
    import onnxruntime
    import torch

    from ..formats import SAMPLE_RATE
    from .vocoder import NoiseDecoder, draw_noise, front

    example = _inputs(reference, phonemes, pack, front, draw_noise, seed=len(phonemes))
    with torch.no_grad():
        expected = NoiseDecoder(reference.decoder)(*example).squeeze(0).numpy()
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feeds = {name: tensor.numpy() for name, tensor in zip(INPUTS, example, strict=True)}
    first = session.run(None, feeds)[0].squeeze(0)
    second = session.run(None, feeds)[0].squeeze(0)
    if first.shape != expected.shape or not np.isfinite(first).all():
        raise ExportError(f"the exported decoder made {first.shape} samples, torch {expected.shape}")
    difference = np.abs(first - expected)
    heard = _heard(expected, first, SAMPLE_RATE) if listen else (None, None)
    return Verification(
        audio_s=round(len(expected) / SAMPLE_RATE, 2),
        max_diff_first_s=float(difference[:SAMPLE_RATE].max()),
        max_diff=float(difference.max()),
        snr_db=snr_db(expected, first),
        logspec_corr=_logspec_corr(expected, first),
        deterministic=bool(np.array_equal(first, second)),
        torch_heard=heard[0],
        onnx_heard=heard[1],
    )


def snr_db(reference: npt.NDArray[np.float32], other: npt.NDArray[np.float32]) -> float:
    """Signal-to-difference ratio of `other` against `reference`, in dB (huge when they are identical)."""
    return float(10 * np.log10(np.sum(reference**2) / max(np.sum((other - reference) ** 2), 1e-20)))


def _heard(
    expected: npt.NDArray[np.float32], actual: npt.NDArray[np.float32], rate: int
) -> tuple[str | None, str | None]:
    from .listening import transcribe

    return transcribe(expected, rate), transcribe(actual, rate)


def _logspec_corr(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32], n_fft: int = 512) -> float:
    def logspec(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[:: n_fft // 4] * np.hanning(n_fft)
        return np.log10(np.abs(np.fft.rfft(frames, axis=-1)) + 1e-6).ravel()

    return float(np.corrcoef(logspec(a), logspec(b))[0, 1])
