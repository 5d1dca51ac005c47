"""Each run's ``report.html`` in the Airflow UI, for signed-in users who may read that DAG's runs.

Mounted by the Airflow plugin ``plugins/rostering_reports_plugin.py`` (the api-server mounts it; other components only
see a plugin with nothing to run):

- ``GET <base path>/rostering/reports/<dag_id>/<run_id>``: the run's ``reports/report.html`` -- nothing else from the
  run folder (the JSON reports and ``withheld.csv`` stay on the volume). The run id is the Airflow run id or the run
  folder's name (``RunPaths.for_run`` maps both to the same folder);
- a tab **Run report** on the DAG run page (an ``external_views`` entry with ``destination: dag_run``), which shows
  that page in the UI.

Auth is Airflow's own: the route depends on ``requires_access_dag("GET", DagAccessEntity.RUN)`` from the API server's
security module, i.e. the auth manager's JWT (the UI's ``_token`` cookie or an ``Authorization: Bearer`` header) and
the user's permission to read the runs of *that* DAG. Plugin apps are mounted without any auth of their own, so the
dependency is what protects the page. Without a session a browser is sent to the login page (and back); any other
client gets 401. Every response is ``Cache-Control: no-store`` with a Content-Security-Policy that allows only the
page's inline style, and only framing by the Airflow UI itself: the pages are derived from children's records.

Light to import (stdlib only): the plugin is imported by every Airflow process, including each task's. The FastAPI
app and Airflow's API-server modules are loaded on the first request.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

URL_PREFIX = "/rostering"  # where the plugin's app is mounted (under the api-server's base path)
REPORT_ROUTE = "/reports/{dag_id}/{run_id}"
VIEW_ROUTE = "run-report"  # the UI tab: /dags/<dag_id>/runs/<run_id>/plugin/run-report
REPORT_NAME = "report.html"

# Airflow's dag ids and its default allowed_run_id_pattern; neither may start with a dot ("..", ".hidden")
_DAG_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,249}")
_RUN_ID = re.compile(r"[A-Za-z0-9_~:+-][A-Za-z0-9_.~:+-]{0,249}")

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "Content-Security-Policy": ("default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
                                "form-action 'none'; frame-ancestors 'self'; sandbox"),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "SAMEORIGIN",
    "Referrer-Policy": "no-referrer",
}


class NotAReportName(ValueError):
    """The dag id or run id is not one Airflow would make (a path, dots, odd characters)."""


class NoReport(LookupError):
    """No report.html for that run in the work folder."""


def run_folder_name(run_id: str) -> str:
    """The run's folder under ``<work dir>/<dag_id>/``: ``RunPaths.for_run``'s naming (kept equal by a test; not
    imported from rostering.pipeline, which would load pandas into the api-server)."""
    return re.sub(r"[^0-9A-Za-z._-]", "_", run_id)


def report_file(dag_id: str, run_id: str, *, work: Path | None = None) -> Path:
    """The run's ``<work dir>/<dag_id>/<run folder>/reports/report.html``, resolved; only a regular file that really is
    there (no symlink out of the folder, no traversal). Raises NotAReportName or NoReport."""
    if not (_DAG_ID.fullmatch(dag_id) and _RUN_ID.fullmatch(run_id)):
        raise NotAReportName("not a dag id / run id")
    from rostering.paths import work_dir

    root = (work or work_dir()).resolve()
    reports = root / dag_id / run_folder_name(run_id) / "reports"
    if reports.parent.parent != root / dag_id or reports.parent.name in {".", ".."}:  # belt and braces
        raise NotAReportName("not a dag id / run id")
    try:
        resolved = (reports / REPORT_NAME).resolve(strict=True)
    except (OSError, RuntimeError):
        raise NoReport(f"no report for run {run_id} of {dag_id}") from None
    if resolved != reports / REPORT_NAME or not resolved.is_file():
        raise NoReport(f"no report for run {run_id} of {dag_id}")
    return resolved


def base_path(base_url: str | None) -> str:
    """The path part of Airflow's ``[api] base_url`` without its trailing slash ("" at the root)."""
    return urlsplit(base_url or "").path.rstrip("/")


def report_url(dag_id: str, run_id: str, base_url: str) -> str:
    """The report's address for a person: ``https://airflow.example.org/rostering/reports/<dag_id>/<run_id>``."""
    return f"{base_url.rstrip('/')}{URL_PREFIX}/reports/{quote(dag_id, safe='')}/{quote(run_id, safe='')}"


def report_url_for(reports: Path, base_url: str | None) -> str | None:
    """The address of the report in a run's ``reports`` folder (its run folder's name stands for the run id), or
    None without a base URL."""
    if not base_url:
        return None
    return report_url(reports.parent.parent.name, reports.parent.name, base_url)


def configured_base_url() -> str | None:
    """Airflow's ``[api] base_url`` (AIRFLOW__API__BASE_URL), or None when it is not set."""
    try:
        from airflow.sdk.configuration import conf
    except ImportError:  # pragma: no cover - Airflow core only
        from airflow.configuration import conf
    try:
        return conf.get("api", "base_url", fallback=None) or None
    except Exception:  # noqa: BLE001 - a missing setting never breaks a mail
        return None


def external_view(base_url: str | None = None) -> dict[str, Any]:
    """The UI tab on a DAG run's page that shows the run's report (the UI fills in {DAG_ID} and {RUN_ID})."""
    return {
        "name": "Run report",
        "href": f"{base_path(base_url)}{URL_PREFIX}/reports/{{DAG_ID}}/{{RUN_ID}}",
        "destination": "dag_run",
        "url_route": VIEW_ROUTE,
    }


def create_app():
    """The FastAPI app serving the reports (needs the API server's auth manager: built inside the api-server)."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import requires_access_dag
    from fastapi import Depends, FastAPI, Request
    from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
    from starlette.exceptions import HTTPException

    app = FastAPI(title="Rostering run reports", docs_url=None, redoc_url=None, openapi_url=None)

    @app.middleware("http")
    async def no_store(request: Request, call_next):
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    @app.exception_handler(HTTPException)
    async def refused(request: Request, error: HTTPException):
        if error.status_code == 401 and "text/html" in request.headers.get("accept", ""):
            # a person following a link (the alert mail) without a session: sign in, then come back here
            from airflow.api_fastapi.app import get_auth_manager

            return RedirectResponse(get_auth_manager().get_url_login(next_url=str(request.url)), status_code=303,
                                    headers=SECURITY_HEADERS)
        return JSONResponse({"detail": error.detail}, status_code=error.status_code, headers=SECURITY_HEADERS)

    @app.get(REPORT_ROUTE, dependencies=[Depends(requires_access_dag("GET", DagAccessEntity.RUN))])
    def run_report(dag_id: str, run_id: str):
        try:
            path = report_file(dag_id, run_id)
        except NotAReportName:
            raise HTTPException(400, "not a DAG id / run id") from None
        except NoReport:
            raise HTTPException(404, "no report for this run (yet): it is written by the summary task, or when a "
                                     "run is held or fails validation") from None
        return FileResponse(path, media_type="text/html; charset=utf-8", headers=SECURITY_HEADERS)

    return app


class ReportsApp:
    """The ASGI app the plugin mounts: the FastAPI app is built on the first request, in the api-server."""

    def __init__(self) -> None:
        self._app = None

    async def __call__(self, scope, receive, send) -> None:
        if self._app is None:
            self._app = create_app()
        await self._app(scope, receive, send)


def fastapi_app() -> dict[str, Any]:
    """The plugin's ``fastapi_apps`` entry."""
    return {"name": "rostering_reports", "app": ReportsApp(), "url_prefix": URL_PREFIX}
