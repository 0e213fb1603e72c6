"""One log format for every process of the server (workers are spawned and start unconfigured)."""

from __future__ import annotations

import logging

__all__ = ["configure_logging"]

FORMAT = "%(asctime)s %(levelname)s %(processName)s[%(process)d] %(name)s: %(message)s"


def configure_logging(level: str) -> None:
    """Send `tts_api` records at `level` and above to stderr."""
    logging.basicConfig(level=level.upper(), format=FORMAT, force=True)
