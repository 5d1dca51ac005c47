"""The docker-compose topology, natively: real Airflow processes on this machine, no containers.

    metadata DB  -> a dedicated database on the local PostgreSQL service (created here, dropped on stop)
    Celery broker -> the local Redis, a dedicated db number (flushed on start and stop)
    airflow scheduler | dag-processor | api-server | triggerer | celery worker -- one process group each

Every process gets the same environment (as the compose file's ``x-airflow-common``): CeleryExecutor, the same
fernet key and JWT secret, the same ``ROSTERING_WORK_DIR`` / ``ROSTERING_STATE_DIR`` (the "shared volume") and the
``AIRFLOW_CONN_*`` connections. The Celery worker runs the tasks in its own processes: nothing is shared with the
scheduler but the database, the broker and the folders.

Auth: the FAB auth manager (the compose file's choice); ``airflow users create`` makes the admin (like
airflow-init), and the REST API takes a JWT from ``POST /auth/token``.

Used by tests/test_e2e_celery.py and tests/test_ui_browser.py; ``python -m tests.airflow_cluster`` is not a thing --
the tests own the lifecycle. On failure, :meth:`AirflowCluster.diagnostics` returns the tail of every process log.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
REDIS_URL = os.environ.get("ROSTERING_TEST_REDIS_URL", "redis://127.0.0.1:6379")
REDIS_DB = int(os.environ.get("ROSTERING_TEST_REDIS_DB", "11"))  # dedicated: never the default db 0
FAB = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
SERVICES = ("scheduler", "dag-processor", "triggerer", "api-server", "celery-worker")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pg_admin_url() -> str:
    return os.environ.get("ROSTERING_TEST_PG_URL", f"postgresql+psycopg2://{PG_USER}@{PG_HOST}:{PG_PORT}/postgres")


def _pg(statement: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(pg_admin_url(), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(statement))
    finally:
        engine.dispose()


def _db_url(name: str, driver: str = "postgresql+psycopg2") -> str:
    import sqlalchemy as sa

    return sa.engine.make_url(pg_admin_url()).set(drivername=driver, database=name).render_as_string(
        hide_password=False)


class AirflowCluster:
    """Start with :meth:`start`, stop with :meth:`stop` (always: processes, database, broker db, AIRFLOW_HOME)."""

    def __init__(self, *, extra_env: dict[str, str] | None = None, name: str = "e2e") -> None:
        self.token = uuid.uuid4().hex[:8]
        self.db_name = f"airflow_{name}_{self.token}"
        self.home = Path(tempfile.mkdtemp(prefix=f"airflow-{name}-"))
        self.logs = self.home / "process-logs"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin_user = "admin"
        self.admin_password = secrets.token_urlsafe(12)
        self.extra_env = dict(extra_env or {})
        self.processes: dict[str, subprocess.Popen] = {}
        self._db_created = False
        self._jwt: str | None = None
        self.timings: dict[str, float] = {}
        from cryptography.fernet import Fernet

        # one fernet key and one JWT secret for every process, as the compose file's .env gives them
        self._fernet_key = Fernet.generate_key().decode()
        self._jwt_secret = secrets.token_urlsafe(32)

    # -- environment ---------------------------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__") and k != "AIRFLOW_HOME"}
        sql = _db_url(self.db_name)
        env.update({
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),  # as the compose file: the run report view
            "AIRFLOW__CORE__AUTH_MANAGER": FAB,
            "AIRFLOW__CORE__FERNET_KEY": self._fernet_key,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__API_AUTH__JWT_SECRET": self._jwt_secret,
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__BASE_URL": self.url,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sql,
            "AIRFLOW__CELERY__BROKER_URL": f"{REDIS_URL}/{REDIS_DB}",
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + _db_url(self.db_name, "postgresql"),
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
            "PYTHONUNBUFFERED": "1",
        })
        env.update(self.extra_env)
        return env

    # -- lifecycle -----------------------------------------------------------------------------------------------

    def start(self, *, timeout: float = 180) -> "AirflowCluster":
        started = time.monotonic()
        self.logs.mkdir(parents=True, exist_ok=True)
        _flush_redis_db()
        _pg(f'CREATE DATABASE "{self.db_name}"')
        self._db_created = True
        self._run(["db", "migrate"], "migrate", timeout=300)
        self._run(["users", "create", "--username", self.admin_user, "--password", self.admin_password,
                   "--role", "Admin", "--email", "admin@example.org", "--firstname", "Rostering",
                   "--lastname", "Admin"], "users-create", timeout=120)
        self.timings["init_s"] = time.monotonic() - started
        commands = {
            "scheduler": ["scheduler"],
            "dag-processor": ["dag-processor"],
            "triggerer": ["triggerer"],
            "api-server": ["api-server", "--port", str(self.port), "--host", "127.0.0.1"],
            "celery-worker": ["celery", "worker", "--concurrency", "2"],
        }
        for name, args in commands.items():
            log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
            self.processes[name] = subprocess.Popen(
                [AIRFLOW, *args], env=self.env(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, cwd=self.home,
            )
        self.wait_healthy(timeout=timeout)
        self.timings["start_s"] = time.monotonic() - started
        return self

    def _run(self, args: list[str], name: str, *, timeout: float) -> None:
        with open(self.logs / f"{name}.log", "wb") as log:
            result = subprocess.run([AIRFLOW, *args], env=self.env(), stdout=log, stderr=subprocess.STDOUT,
                                    timeout=timeout, cwd=self.home)
        if result.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args[:2])} failed ({result.returncode}):\n"
                               + _tail(self.logs / f"{name}.log", 60))

    def wait_healthy(self, *, timeout: float) -> dict[str, Any]:
        """api-server up, metadatabase, scheduler, triggerer and dag processor healthy (``/api/v2/monitor/health``)."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                with urllib.request.urlopen(f"{self.url}/api/v2/monitor/health", timeout=5) as response:
                    last = json.loads(response.read())
                if all(last.get(part, {}).get("status") == "healthy"
                       for part in ("metadatabase", "scheduler", "triggerer", "dag_processor")):
                    return last
            except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError) as error:
                last = repr(error)
            time.sleep(2)
        raise TimeoutError(f"cluster not healthy after {timeout:.0f}s: {last}\n{self.diagnostics()}")

    def check_alive(self) -> None:
        dead = {name: p.returncode for name, p in self.processes.items() if p.poll() is not None}
        if dead:
            raise RuntimeError(f"Airflow process(es) exited: {dead}\n{self.diagnostics()}")

    def stop(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 30
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for process in self.processes.values():  # the whole group: task supervisors, gunicorn/uvicorn children
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait(timeout=10)
        if self._db_created:
            _pg(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
            self._db_created = False
        _flush_redis_db()
        shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> "AirflowCluster":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def diagnostics(self, lines: int = 40) -> str:
        parts = []
        for path in sorted(self.logs.glob("*.log")):
            parts.append(f"----- {path.name} (last {lines} lines) -----\n{_tail(path, lines)}")
        for path in sorted((self.home / "logs").rglob("*.log"))[-6:]:  # the newest task logs
            parts.append(f"----- task log {path.relative_to(self.home)} -----\n{_tail(path, 25)}")
        return "\n".join(parts)

    # -- REST API ------------------------------------------------------------------------------------------------

    def jwt(self) -> str:
        if self._jwt is None:
            response = self.request("POST", "/auth/token", {"username": self.admin_user,
                                                            "password": self.admin_password}, auth=False)
            self._jwt = response["access_token"]
        return self._jwt

    def request(self, method: str, path: str, body: Any = None, *, auth: bool = True) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if auth:
            req.add_header("Authorization", f"Bearer {self.jwt()}")
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                raw = response.read()
        except urllib.error.HTTPError as error:
            raise RuntimeError(f"{method} {path} -> {error.code}: {error.read()[:500]!r}") from None
        return json.loads(raw) if raw else None

    def wait_for_dags(self, dag_ids: set[str], *, timeout: float = 240) -> dict[str, Any]:
        """Until the dag-processor has parsed every DAG (and reports no import errors)."""
        deadline = time.monotonic() + timeout
        seen: set[str] = set()
        while time.monotonic() < deadline:
            self.check_alive()
            dags = self.request("GET", "/api/v2/dags?limit=100")
            seen = {d["dag_id"] for d in dags["dags"]}
            if dag_ids <= seen:
                return {d["dag_id"]: d for d in dags["dags"]}
            time.sleep(3)
        raise TimeoutError(f"DAGs not parsed after {timeout:.0f}s: missing {sorted(dag_ids - seen)}; import errors: "
                           f"{self.request('GET', '/api/v2/importErrors')}\n{self.diagnostics()}")

    def dag_runs(self, dag_id: str) -> list[dict[str, Any]]:
        """The DAG's runs, oldest first (run_type: scheduled, manual, asset_triggered ...)."""
        runs = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns?limit=100")["dag_runs"]
        return sorted(runs, key=lambda r: (r.get("run_after") or "", r["dag_run_id"]))

    def wait_for_runs(self, dag_id: str, *, run_type: str, count: int = 1, timeout: float = 300) -> list[dict]:
        """Until the scheduler has created ``count`` runs of ``run_type`` by itself (cron, Asset events)."""
        deadline = time.monotonic() + timeout
        runs: list[dict] = []
        while time.monotonic() < deadline:
            self.check_alive()
            runs = [r for r in self.dag_runs(dag_id) if r["run_type"] == run_type]
            if len(runs) >= count:
                return runs
            time.sleep(3)
        raise TimeoutError(f"{dag_id}: {len(runs)} {run_type} run(s) after {timeout:.0f}s, expected {count}; "
                           f"runs: {[(r['run_type'], r['state']) for r in self.dag_runs(dag_id)]}\n"
                           f"{self.diagnostics()}")

    def asset_events(self, source_dag_id: str) -> list[dict[str, Any]]:
        events = self.request("GET", "/api/v2/assets/events?limit=100")["asset_events"]
        return [e for e in events if e.get("source_dag_id") == source_dag_id]

    def returned(self, dag_id: str, run_id: str, task_id: str) -> Any:
        """A task's return value (XCom), deserialized."""
        from urllib.parse import quote

        value = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/"
                                    f"{task_id}/xcomEntries/return_value?deserialize=true")["value"]
        return json.loads(value) if isinstance(value, str) else value

    def unpause(self, dag_id: str) -> None:
        self.request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        run = self.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf or {}})
        return run["dag_run_id"]

    def run_state(self, dag_id: str, run_id: str) -> str:
        from urllib.parse import quote

        return self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}")["state"]

    def wait_for_run(self, dag_id: str, run_id: str, *, timeout: float = 600) -> str:
        deadline = time.monotonic() + timeout
        state = "?"
        while time.monotonic() < deadline:
            self.check_alive()
            state = self.run_state(dag_id, run_id)
            if state in {"success", "failed"}:
                return state
            time.sleep(3)
        raise TimeoutError(f"{dag_id} {run_id} still {state} after {timeout:.0f}s\n{self.diagnostics()}")

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        from urllib.parse import quote

        data = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances")
        return {ti["task_id"]: ti["state"] for ti in data["task_instances"]}

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        from urllib.parse import quote

        return self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances")[
            "task_instances"]


def _flush_redis_db() -> None:
    import redis

    client = redis.Redis.from_url(f"{REDIS_URL}/{REDIS_DB}", socket_timeout=5)
    try:
        client.flushdb()
    finally:
        client.close()


def _tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as error:
        return f"({error})"


class RosteringEndpoints:
    """What the pipeline talks to, on loopback: the SIS (demo district in a PostgreSQL database), the vendors' SFTP
    server (host key pinned in the connections), the CERS import API stand-in and an SMTP server that keeps mail.

    :meth:`env` gives the ``AIRFLOW_CONN_*`` connections and the shared work/state folders for every Airflow process.
    """

    def __init__(self, root: Path, *, students: int = 400, seed: int = 7) -> None:
        self.root = root
        self.students = students
        self.seed = seed
        self.sis_db = f"rostering_e2e_sis_{uuid.uuid4().hex[:8]}"
        self.sftp = self.cers = self.smtp = None
        self.passwords: dict[str, str] = {}
        self.cers_credentials: dict[str, str] = {}
        self._sis_created = False

    def start(self) -> "RosteringEndpoints":
        from rostering.devservers.mail_catcher import MailCatcher

        from rostering.devservers.cers_server import LocalCersServer
        from rostering.devservers.demo import vendor_profiles
        from rostering.devservers.sftp_server import LocalSFTPServer
        from rostering.sis.demo import generate_district, load_district

        _pg(f'CREATE DATABASE "{self.sis_db}"')
        self._sis_created = True
        self.district = generate_district(self.students, seed=self.seed)
        load_district(self.district, _db_url(self.sis_db))
        self.profiles = vendor_profiles()
        self.passwords = {p.name: secrets.token_urlsafe(16) for p in self.profiles if p.delivery.kind == "sftp"}
        self.sftp = LocalSFTPServer(root=self.root / "sftp", users=self.passwords).start()
        self.cers_credentials = {"client_id": "rostering-e2e", "client_secret": secrets.token_urlsafe(24),
                                 "username": "e2e-system-user", "password": secrets.token_urlsafe(16)}
        # each import is PROCESSED at its second status read: the CERS DAG's confirm_delivery sensor finds it
        # ACCEPTED at its first poke and is rescheduled (reschedule mode on the Celery worker)
        self.cers = LocalCersServer(client_id=self.cers_credentials["client_id"],
                                    client_secret=self.cers_credentials["client_secret"],
                                    users={self.cers_credentials["username"]: self.cers_credentials["password"]},
                                    process_after_polls=2).start()
        self.smtp = MailCatcher().__enter__()
        return self

    def stop(self) -> None:
        for server in (self.sftp, self.cers):
            if server is not None:
                server.stop()
        if self.smtp is not None:
            self.smtp.__exit__(None, None, None)
        if self._sis_created:
            _pg(f'DROP DATABASE IF EXISTS "{self.sis_db}" WITH (FORCE)')
            self._sis_created = False

    def env(self) -> dict[str, str]:
        import sqlalchemy as sa

        pg = sa.engine.make_url(pg_admin_url())
        env = {
            "ROSTERING_WORK_DIR": str(self.root / "work"),    # the compose file's shared volume
            "ROSTERING_STATE_DIR": str(self.root / "state"),
            "ROSTERING_SNAPSHOT_DIR": str(self.root / "snapshots"),  # the snapshot store, on the same volume
            "ROSTERING_SIS_SOURCE": "sql_model",  # config/sis.yaml's default, whatever the shell says
            "AIRFLOW_CONN_SIS_DB": json.dumps({"conn_type": "postgres", "host": pg.host or PG_HOST,
                                               "port": pg.port or PG_PORT, "login": pg.username or PG_USER,
                                               "password": pg.password or "", "schema": self.sis_db}),
            "AIRFLOW_CONN_SMTP_DEFAULT": self.smtp.connection_json(),
        }
        for profile in self.profiles:
            if profile.delivery.kind == "sftp":
                env[f"AIRFLOW_CONN_{profile.delivery.conn_id.upper()}"] = json.dumps({
                    "conn_type": "sftp", "host": self.sftp.host, "port": self.sftp.port, "login": profile.name,
                    "password": self.passwords[profile.name], "extra": {"host_key": self.sftp.host_key_line}})
            if profile.delivery.kind == "cers_api":
                env[f"AIRFLOW_CONN_{profile.delivery.conn_id.upper()}"] = json.dumps({
                    "conn_type": "http", "host": self.cers.url, "login": self.cers_credentials["username"],
                    "password": self.cers_credentials["password"],
                    "extra": {"token_url": self.cers.token_path, "client_id": self.cers_credentials["client_id"],
                              "client_secret": self.cers_credentials["client_secret"],
                              "verify": str(self.cers.ca_path)}})
            staff_password = profile.options.get("staff_password") or {}
            if staff_password.get("mode") == "connection":
                env[f"AIRFLOW_CONN_{staff_password['conn_id'].upper()}"] = json.dumps(
                    {"conn_type": "generic", "password": secrets.token_urlsafe(12)})
        return env


# -- pytest fixtures (imported by tests/conftest.py): one cluster per session, for the e2e and the browser tests -----

try:
    import pytest
except ImportError:  # pragma: no cover
    pytest = None

if pytest is not None:
    @pytest.fixture(scope="session")
    def e2e_endpoints(tmp_path_factory, postgres_url):  # postgres_url: fails loudly under CI when PostgreSQL is down
        _redis_or_fail()
        ends = RosteringEndpoints(tmp_path_factory.mktemp("e2e")).start()
        yield ends
        ends.stop()

    @pytest.fixture(scope="session")
    def e2e_cluster(e2e_endpoints):
        """The compose topology on this machine, scheduling as in production (the scheduler creates the cron and
        Asset-triggered runs). Every DAG starts paused: nothing runs until a test unpauses or triggers it -- and
        unpausing a cron DAG (catchup=False) starts its latest scheduled run, which is how the e2e test gets the
        night's ``sis_snapshot`` run."""
        started = time.monotonic()
        cluster = AirflowCluster(name="e2e", extra_env=e2e_endpoints.env())
        try:
            cluster.start()
        except BaseException:
            cluster.stop()
            raise
        print(f"\n[e2e] Airflow cluster up in {time.monotonic() - started:.0f}s "
              f"(db migrate + admin {cluster.timings['init_s']:.0f}s) at {cluster.url}")
        yield cluster
        cluster.stop()


def _redis_or_fail() -> None:
    import redis
    from conftest import _service_unavailable

    try:
        redis.Redis.from_url(f"{REDIS_URL}/{REDIS_DB}", socket_timeout=3).ping()
    except Exception as error:  # noqa: BLE001
        _service_unavailable("Redis", error)
