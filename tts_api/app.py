"""Wire the server: LitServer around SpeechAPI, the speech gateway, and the extra routes."""

from __future__ import annotations

import litserve as ls
from litserve.connector import check_cuda_with_nvidia_smi

from .api import SPEECH_PATH, SpeechAPI
from .gateway import SpeechGateway
from .layout import ModelDir
from .schemas import RequestContext
from .settings import Settings
from .voices import VoiceCatalogue, installed_languages

__all__ = ["build_server", "resolve_accelerator"]


def resolve_accelerator(settings: Settings) -> str:
    """The LitServe accelerator for `settings.device`; `auto` means CUDA when a GPU is visible.

    Decided with nvidia-smi, so the main process never initialises CUDA (its children are forked).
    """
    if settings.device != "auto":
        return settings.device
    return "cuda" if check_cuda_with_nvidia_smi() > 0 else "cpu"


def build_server(settings: Settings) -> ls.LitServer:
    """A LitServer ready to `run()`: workers load the model, the gateway guards the speech route."""
    files = ModelDir(settings.model_dir).require()
    context = RequestContext(
        catalogue=VoiceCatalogue.from_dir(files.voices),
        max_input_chars=settings.max_input_chars,
        languages=installed_languages(),
    )
    accelerator = resolve_accelerator(settings)
    return ls.LitServer(
        SpeechAPI(settings),
        accelerator=accelerator,
        devices="auto" if accelerator == "cuda" else 1,
        workers_per_device=settings.workers_per_device,
        # LitServe's timeout only bounds queue wait and turns into an empty 200 when streaming.
        timeout=False,
        model_metadata={"model": "Kokoro-82M", "model_dir": str(files.root)},
        middlewares=[(SpeechGateway, {"context": context, "path": SPEECH_PATH})],
    )
