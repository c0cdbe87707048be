"""The web page: ``GET /`` and its static files under ``/static``, served by the API process.

Plain HTML, CSS and one ES module (``api/static``): no build step, nothing fetched from
another origin, so the Content-Security-Policy can allow only this origin.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

# Same origin only; images may also be blob: URLs (thumbnails of the files a person picked).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


class _RevalidatedStaticFiles(StaticFiles):
    """Static files that browsers revalidate (cheap with the ETag), so a deploy shows at once."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


async def index() -> FileResponse:
    """The single page of the web interface."""
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers=PAGE_HEADERS)


def mount_web(app: FastAPI) -> None:
    """Serve the page at ``/`` and its assets at ``/static/…``, out of the OpenAPI document."""
    app.add_api_route(
        "/", index, methods=["GET", "HEAD"], include_in_schema=False, name="web_index"
    )
    app.mount("/static", _RevalidatedStaticFiles(directory=STATIC_DIR), name="static")
