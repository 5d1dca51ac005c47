"""The demo: a generated district in SQLite, local vendor endpoints, and the real DAGs run through Airflow.

    python -m rostering.devservers.demo run [--students N] [--dag DAG_ID ...]   # what `make demo` does
    python -m rostering.devservers.demo airflow                               # `make airflow`: the UI on the demo

Connections reach Airflow the way production secrets do, as ``AIRFLOW_CONN_*`` variables: the SIS connection points
at the demo SQLite file; each SFTP vendor connection at the local server, with its host key pinned and a password
generated for this run (never printed).
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import zipfile
from pathlib import Path

from rostering.csvio import sha256_of
from rostering.devservers.sftp_server import LocalSFTPServer
from rostering.paths import config_dir, project_root
from rostering.vendors.profile import load_profile


def demo_dir() -> Path:
    return project_root() / "var" / "demo"


def vendor_profiles():
    return [load_profile(p.stem) for p in sorted((config_dir() / "vendors").glob("*.yaml"))]


def ensure_district(students: int, regenerate: bool) -> Path:
    from rostering.sis.demo import generate_district, load_district

    path = demo_dir() / "sis.sqlite"
    if regenerate or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        load_district(generate_district(students), f"sqlite:///{path}")
        print(f"demo district: {students:,} students -> {path}")
    return path


def airflow_env(sis_path: Path, sftp: LocalSFTPServer, passwords: dict[str, str]) -> dict[str, str]:
    root = project_root()
    env = dict(os.environ)
    env.setdefault("AIRFLOW_HOME", str(root / "var" / "airflow"))
    env.setdefault("ROSTERING_WORK_DIR", str(root / "var" / "work"))
    env.update(
        AIRFLOW__CORE__DAGS_FOLDER=str(root / "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW_CONN_SIS_DB=json.dumps({"conn_type": "sqlite", "host": str(sis_path)}),
    )
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
        staff_password = profile.options.get("staff_password") or {}
        if staff_password.get("mode") == "connection":  # e.g. Literably's SSO placeholder, a secret like any other
            env[f"AIRFLOW_CONN_{staff_password['conn_id'].upper()}"] = json.dumps(
                {"conn_type": "generic", "password": secrets.token_urlsafe(12)}
            )
    return env


def start_sftp() -> tuple[LocalSFTPServer, dict[str, str]]:
    passwords = {p.name: secrets.token_urlsafe(16) for p in vendor_profiles() if p.delivery.kind == "sftp"}
    server = LocalSFTPServer(
        root=demo_dir() / "sftp", users=passwords, host_key_path=demo_dir() / "sftp_host_ed25519_key"
    ).start()
    print(f"local SFTP server on {server.host}:{server.port} (host key pinned in the connections)")
    return server, passwords


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
    sis_path = ensure_district(args.students, args.regenerate)
    server, passwords = start_sftp()
    try:
        env = airflow_env(sis_path, server, passwords)
        dag_ids = args.dag or [p.dag_id for p in in_run_order(vendor_profiles())]
        failed = [dag_id for dag_id in dag_ids if airflow("dags", "test", dag_id, env=env) != 0]
        report_deliveries(server)
    finally:
        server.stop()
    if failed:
        print(f"\nFAILED: {', '.join(failed)} (see the task logs above)")
        return 1
    print(f"\nall {len(dag_ids)} DAG run(s) succeeded; run reports under {project_root() / 'var' / 'work'}")
    return 0


def serve_airflow(args: argparse.Namespace) -> int:
    sis_path = ensure_district(args.students, args.regenerate)
    server, passwords = start_sftp()
    try:
        print("starting `airflow standalone` on http://localhost:8080 (admin password in var/airflow)")
        return airflow("standalone", env=airflow_env(sis_path, server, passwords))
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["run", "airflow"])
    parser.add_argument("--students", type=int, default=3000, help="size of the generated district")
    parser.add_argument("--regenerate", action="store_true", help="generate the district again")
    parser.add_argument("--dag", action="append", help="DAG id to run (default: every vendor)")
    args = parser.parse_args(argv)
    return run(args) if args.command == "run" else serve_airflow(args)


if __name__ == "__main__":
    sys.exit(main())
