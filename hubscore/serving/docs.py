"""`/docs` and `/redoc` without internet: Swagger UI and ReDoc served by our own server.

FastAPI's pages load their JavaScript and CSS from a CDN, so they are blank on the cron hosts
and CRM back ends that have no internet. This is FastAPI's documented self-hosting recipe,
with the files the `fastapi-offline` package ships; every asset a page names is same-origin.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs-assets"
SWAGGER_JS, SWAGGER_CSS, REDOC_JS, FAVICON = (
    "swagger-ui-bundle.js",
    "swagger-ui.css",
    "redoc.standalone.js",
    "favicon.png",
)


def assets_dir() -> Path:
    """Return the folder of the bundled Swagger UI and ReDoc files."""
    return Path(str(resources.files("fastapi_offline").joinpath("static")))


def add_offline_docs(app: FastAPI, *, docs: str = "/docs", redoc: str = "/redoc") -> None:
    """Serve Swagger UI at `docs` and ReDoc at `redoc` from local files (FastAPI's own off)."""
    app.mount(ASSETS, StaticFiles(directory=assets_dir()), name="docs-assets")
    redirect = app.swagger_ui_oauth2_redirect_url or f"{docs}/oauth2-redirect"

    @app.get(docs, include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=f"{root}{redirect}",
            swagger_js_url=f"{root}{ASSETS}/{SWAGGER_JS}",
            swagger_css_url=f"{root}{ASSETS}/{SWAGGER_CSS}",
            swagger_favicon_url=f"{root}{ASSETS}/{FAVICON}",
        )

    @app.get(redirect, include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(redoc, include_in_schema=False)
    def redoc_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS}/{REDOC_JS}",
            redoc_favicon_url=f"{root}{ASSETS}/{FAVICON}",
            with_google_fonts=False,  # fonts from Google are not same-origin either
        )
