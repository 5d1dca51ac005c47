"""docker-compose.yaml, Dockerfile and .env.example are checked by reading them: CI has no Docker engine.

What is checked is what a deployment needs to work and to be safe: the official Airflow 3 topology on the
CeleryExecutor, the commands, health checks, start order, one shared volume for the run and state folders on every
Airflow service, secrets only from .env, and every connection the vendor profiles use -- with pinned SFTP host keys
and no secret values committed. (The same topology is started natively by tests/test_e2e_celery.py.)
"""
from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
AIRFLOW_SERVICES = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
    "airflow-worker": "celery worker",
}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yaml").read_text())  # resolves the x-airflow-common anchors


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    values = {}
    for line in (REPO / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = shlex.split(value)[0] if value.strip() else ""
    return values


def command(service: dict) -> str:
    cmd = service.get("command", "")
    return " ".join(cmd) if isinstance(cmd, list) else cmd


def test_the_official_topology_is_there(compose):
    services = compose["services"]
    assert {"postgres", "redis", "airflow-init", "flower", *AIRFLOW_SERVICES} <= set(services)
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["redis"]["image"].startswith("redis:7.2")
    for name, expected in AIRFLOW_SERVICES.items():
        assert command(services[name]) == expected, name
    assert command(services["flower"]) == "celery flower" and services["flower"]["profiles"] == ["flower"]
    assert "8080:8080" in services["airflow-apiserver"]["ports"]
    init = command(services["airflow-init"])
    assert "airflow db migrate" in init and "airflow users create" in init and "--role Admin" in init


def test_every_airflow_service_is_on_celery_postgres_and_redis_with_secrets_from_env(compose):
    for name in [*AIRFLOW_SERVICES, "airflow-init", "flower"]:
        env = compose["services"][name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://airflow:"), name
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("@postgres/airflow"), name
        assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://"), name
        assert re.fullmatch(r"redis://:?@?redis:6379/\d+", env["AIRFLOW__CELERY__BROKER_URL"]), name
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/", name
        assert env["AIRFLOW__CORE__AUTH_MANAGER"].endswith("FabAuthManager"), name
        # secrets only by reference to .env, never a literal (the compose file is committed)
        for secret in ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET"):
            assert re.fullmatch(rf"\$\{{{secret}:\?[^}}]+\}}", env[secret]), (name, secret)
        assert "${POSTGRES_PASSWORD:?" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], name
        assert compose["services"][name]["env_file"] == [{"path": ".env", "required": True}], name
    assert "${POSTGRES_PASSWORD:?" in compose["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"]


def test_work_and_state_are_on_one_volume_that_every_airflow_service_mounts(compose):
    named_volumes = set(compose["volumes"])
    for name in [*AIRFLOW_SERVICES, "airflow-init"]:
        service = compose["services"][name]
        env = service["environment"]
        mounts = {target: source for source, target in (v.split(":")[:2] for v in service["volumes"])}
        for variable in ("ROSTERING_WORK_DIR", "ROSTERING_STATE_DIR"):
            folder = env[variable]
            mount = next((t for t in mounts if folder == t or folder.startswith(t.rstrip("/") + "/")), None)
            assert mount, (name, variable, "not on a volume")
            assert mounts[mount] in named_volumes and mounts[mount] == "rostering-var", (name, variable)
        assert "/opt/airflow/logs" in mounts, name


def test_health_checks_and_start_order(compose):
    services = compose["services"]
    for name in ["postgres", "redis", "flower", *AIRFLOW_SERVICES]:
        test = services[name]["healthcheck"]["test"]
        assert test[0] in {"CMD", "CMD-SHELL"} and len(test) > 1, name
    assert "/api/v2/monitor/health" in " ".join(services["airflow-apiserver"]["healthcheck"]["test"])
    assert "DagProcessorJob" in " ".join(services["airflow-dag-processor"]["healthcheck"]["test"])
    assert "TriggererJob" in " ".join(services["airflow-triggerer"]["healthcheck"]["test"])
    assert "inspect ping" in " ".join(services["airflow-worker"]["healthcheck"]["test"])
    for name in [*AIRFLOW_SERVICES, "flower"]:
        depends = services[name]["depends_on"]
        assert depends["airflow-init"] == {"condition": "service_completed_successfully"}, name
        assert depends["postgres"]["condition"] == depends["redis"]["condition"] == "service_healthy", name


def test_the_dockerfile_builds_from_the_lock_and_bakes_in_the_project(compose):
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11", dockerfile, re.M)
    assert "-r requirements.txt" in dockerfile and "--no-deps ." in dockerfile  # the pinned lock, then the package
    for folder in ("src", "include", "config", "dags", "plugins"):
        assert re.search(rf"^COPY {folder} \./{folder}$", dockerfile, re.M), folder
        assert (REPO / folder).is_dir()
    assert re.search(r"^USER 50000$", dockerfile, re.M)  # never root at run time
    env = compose["services"]["airflow-worker"]["environment"]
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/rostering/dags" and env["ROSTERING_HOME"] == "/opt/rostering"
    assert "WORKDIR /opt/rostering" in dockerfile  # where the COPYs land
    assert compose["services"]["airflow-worker"]["user"] == "50000:0"


def needed_connections() -> dict[str, str]:
    """Every connection id the deployment uses -> its kind: the SIS source's (config/sis.yaml, the one the nightly
    snapshot reads) and the vendor profiles'."""
    from rostering.sis.config import load_sis_config

    sis_yaml = REPO / "config" / "sis.yaml"  # its own source:, whatever ROSTERING_SIS_SOURCE says in this shell
    needed = {load_sis_config(sis_yaml, source=yaml.safe_load(sis_yaml.read_text())["source"]).conn_id: "sis"}
    for path in sorted((REPO / "config" / "vendors").glob("*.yaml")):
        profile = yaml.safe_load(path.read_text())
        assert "sis_conn_id" not in profile, f"{path.name}: the SIS connection is config/sis.yaml's"
        needed[profile["delivery"]["conn_id"]] = profile["delivery"]["kind"]
        fmt = profile.get(profile["format"]) or {}
        staff = fmt.get("staff_password") or {}
        if staff.get("mode") == "connection":
            needed[staff["conn_id"]] = "secret"
        if (profile.get("notify") or {}).get("email"):
            needed[profile["notify"].get("smtp_conn_id", "smtp_default")] = "smtp"
    return needed


def test_env_example_has_every_connection_pinned_and_nothing_secret(env_example):
    needed = needed_connections()
    assert {"sis_db", "stmath_sftp", "literably_sftp", "cers_api", "smtp_default"} <= set(needed)
    for conn_id, kind in needed.items():
        key = f"AIRFLOW_CONN_{conn_id.upper()}"
        assert key in env_example, f"{key} missing from .env.example"
        conn = json.loads(env_example[key])
        assert conn.get("password", "") == "", f"{key}: a password is committed"
        extra = conn.get("extra") or {}
        if kind == "sftp":
            assert conn["conn_type"] == "sftp"
            assert extra["host_key"].startswith("ssh-ed25519 "), key  # pinned, never no_host_key_check
            assert "no_host_key_check" not in extra, key
        if kind == "cers_api":
            assert conn["conn_type"] == "http" and extra["client_secret"] == "" and extra["token_url"], key
        if kind == "smtp":
            assert conn["conn_type"] == "smtp" and extra["from_email"], key
    for secret in ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "POSTGRES_PASSWORD",
                   "_AIRFLOW_WWW_USER_PASSWORD"):
        assert env_example.get(secret, None) == "", f"{secret} must be in .env.example and empty"


def test_env_is_never_committed():
    ignored = (REPO / ".gitignore").read_text().splitlines()
    assert ".env" in ignored
