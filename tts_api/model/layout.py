"""Where a model directory keeps its files; ours and `hexgrad/Kokoro-82M`'s share the layout."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["ModelDir", "ModelDirError"]


class ModelDirError(RuntimeError):
    """Raised when a model directory is missing or lacks a file the server needs."""


@dataclass(frozen=True)
class ModelDir:
    """`config.json`, `kokoro-v1_0.pth` and `voices/<id>.pt`, as in the Hugging Face repo."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def weights(self) -> Path:
        return self.root / "kokoro-v1_0.pth"

    @property
    def voices(self) -> Path:
        return self.root / "voices"

    @property
    def manifest(self) -> Path:
        """Written only by our asset build: what it was built from."""
        return self.root / "manifest.json"

    def voice(self, voice_id: str) -> Path:
        return self.voices / f"{voice_id}.pt"

    def missing(self) -> list[str]:
        """The required files that are absent (empty when the directory is usable)."""
        problems = [p.name for p in (self.config, self.weights) if not p.is_file()]
        if not any(self.voices.glob("*.pt")):
            problems.append("voices/*.pt")
        return problems

    def require(self) -> ModelDir:
        """Return self, or raise ModelDirError saying how to get a usable directory."""
        missing = self.missing()
        if missing:
            raise ModelDirError(
                f"model directory {self.root} is not usable (missing: {', '.join(missing)}). "
                "Build it with `make model` (python -m tts_api.model.assets), or set TTS_MODEL_DIR "
                "(--model-dir) to a directory with config.json, kokoro-v1_0.pth and voices/*.pt "
                "(the hexgrad/Kokoro-82M layout)."
            )
        return self
