"""Each run's report in the Airflow UI: the rostering_reports plugin and rostering.report_web.

The HTTP tests go through Airflow's own API app (``airflow.api_fastapi.app.create_app``) with the plugins folder of
this repository, so what is checked is what the api-server serves: the plugin mounted by Airflow's plugins manager,
the auth manager's JWT (SimpleAuthManager here; FAB in tests/test_ui_browser.py) and the security headers. Airflow
reads its configuration at import time, so that part runs once, in a subprocess with its own AIRFLOW_HOME and
metadata database, and reports every answer as JSON.
"""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DAG_ID = "stmath_oneroster"
RUN_ID = "manual__2026-12-04T07:54:01.759462+00:00"
FOLDER = "manual__2026-12-04T07_54_01.759462_00_00"  # RunPaths.for_run's folder for RUN_ID
PAGE = "<!doctype html><title>ST Math — run report</title><p id='outcome'>Delivered</p>"


def _work(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    reports = work / DAG_ID / FOLDER / "reports"
    reports.mkdir(parents=True)
    (reports / "report.html").write_text(PAGE)
    (reports / "withheld.csv").write_text("sis_key\nS-1\n")  # in the folder, never served
    (work / "secret.txt").write_text("NOT FOR THE WEB")
    (work / "sis_snapshot" / "manual__1" / "reports").mkdir(parents=True)  # a run without a report
    return work


# -- the file a request may reach --------------------------------------------------------------------------------------

def test_a_report_is_found_by_run_id_or_by_its_folder_name(tmp_path):
    from rostering.report_web import report_file

    work = _work(tmp_path)
    expected = (work / DAG_ID / FOLDER / "reports" / "report.html").resolve()
    assert report_file(DAG_ID, RUN_ID, work=work) == expected
    assert report_file(DAG_ID, FOLDER, work=work) == expected  # the alert mail's link names the folder


def test_the_run_folder_is_named_as_the_pipeline_names_it():
    from rostering.pipeline import RunPaths
    from rostering.report_web import run_folder_name

    for run_id in (RUN_ID, "scheduled__2026-11-03T09:00:00+00:00", "asset_triggered__x~y", "backfill__a:b+c"):
        assert RunPaths.for_run(DAG_ID, run_id, base=Path("/w")).root.name == run_folder_name(run_id)


@pytest.mark.parametrize("dag_id,run_id", [
    ("..", ".."), (DAG_ID, ".."), (DAG_ID, "."), ("..", FOLDER), (DAG_ID, "../../secret.txt"),
    (DAG_ID, "..%2F..%2Fsecret.txt"), ("../work", FOLDER), (DAG_ID, "a/b"), (DAG_ID, ""), ("", FOLDER),
    (DAG_ID, "x" * 251), (DAG_ID, "run with space"), (DAG_ID, ".hidden"),
])
def test_names_that_are_not_airflow_ids_are_refused(tmp_path, dag_id, run_id):
    from rostering.report_web import NotAReportName, report_file

    with pytest.raises(NotAReportName):
        report_file(dag_id, run_id, work=_work(tmp_path))


def test_an_unknown_run_a_run_without_report_and_a_symlink_out_of_the_folder_are_not_found(tmp_path):
    from rostering.report_web import NoReport, report_file

    work = _work(tmp_path)
    with pytest.raises(NoReport):
        report_file(DAG_ID, "manual__never", work=work)
    with pytest.raises(NoReport):
        report_file("sis_snapshot", "manual__1", work=work)
    linked = work / DAG_ID / "manual__linked" / "reports"
    linked.mkdir(parents=True)
    (linked / "report.html").symlink_to(work / "secret.txt")
    with pytest.raises(NoReport):
        report_file(DAG_ID, "manual__linked", work=work)
    (work / DAG_ID / "manual__dir" / "reports" / "report.html").mkdir(parents=True)
    with pytest.raises(NoReport):
        report_file(DAG_ID, "manual__dir", work=work)


def test_addresses_follow_the_base_url():
    from rostering.report_web import external_view, report_url, report_url_for

    assert report_url(DAG_ID, RUN_ID, "https://airflow.district.example.org/") == (
        "https://airflow.district.example.org/rostering/reports/stmath_oneroster/"
        "manual__2026-12-04T07%3A54%3A01.759462%2B00%3A00")
    reports = Path("/opt/rostering/var/work") / DAG_ID / FOLDER / "reports"
    assert report_url_for(reports, "https://x.example.org/airflow") == (
        f"https://x.example.org/airflow/rostering/reports/{DAG_ID}/{FOLDER}")
    assert report_url_for(reports, None) is None
    assert external_view(None)["href"] == "/rostering/reports/{DAG_ID}/{RUN_ID}"
    assert external_view("https://x.example.org/airflow/")["href"] == "/airflow/rostering/reports/{DAG_ID}/{RUN_ID}"


def test_importing_the_plugin_does_not_load_the_api_server():
    """Every Airflow process imports the plugins folder, each task too: the plugin must cost nothing there."""
    code = ("import sys; sys.path.insert(0, 'plugins'); import rostering_reports_plugin; "
            "heavy = sorted(m for m in sys.modules if m.startswith(('fastapi', 'airflow.api_fastapi', 'pandas'))); "
            "print(heavy)")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, AIRFLOW__CORE__LOAD_EXAMPLES="False"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout


# -- through Airflow's API app -----------------------------------------------------------------------------------------

SERVE = r"""
import json, sys
from airflow import settings
from airflow.models import import_all_models
from airflow.models.base import Base

import_all_models()
Base.metadata.create_all(settings.engine)  # the tables the auth checks query (revoked tokens, teams), no migration

from airflow import plugins_manager
from airflow.api_fastapi.app import create_app, get_auth_manager
from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
from fastapi.testclient import TestClient

plugins, errors = plugins_manager._get_plugins()
external_views, _ = plugins_manager._get_ui_plugins()
app = create_app(apps="core")
client = TestClient(app)
token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="ops", role="viewer"))
bearer = {"Authorization": "Bearer " + token}
report = "/rostering/reports/%s/%s"
out = {
    "plugins": [p.name for p in plugins], "import_errors": errors, "external_views": external_views,
    "fastapi_apps": [{k: v for k, v in d.items() if k != "app"} for p in plugins for d in p.fastapi_apps],
}

def ask(name, path, **kw):
    r = client.get(path, follow_redirects=False, **kw)
    out[name] = {"status": r.status_code, "headers": dict(r.headers), "body": r.text[:2000]}

ask("anonymous", report % ("stmath_oneroster", "manual__2026-12-04T07%3A54%3A01.759462%2B00%3A00"))
ask("anonymous_browser", report % ("stmath_oneroster", "manual__2026-12-04T07%3A54%3A01.759462%2B00%3A00"),
    headers={"Accept": "text/html,application/xhtml+xml"})
ask("forged", report % ("stmath_oneroster", "manual__2026-12-04T07%3A54%3A01.759462%2B00%3A00"),
    headers={"Authorization": "Bearer " + token[:-4] + "AAAA"})
ask("cookie", report % ("stmath_oneroster", "manual__2026-12-04T07%3A54%3A01.759462%2B00%3A00"),
    cookies={"_token": token})
ask("bearer_folder", report % ("stmath_oneroster", "manual__2026-12-04T07_54_01.759462_00_00"), headers=bearer)
ask("unknown_run", report % ("stmath_oneroster", "manual__never"), headers=bearer)
ask("no_report", report % ("sis_snapshot", "manual__1"), headers=bearer)
folder = "manual__2026-12-04T07_54_01.759462_00_00"
for i, path in enumerate([report % ("%2e%2e", "%2e%2e"), report % ("stmath_oneroster", "..%2F..%2Fsecret.txt"),
                          report % ("stmath_oneroster", "%2e%2e"), "/rostering/reports/../../secret.txt",
                          report % ("..%2F..", "secret.txt"), "/rostering/secret.txt",
                          report % ("stmath_oneroster", folder + "/withheld.csv"),
                          "/rostering/reports/stmath_oneroster/" + folder + "/../withheld.csv"]):
    ask(f"traversal_{i}", path, headers=bearer)
ask("plugins_api", "/api/v2/plugins", headers=bearer)
print("RESULT " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report_web")
    work = _work(tmp)
    home = tmp / "airflow"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(tmp / "no-dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "ops:viewer",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(48),
        "ROSTERING_WORK_DIR": str(work),
    })
    done = subprocess.run([sys.executable, "-c", SERVE], cwd=tmp, env=env, capture_output=True, text=True, timeout=600)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, (done.stdout[-3000:], done.stderr[-5000:])
    return json.loads(lines[-1][len("RESULT "):])


def test_the_plugin_loads_in_airflows_plugins_manager(served):
    assert "rostering_reports" in served["plugins"]
    assert not [path for path in served["import_errors"] if "rostering" in path], served["import_errors"]
    assert served["fastapi_apps"] == [{"name": "rostering_reports", "url_prefix": "/rostering"}]
    assert served["external_views"] == [{"name": "Run report", "href": "/rostering/reports/{DAG_ID}/{RUN_ID}",
                                         "destination": "dag_run", "url_route": "run-report"}]
    plugins = json.loads(served["plugins_api"]["body"])["plugins"]  # what the UI reads to draw the tab
    ours = [p for p in plugins if p["name"] == "rostering_reports"]
    assert ours and ours[0]["external_views"][0]["destination"] == "dag_run", plugins


def test_a_signed_in_user_gets_the_report_never_cached_and_locked_down(served):
    for answer in (served["cookie"], served["bearer_folder"]):  # the UI's session cookie, or an API token
        assert answer["status"] == 200, answer
        assert answer["body"] == PAGE
        headers = answer["headers"]
        assert headers["content-type"] == "text/html; charset=utf-8"
        assert headers["cache-control"] == "no-store"
        csp = headers["content-security-policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'self'" in csp and "script-src" not in csp
        assert headers["x-content-type-options"] == "nosniff" and headers["referrer-policy"] == "no-referrer"


def test_without_a_session_nothing_is_served(served):
    assert served["anonymous"]["status"] == 401, served["anonymous"]
    assert "run report" not in served["anonymous"]["body"]
    assert served["anonymous"]["headers"]["cache-control"] == "no-store"
    assert served["forged"]["status"] in (401, 403), served["forged"]
    assert "run report" not in served["forged"]["body"]
    # a person following the mail's link is sent to sign in, and back to the report
    browser = served["anonymous_browser"]
    assert browser["status"] == 303, browser
    assert browser["headers"]["location"].startswith("/auth/login?next=")
    assert "rostering%2Freports%2Fstmath_oneroster" in browser["headers"]["location"]
    assert "run report" not in browser["body"]


def test_an_unknown_run_is_404(served):
    assert served["unknown_run"]["status"] == 404, served["unknown_run"]
    assert served["no_report"]["status"] == 404, served["no_report"]
    assert served["unknown_run"]["headers"]["cache-control"] == "no-store"


def test_traversal_is_refused(served):
    answers = {name: answer for name, answer in served.items() if name.startswith("traversal_")}
    assert len(answers) == 8
    for name, answer in answers.items():
        assert "NOT FOR THE WEB" not in answer["body"] and "sis_key" not in answer["body"], name
        if name == "traversal_3":  # ".../reports/../../secret.txt": the client asks for /secret.txt (the UI's page)
            assert "rostering" not in answer["body"], answer
            continue
        assert answer["status"] in (400, 404), (name, answer)
