"""The comparison server: a plain LitServe streaming API over the bare pipeline, without a cancel board.

What a straightforward LitServe port of Kokoro looks like: the worker streams raw pcm per KPipeline
chunk and never learns that a client left, so it synthesizes an abandoned request to its end.
Run as its own process: `python -m bench.plain_server --port P --model-dir DIR`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import litserve as ls

from tts_api.shutdown import stop_on_signals

__all__ = ["PlainSpeechAPI"]


class PlainSpeechAPI(ls.LitAPI):
    """POST /v1/audio/speech {"input", "seed"} -> chunked s16le 24 kHz pcm (voice af_heart), one item per
    KPipeline chunk, as the bare pipeline of the baseline yields them."""

    def __init__(self, model_dir: str, torch_threads: int) -> None:
        super().__init__(stream=True, api_path="/v1/audio/speech")
        self.model_dir = model_dir
        self.torch_threads = torch_threads

    def setup(self, device: str) -> None:
        from bench.baseline import BarePipeline

        self.bare = BarePipeline(Path(self.model_dir), device, self.torch_threads)
        self.bare.synthesize("Hello there.")  # warm up

    # `request` stays unannotated: LitServe turns an annotation into the FastAPI body type.
    def decode_request(self, request) -> dict[str, Any]:  # type: ignore[no-untyped-def]
        return dict(request)

    def predict(self, request: dict[str, Any]) -> Iterator[Any]:
        import torch

        if request.get("seed") is not None:
            torch.manual_seed(int(request["seed"]))
        for result in self.bare.pipeline(str(request["input"]), voice=self.bare.voice, speed=1):
            if result.audio is not None:
                yield result.audio

    def encode_response(self, outputs: Iterator[Any]) -> Iterator[bytes]:
        from tts_api.encoders import to_pcm16

        for audio in outputs:
            yield to_pcm16(audio.detach().cpu().numpy())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--torch-threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    stop_on_signals()
    server = ls.LitServer(
        PlainSpeechAPI(str(args.model_dir), args.torch_threads),
        accelerator=args.device,
        devices=1,
        workers_per_device=1,
        timeout=False,
    )
    with contextlib.suppress(KeyboardInterrupt):
        server.run(host="127.0.0.1", port=args.port, generate_client_file=False, log_level="warning")


if __name__ == "__main__":
    main()
