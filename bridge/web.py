"""What the bridge serves to a browser: the web UI at ``/ui``, ``/`` pointing at it,
and the API docs (``/docs``: Swagger UI) with its script and styles served from the
installed packages, so that it works on a machine without internet access.

The UI is static files shipped in the package (``bridge/ui/``: plain ES modules, no
build step); they are public, like any page before sign-in: everything they show
comes from the API, with the caller's token. The docs' assets come from the
``fastapi-offline`` package (Swagger UI 5, which reads OpenAPI 3.1). There is no
``/redoc``: ReDoc's page loads a logo from its vendor's CDN whatever it is given.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from switchyard.bridge.graph_layout import GraphLayouts

UI_DIR = Path(__file__).with_name("ui")
DOCS_ASSETS = "/docs/assets"


def docs_assets_dir() -> Path:
    return Path(str(resources.files("fastapi_offline") / "static"))


def install(app: FastAPI) -> None:
    """Adds the UI, the root redirect, offline ``/docs`` and the layout cache to ``app``
    (none of them in the OpenAPI document: they are pages, not API)."""
    app.state.layouts = GraphLayouts()
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/ui/")

    @app.get("/ui", include_in_schema=False)
    async def ui() -> RedirectResponse:
        return RedirectResponse("/ui/")

    @app.get("/docs", include_in_schema=False)
    async def swagger() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title}: API docs",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url="/ui/favicon.svg",
            # No "validator" badge: it would call a public validation service.
            swagger_ui_parameters={"validatorUrl": None},
        )

    app.mount(DOCS_ASSETS, StaticFiles(directory=docs_assets_dir()), name="docs-assets")
    app.mount("/ui", StaticFiles(directory=UI_DIR, html=True), name="ui")
