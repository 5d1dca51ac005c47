"""The Airflow UI in a real browser: Debian's headless Chromium, driven by Selenium through /usr/bin/chromedriver.

Against the api-server of the e2e cluster (tests/airflow_cluster.py, FAB login as in docker-compose.yaml): log in,
see the four vendor DAGs (and the operations DAG) with no import errors, open ST Math's trigger form and see its
params, trigger a dry run from the form, see the run succeed in the UI, and open its report from the run's "Run report"
tab and at its own address (never without a session). Screenshots are kept as test artifacts in var/artifacts/
(ui-*.png; the paths are printed).

Chromium: installed with apt-get when missing and running as root; otherwise skipped loudly -- but under CI=true a
missing browser FAILS the test.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.postgres, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "var" / "artifacts"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1400,1000"]
VENDOR_DAGS = ["stmath_oneroster", "literably_oneroster", "cers_student_groups", "derivita_subgroups"]


def _no_browser(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"headless Chromium is required under CI=true: {reason}", pytrace=False)
    pytest.skip(f"!!! SKIPPED: no headless Chromium ({reason}). As root: apt-get install chromium chromium-driver")


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's chromium + chromium-driver; installed here when missing (root), as CI's fresh machine needs."""
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            _no_browser("not installed, and not root to apt-get install it")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        for cmd in (["apt-get", "update", "-q"],
                    ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium", "chromium-driver"]):
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
            if done.returncode != 0:
                _no_browser(f"{' '.join(cmd[:2])} failed: {done.stderr[-500:]}")
    version = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, timeout=60).stdout.strip()
    return version


@pytest.fixture()
def browser(chromium):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def shot(driver, name: str, *, full_page: bool = False, min_height: int = 1000) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"ui-{name}.png"
    if full_page:  # grow the window to the document (or min_height: the UI scrolls inside), take it, shrink back
        height = driver.execute_script("return Math.max(document.body.scrollHeight, "
                                       "document.documentElement.scrollHeight)")
        driver.set_window_size(1400, min(max(min_height, height + 200), 4000))
        time.sleep(0.5)
    driver.save_screenshot(str(path))
    if full_page:
        driver.set_window_size(1400, 1000)
    print(f"[ui] screenshot: {path}")
    return path


def wait_until(driver, condition, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            result = condition(driver)
            if result:
                return result
        except Exception as error:  # noqa: BLE001 - the page is still rendering
            last_error = error
        time.sleep(0.5)
    shot(driver, "timeout")
    raise AssertionError(f"timed out waiting for {what} ({last_error!r}); see var/artifacts/ui-timeout.png")


def body_text(driver) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.TAG_NAME, "body").text


def test_operator_logs_in_sees_the_dags_and_triggers_a_dry_run(browser, e2e_cluster, chromium):
    from selenium.webdriver.common.by import By

    cluster, driver = e2e_cluster, browser
    started = time.monotonic()
    print(f"\n[ui] {chromium} against {cluster.url}")
    cluster.wait_for_dags({*VENDOR_DAGS, "rostering_operations"})

    # log in (the FAB auth manager's form, as in the compose deployment)
    driver.get(cluster.url + "/")
    wait_until(driver, lambda d: d.find_element(By.ID, "username"), "the login form")
    driver.find_element(By.ID, "username").send_keys(cluster.admin_user)
    driver.find_element(By.ID, "password").send_keys(cluster.admin_password)
    driver.find_element(By.CSS_SELECTOR, "input[type=submit],button[type=submit]").click()
    wait_until(driver, lambda d: "/auth/login" not in d.current_url and "Dags" in body_text(d), "the home page")

    # the DAG list: every vendor DAG, no import errors
    driver.get(cluster.url + "/dags")
    wait_until(driver, lambda d: all(dag in body_text(d) for dag in VENDOR_DAGS), "the four vendor DAGs")
    page = body_text(driver)
    dag_files = len(list((REPO / "dags").glob("*.py")))  # one DAG per file (the operations and deadline DAGs too)
    assert f"{dag_files} Dags" in page and "rostering_operations" in page
    assert "Import Error" not in page  # the UI shows a "Dag Import Errors" button when any file fails to parse
    assert cluster.request("GET", "/api/v2/importErrors")["total_entries"] == 0
    shot(driver, "dags", full_page=True, min_height=1300)

    # the trigger form of ST Math, with its params
    driver.get(cluster.url + "/dags/stmath_oneroster")
    wait_until(driver, lambda d: d.find_element(By.CSS_SELECTOR, "button[aria-label='Trigger Dag']"),
               "the Trigger button").click()
    wait_until(driver, lambda d: d.find_element(By.NAME, "element_dry_run"), "the trigger form")
    form = body_text(driver)
    for label in ("Trigger Dag - stmath_oneroster", "As-of date", "Schools", "Dry run", "Force",
                  "Approve held changes (reason)", "Build and validate, keep the files for download, deliver nothing."):
        assert label in form, f"{label!r} not in the trigger form"
    for name in ("element_as_of_date", "element_schools", "element_force", "element_approve_changes_reason"):
        assert driver.find_elements(By.NAME, name), name
    shot(driver, "trigger-form")
    dry_run = driver.find_element(By.NAME, "element_dry_run")
    driver.execute_script("arguments[0].click()", dry_run)  # the switch's input is visually hidden
    wait_until(driver, lambda d: d.find_element(By.NAME, "element_dry_run").is_selected(), "dry run switched on")
    trigger = [b for b in driver.find_elements(By.XPATH, "//div[@role='dialog']//button")
               if b.text.strip() == "Trigger"]
    assert trigger, "no Trigger button in the form"
    # Optional params must not block the form (as-of date, schools, approval reason all left empty)
    assert trigger[-1].is_enabled(), "the Trigger button is disabled with the optional fields left empty"
    driver.execute_script("arguments[0].scrollIntoView()", trigger[-1])
    shot(driver, "trigger-dry-run")
    trigger[-1].click()

    # the UI opens the new run; it runs on the Celery worker and succeeds
    wait_until(driver, lambda d: "/dags/stmath_oneroster/runs/" in d.current_url, "the new run's page")
    run_id = driver.current_url.split("/runs/", 1)[1].split("/")[0]
    from urllib.parse import unquote

    run_id = unquote(run_id)
    run = cluster.request("GET", f"/api/v2/dags/stmath_oneroster/dagRuns/{quote(run_id, safe='')}")
    assert run["conf"].get("dry_run") is True, run["conf"]
    try:
        state = cluster.wait_for_run("stmath_oneroster", run_id, timeout=420)
    except TimeoutError as error:
        shot(driver, "run-timeout")
        raise AssertionError(str(error)) from None
    assert state == "success", (cluster.task_states("stmath_oneroster", run_id), cluster.diagnostics())
    driver.get(f"{cluster.url}/dags/stmath_oneroster/runs/{quote(run_id, safe='')}")
    # the run's badge and six tasks say Success; deliver is Skipped (a dry run delivers nothing)
    wait_until(driver, lambda d: body_text(d).count("Success") >= 7 and "Skipped" in body_text(d),
               "the run and its tasks finished", 90)
    page = body_text(driver)
    assert "7 Task Instances" in page and "Failed" not in page and "Up For Retry" not in page
    shot(driver, "run-success")

    # the run summary (the summary task's XCom) says: dry run, not delivered, and where the HTML report is
    summary = cluster.request(
        "GET", f"/api/v2/dags/stmath_oneroster/dagRuns/{quote(run_id, safe='')}/taskInstances/summary/xcomEntries/"
        "return_value?deserialize=true")["value"]
    summary = json.loads(summary) if isinstance(summary, str) else summary
    assert summary["delivered"] is False and summary["not_delivered_because"].startswith("dry run")
    report = Path(summary["report"])
    assert report.exists()

    # the report from the UI: the run's "Run report" tab (plugins/rostering_reports_plugin.py) shows it in a frame
    driver.get(f"{cluster.url}/dags/stmath_oneroster/runs/{quote(run_id, safe='')}")
    wait_until(driver, lambda d: [e for e in d.find_elements(By.XPATH, "//*[normalize-space(text())='Run report']")
                                  if e.is_displayed()], "the Run report tab")[0].click()
    wait_until(driver, lambda d: "/plugin/run-report" in d.current_url, "the Run report tab's page")
    frame = wait_until(driver, lambda d: d.find_element(By.CSS_SELECTOR, "iframe[title='Run report']"), "its frame")
    driver.switch_to.frame(frame)
    try:
        wait_until(driver, lambda d: "run report" in body_text(d), "the run report in the UI")
        page = body_text(driver)
    finally:
        driver.switch_to.default_content()
    assert "Not delivered" in page and "Validation passed" in page and "users.csv" in page
    shot(driver, "run-report-tab", full_page=True)

    # its own address (the alert mail's link), for the signed-in browser only
    address = f"/rostering/reports/stmath_oneroster/{quote(run_id, safe='')}"
    driver.get(cluster.url + address)
    wait_until(driver, lambda d: "run report" in body_text(d), "the HTML run report at its address")
    page = body_text(driver)
    assert "Not delivered" in page and "Validation passed" in page and "users.csv" in page
    shot(driver, "run-report", full_page=True)
    _no_session_no_report(cluster.url + address)
    print(f"[ui] browser test took {time.monotonic() - started:.0f}s")


def _no_session_no_report(url: str) -> None:
    """Without the UI's session: 401 for a program, the login page (and back) for a browser; never the page."""
    import urllib.error
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    for accept, status in (("application/json", 401), ("text/html", 303)):
        with pytest.raises(urllib.error.HTTPError) as refused:
            opener.open(urllib.request.Request(url, headers={"Accept": accept}), timeout=30)
        assert refused.value.code == status, (accept, refused.value.code)
        assert refused.value.headers["Cache-Control"] == "no-store"
        assert b"run report" not in refused.value.read()
        if status == 303:
            assert "/auth/login/?next=" in refused.value.headers["Location"]
