"""The FastAPI app behind the Customer Lens page, mounted by the Airflow API server at :data:`URL_PREFIX`.

Routes (all but the icon need an Airflow login: the UI's session cookie or a bearer token; a browser
without one is sent to the login page):

- ``/`` — the page (:mod:`.render`), read fresh from the warehouse on every request;
- ``/reports/<path>`` — files under ``$LENS_STATE_DIR/reports/`` only: the HTML report
  (``customer_lens.html``) and the validation docs (``validation/<run_id>.html``). Paths are checked
  after resolving symlinks, so nothing outside that directory can be reached;
- ``/icon.svg`` — the navigation icon.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import quote

from customer_lens.airflow.plugin_page import URL_PREFIX, queries, render
from customer_lens.config import settings as settings_mod
from customer_lens.report.document import REPORT_NAME

if TYPE_CHECKING:
    from fastapi import FastAPI

ICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" fill="none" stroke="currentColor" '
    'stroke-width="2" stroke-linecap="round" stroke-linejoin="round"><circle cx="11" cy="11" r="7"/>'
    '<path d="M21 21l-4.3-4.3"/><path d="M8 13v-2M11 13V9M14 13v-3"/></svg>'
)


def report_file(root: Path, relative: str) -> Path | None:
    """The file ``relative`` under ``root``, or None if it is missing or would leave ``root``."""
    if not relative or "\\" in relative or "\x00" in relative:
        return None
    parts = PurePosixPath(relative).parts
    if not parts or parts[0] == "/" or any(part in ("", ".", "..") or part.startswith(".") for part in parts):
        return None
    try:
        base = root.resolve(strict=True)
        target = base.joinpath(*parts).resolve(strict=True)
    except (FileNotFoundError, NotADirectoryError, RuntimeError):  # RuntimeError: a symlink loop
        return None
    return target if target.is_relative_to(base) and target.is_file() else None


def report_url(root: Path, path: str | Path | None, prefix: str = URL_PREFIX) -> str | None:
    """The page's URL for a report file given by its path on disk (absolute, or relative to ``root``)."""
    if not path:
        return None
    path = Path(path)
    try:
        relative = (path if path.is_absolute() else root / path).resolve().relative_to(root.resolve())
    except (ValueError, OSError):
        return None
    if report_file(root, relative.as_posix()) is None:
        return None
    return f"{prefix}/reports/{quote(relative.as_posix())}"


def create_app(cfg: settings_mod.Settings | None = None) -> FastAPI:
    """Build the app (imports FastAPI and Airflow's security helpers: only the API server calls this)."""
    from airflow.api_fastapi.core_api.security import requires_authenticated
    from fastapi import Depends, FastAPI, HTTPException, Request
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
    from starlette.exceptions import HTTPException as StarletteHTTPException

    app = FastAPI(title="Customer Lens", docs_url=None, redoc_url=None, openapi_url=None)
    authenticated = [Depends(requires_authenticated())]
    no_store = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}

    def settings() -> settings_mod.Settings:
        return cfg or settings_mod.load()

    @app.exception_handler(StarletteHTTPException)
    async def login_redirect(request: Request, exc: StarletteHTTPException) -> Response:
        # A browser without a valid session gets the login page, then comes back here.
        if exc.status_code in (401, 403) and "text/html" in request.headers.get("accept", ""):
            from airflow.api_fastapi.app import get_auth_manager

            return RedirectResponse(get_auth_manager().get_url_login(next_url=str(request.url)), status_code=303)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.get("/", response_class=HTMLResponse, dependencies=authenticated)
    def lens_page() -> HTMLResponse:
        import psycopg

        from customer_lens.local import warehouse

        current = settings()
        root = queries.reports_dir(current)
        overview, error, status = None, None, 200
        try:
            overview = queries.load(current)
        except (psycopg.OperationalError, warehouse.WarehouseError) as exc:
            error, status = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__, 503
        html = render.page(
            overview,
            report_url=report_url(root, REPORT_NAME),
            docs_url=lambda path: report_url(root, path),
            error=error,
        )
        return HTMLResponse(html, status_code=status, headers=no_store)

    @app.get("/reports/{relative:path}", dependencies=authenticated)
    def report(relative: str) -> FileResponse:
        target = report_file(queries.reports_dir(settings()), relative)
        if target is None:
            raise HTTPException(404, "no such report")
        return FileResponse(target, headers=no_store)

    @app.get("/icon.svg")
    def icon() -> Response:
        return Response(ICON, media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"})

    return app
