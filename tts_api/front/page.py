"""The web page at `/`: a player for the speech endpoint, plain HTML/CSS/JS shipped with the package."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from starlette.staticfiles import StaticFiles

__all__ = ["STATIC_DIR", "add_page"]

STATIC_DIR = Path(str(resources.files("tts_api.front") / "static"))

# The page talks to this server only: no CDN, no fonts, no analytics. The policy makes a browser enforce it.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; media-src 'self' blob:; base-uri 'none'; form-action 'none'"
)


def add_page(app: FastAPI) -> None:
    """Serve the page at `GET /` and its script and style under `/static/`."""

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(
            STATIC_DIR / "index.html",
            headers={"content-security-policy": CONTENT_SECURITY_POLICY, "cache-control": "no-cache"},
        )

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
