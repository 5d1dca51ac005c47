"""The demo: a generated district, local vendor endpoints, and the real DAGs run through Airflow -- the nightly
``sis_snapshot`` first, then every vendor DAG, which builds from that snapshot.

    python -m rostering.devservers.demo run [--students N] [--sis SOURCE] [--dag DAG_ID ...]   # `make demo [SIS=..]`
    python -m rostering.devservers.demo airflow [--sis SOURCE]                                # `make airflow`: the UI

``--sis`` (default: config/sis.yaml's ``source``, or ``ROSTERING_SIS_SOURCE``): ``sql_model`` reads the district from
the demo SQLite file; ``powerschool`` / ``aeries`` serve the same generated district through the local API stand-in
(rostering.devservers.sis_standins) and the snapshot reads it over HTTP.

Connections reach Airflow the way production secrets do, as ``AIRFLOW_CONN_*`` variables: the SIS connection points
at the demo SQLite file (or the stand-in, with credentials generated for this run); each SFTP vendor connection at the
local server, with its host key pinned and a password generated for this run (never printed); the CERS API
connection at the local CERS import stand-in (rostering.devservers.cers_server), with a client secret and
system-user password generated for this run; ``smtp_default`` at a local mail catcher
(rostering.devservers.mail_catcher), so the alert mails go through the real path and the closing summary lists them.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

from rostering.csvio import sha256_of
from rostering.devservers.cers_server import LocalCersServer
from rostering.devservers.mail_catcher import MailCatcher
from rostering.devservers.sftp_server import LocalSFTPServer
from rostering.paths import config_dir, project_root, work_dir
from rostering.vendors.profile import load_profile


SNAPSHOT_DAG = "sis_snapshot"


def demo_dir() -> Path:
    return project_root() / "var" / "demo"


def vendor_profiles():
    return [load_profile(p.stem) for p in sorted((config_dir() / "vendors").glob("*.yaml"))]


def ensure_district(students: int, regenerate: bool) -> Path:
    from rostering.sis.demo import generate_district, load_district

    path = demo_dir() / "sis.sqlite"
    schema = (project_root() / "include" / "sql" / "schema" / "sis_schema.sql").read_bytes()
    marker = demo_dir() / "sis.schema.sha256"  # a district made for an older schema is made again
    current = hashlib.sha256(schema).hexdigest() + f" {students}"
    if regenerate or not path.exists() or not marker.exists() or marker.read_text() != current:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        load_district(generate_district(students), f"sqlite:///{path}")
        marker.write_text(current)
        print(f"demo district: {students:,} students -> {path}")
    return path


def airflow_env(sis_path: Path, sftp: LocalSFTPServer, passwords: dict[str, str],
                cers: tuple[LocalCersServer, dict[str, str]] | None = None,
                sis_api: dict[str, str] | None = None, mail: MailCatcher | None = None) -> dict[str, str]:
    """``sis_api``: for an API source, ``AIRFLOW_CONN_*`` variables pointing it at its stand-in, plus
    ``ROSTERING_SIS_SOURCE`` (start_sis_standin). ``mail``: every SMTP connection the profiles and config/sis.yaml
    name points at the local mail catcher."""
    root = project_root()
    env = dict(os.environ)
    env.setdefault("AIRFLOW_HOME", str(root / "var" / "airflow"))
    env.setdefault("ROSTERING_WORK_DIR", str(root / "var" / "work"))
    env.update(
        AIRFLOW__CORE__DAGS_FOLDER=str(root / "dags"),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(root / "plugins"),  # the run reports in the UI (rostering_reports)
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
    )
    # a district trying the demo on its own SIS model database sets AIRFLOW_CONN_SIS_DB itself: kept, never
    # overwritten (the vendors are still the local stand-ins: nothing leaves the machine)
    env.setdefault("AIRFLOW_CONN_SIS_DB", json.dumps({"conn_type": "sqlite", "host": str(sis_path)}))
    env.update(sis_api or {"ROSTERING_SIS_SOURCE": "sql_model"})
    if mail is not None:
        env.update({f"AIRFLOW_CONN_{conn_id.upper()}": mail.connection_json() for conn_id in smtp_conn_ids()})
    for profile in vendor_profiles():
        if profile.delivery.kind == "sftp":
            env[f"AIRFLOW_CONN_{profile.delivery.conn_id.upper()}"] = json.dumps(
                {
                    "conn_type": "sftp",
                    "host": sftp.host,
                    "port": sftp.port,
                    "login": profile.name,
                    "password": passwords[profile.name],
                    "extra": {"host_key": sftp.host_key_line},
                }
            )
        if profile.delivery.kind == "cers_api" and cers is not None:
            cers_server, credentials = cers
            env[f"AIRFLOW_CONN_{profile.delivery.conn_id.upper()}"] = json.dumps(
                {
                    "conn_type": "http",
                    "host": cers_server.url,
                    "login": credentials["username"],
                    "password": credentials["password"],
                    "extra": {"token_url": cers_server.token_path, "client_id": credentials["client_id"],
                              "client_secret": credentials["client_secret"],
                              "verify": str(cers_server.ca_path)},  # the stand-in's CA, made for this run
                }
            )
        staff_password = profile.options.get("staff_password") or {}
        if staff_password.get("mode") == "connection":  # e.g. Literably's SSO placeholder, a secret like any other
            env[f"AIRFLOW_CONN_{staff_password['conn_id'].upper()}"] = json.dumps(
                {"conn_type": "generic", "password": secrets.token_urlsafe(12)}
            )
    return env


def smtp_conn_ids() -> set[str]:
    """The SMTP connections the alert mails go through (``notify.smtp_conn_id``, default ``smtp_default``)."""
    from rostering.sis.config import load_sis_config

    notifies = [p.notify for p in vendor_profiles()] + [load_sis_config().notify]
    return {n.get("smtp_conn_id", "smtp_default") for n in notifies} | {"smtp_default"}


def start_mail_catcher() -> MailCatcher:
    catcher = MailCatcher().start()
    print(f"local mail catcher (SMTP) on 127.0.0.1:{catcher.port}: the alert e-mails land there, none leave this machine")
    return catcher


def start_sftp() -> tuple[LocalSFTPServer, dict[str, str]]:
    passwords = {p.name: secrets.token_urlsafe(16) for p in vendor_profiles() if p.delivery.kind == "sftp"}
    server = LocalSFTPServer(
        root=demo_dir() / "sftp", users=passwords, host_key_path=demo_dir() / "sftp_host_ed25519_key"
    ).start()
    print(f"local SFTP server on {server.host}:{server.port} (host key pinned in the connections)")
    return server, passwords


def start_cers() -> tuple[LocalCersServer, dict[str, str]]:
    """The local CERS import stand-in, with OAuth2 credentials generated for this run (never printed)."""
    credentials = {"client_id": "rostering-demo", "client_secret": secrets.token_urlsafe(24),
                   "username": "demo-system-user", "password": secrets.token_urlsafe(16)}
    server = LocalCersServer(client_id=credentials["client_id"], client_secret=credentials["client_secret"],
                             users={credentials["username"]: credentials["password"]}).start()
    print(f"local CERS import API (stand-in) on {server.url}")
    return server, credentials


def chosen_sis(requested: str | None) -> str:
    from rostering.sis.config import load_sis_config

    return load_sis_config(source=requested or None).source


def start_sis_standin(sis: str, students: int) -> tuple[Any, dict[str, str]]:
    """For an API source: the same generated district served by its local stand-in, and the environment that points
    the source at it (connection with credentials made up for this run -- never printed)."""
    from rostering.devservers.sis_standins import airflow_connection, start_standin  # the stand-ins load lazily
    from rostering.sis.config import load_sis_config
    from rostering.sis.demo import generate_district

    server, connection = start_standin(sis, generate_district(students))
    conn_id = load_sis_config(source=sis).conn_id
    print(f"local {sis} API (stand-in) on {server.url}: the snapshot reads the demo district from it")
    return server, {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(airflow_connection(sis, connection)),
                    "ROSTERING_SIS_SOURCE": sis}


def report_cers_imports(server: LocalCersServer) -> None:
    if not server.imports:
        return
    print("\nCERS imports (local stand-in):")
    for imp in sorted(server.imports.values(), key=lambda i: i.id):
        print(f"  import {imp.id} {imp.filename}: {imp.status}")
        for line in imp.message.splitlines():
            print(f"    {line}")
    schools = len({key[0] for key in server.groups})
    print(f"  CERS now holds {len(server.groups):,} student group(s) at {schools} school(s)")


def report_mails(catcher: MailCatcher) -> None:
    print("\ne-mails sent (captured by the local mail catcher):")
    if not catcher.messages:
        print("  none")
    for mail in catcher.messages:  # subject and recipients only: a body is for the district's team mailbox
        print(f"  {mail.subject}  ->  {', '.join(mail.rcpt_tos)}")


def runs_since(dag_ids: list[str], started: float) -> list[Path]:
    """Each DAG's newest run folder made by this demo (``airflow dags test`` makes up the run ids)."""
    folders = []
    for dag_id in dag_ids:
        runs = [p for p in (work_dir() / dag_id).glob("*") if p.is_dir() and p.stat().st_mtime >= started]
        if runs:
            folders.append(max(runs, key=lambda p: p.stat().st_mtime))
    return folders


def report_run_reports(dag_ids: list[str], started: float) -> None:
    print("\nrun reports (open in a browser):")
    for run in runs_since(dag_ids, started):
        report = run / "reports" / "report.html"
        print(f"  {run.parent.name}: {report if report.exists() else run / 'reports'}")
    print("\nto look around in the Airflow UI (DAGs, runs, task logs): make airflow, then http://localhost:8080")


def airflow(*args: str, env: dict[str, str]) -> int:
    return subprocess.call([str(Path(sys.executable).with_name("airflow")), *args], env=env)


def report_deliveries(server: LocalSFTPServer) -> None:
    print("\ndelivered:")
    for profile in vendor_profiles():
        if profile.delivery.kind != "sftp":
            continue
        folder = server.home(profile.name) / profile.delivery.remote_dir
        for path in sorted(p for p in folder.glob("*") if p.is_file()):
            print(f"  {profile.title}: {path}  ({path.stat().st_size:,} bytes, sha256 {sha256_of(path)[:16]}…)")
            if path.suffix == ".zip":
                with zipfile.ZipFile(path) as archive:
                    print(f"    contains: {', '.join(archive.namelist())}")


def in_run_order(profiles: list) -> list:
    """File-name order, except that a profile with ``after: X`` runs after X (Derivita after ST Math)."""
    names = {p.name for p in profiles}
    ordered: list = []
    pending = list(profiles)
    while pending:
        done = {p.name for p in ordered}
        ready = next((p for p in pending if p.after not in names or p.after in done), None)
        if ready is None:
            raise ValueError(f"profiles wait for each other in a cycle (after:): {sorted(p.name for p in pending)}")
        ordered.append(ready)
        pending.remove(ready)
    return ordered


def run(args: argparse.Namespace) -> int:
    sis = chosen_sis(args.sis)
    if sis == "sql_model" and os.environ.get("AIRFLOW_CONN_SIS_DB"):
        print("sis_db: your own AIRFLOW_CONN_SIS_DB (the SIS model database it names), not the generated district; "
              "every vendor still delivers to the local stand-ins only")
    sis_path = ensure_district(args.students, args.regenerate)
    standin, sis_api = start_sis_standin(sis, args.students) if sis != "sql_model" else (None, None)
    server, passwords = start_sftp()
    cers = start_cers()
    mail = start_mail_catcher()
    started = time.time() - 1  # run folders made from now on are this demo's (mtime has 1 s granularity somewhere)
    try:
        env = airflow_env(sis_path, server, passwords, cers, sis_api, mail)
        # the night: one SIS snapshot, then every vendor (each finds tonight's snapshot in the store)
        dag_ids = args.dag or [SNAPSHOT_DAG, *(p.dag_id for p in in_run_order(vendor_profiles()))]
        failed = []
        for dag_id in dag_ids:
            if airflow("dags", "test", dag_id, env=env) != 0:
                failed.append(dag_id)
                if dag_id == SNAPSHOT_DAG:  # as in production: no snapshot, no vendor run
                    print("\nthe SIS snapshot failed: the vendor DAGs are not run")
                    break
        report_deliveries(server)
        report_cers_imports(cers[0])
        report_mails(mail)
        report_run_reports(dag_ids, started)
    finally:
        mail.stop()
        cers[0].stop()
        server.stop()
        if standin is not None:
            standin.stop()
    if failed:
        print(f"\nFAILED: {', '.join(failed)} (see the task logs above)")
        return 1
    print(f"\nall {len(dag_ids)} DAG run(s) succeeded")
    return 0


def serve_airflow(args: argparse.Namespace) -> int:
    sis = chosen_sis(args.sis)
    sis_path = ensure_district(args.students, args.regenerate)
    standin, sis_api = start_sis_standin(sis, args.students) if sis != "sql_model" else (None, None)
    server, passwords = start_sftp()
    cers = start_cers()
    mail = start_mail_catcher()
    try:
        print("starting `airflow standalone` on http://localhost:8080 (admin password in var/airflow)")
        return airflow("standalone", env=airflow_env(sis_path, server, passwords, cers, sis_api, mail))
    finally:
        report_mails(mail)
        mail.stop()
        cers[0].stop()
        server.stop()
        if standin is not None:
            standin.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["run", "airflow"])
    parser.add_argument("--students", type=int, default=3000, help="size of the generated district")
    parser.add_argument("--regenerate", action="store_true", help="generate the district again")
    parser.add_argument("--sis", choices=["sql_model", "powerschool", "aeries"],
                        help="the SIS source (default: config/sis.yaml or ROSTERING_SIS_SOURCE); API sources read the "
                        "demo district from a local stand-in")
    parser.add_argument("--dag", action="append", help="DAG id to run (default: sis_snapshot, then every vendor)")
    args = parser.parse_args(argv)
    return run(args) if args.command == "run" else serve_airflow(args)


if __name__ == "__main__":
    sys.exit(main())
