"""The SIS API stand-ins as the demo, the tests and the bench start them, and the check that every source yields
the same vendor files.

``start_standin(source, tables)`` serves a generated district through the local PowerSchool or Aeries stand-in
(rostering.devservers.powerschool_server / aeries_server) with credentials made up for this process, and returns
the server with the ``SourceConnection`` the adapter needs -- the same fields the Airflow connection
(``powerschool_api`` / ``aeries_api``) carries in production. ``payload_digests`` builds and packages every vendor
from one snapshot and returns the SHA-256 of each file a vendor would receive (zip members one by one), so the
snapshots of different sources can be compared by what the vendors would get.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pandas as pd

from rostering.sis.sources.base import SourceConnection

API_SOURCES = ("powerschool", "aeries")


def start_standin(source: str, tables: dict[str, pd.DataFrame], *, latency_s: float = 0.0,
                  rate_limit_per_s: float | None = None) -> tuple[Any, SourceConnection]:
    """Start the stand-in of ``source`` serving ``tables``; (the running server, the connection to read it)."""
    if source == "powerschool":
        from rostering.devservers.powerschool_server import LocalPowerSchoolServer

        client_id, secret = "rostering-demo", secrets.token_urlsafe(24)
        server = LocalPowerSchoolServer(tables, client_id=client_id, client_secret=secret, latency_s=latency_s,
                                        rate_limit_per_s=rate_limit_per_s).start()
        return server, SourceConnection(host=server.url, login=client_id, password=secret)
    if source == "aeries":
        from rostering.devservers.aeries_server import LocalAeriesServer

        certificate = secrets.token_hex(16)
        server = LocalAeriesServer(tables, certificate=certificate, latency_s=latency_s,
                                   rate_limit_per_s=rate_limit_per_s).start()
        return server, SourceConnection(host=server.url, password=certificate)
    raise ValueError(f"no stand-in for source {source!r}; expected one of {list(API_SOURCES)}")


def airflow_connection(source: str, connection: SourceConnection) -> dict[str, Any]:
    """The Airflow connection (``AIRFLOW_CONN_*`` JSON) that points the source at a stand-in."""
    conn: dict[str, Any] = {"conn_type": "http", "host": connection.host}
    if connection.login:
        conn["login"] = connection.login
    if connection.password:
        conn["password"] = connection.password
    return conn


def payload_digests(snapshot_dir: Path, work: Path, *, as_of: dt.date, school_year: int,
                    vendors: list[str] | None = None) -> dict[str, dict[str, str]]:
    """vendor -> {file (``zip/member`` for a zip's members): sha256} of what each vendor would receive when built
    from the snapshot in ``snapshot_dir``. Builds and packages only: nothing is validated against, or sent to, a
    vendor. Literably's staff password comes from its Airflow connection (set ``AIRFLOW_CONN_*`` first)."""
    from rostering import pipeline
    from rostering.devservers.demo import in_run_order, vendor_profiles
    from rostering.run_options import RunOptions

    run = RunOptions(as_of, school_year, dry_run=True, force=False, schools=())
    profiles = [p for p in in_run_order(vendor_profiles()) if vendors is None or p.name in vendors]
    digests: dict[str, dict[str, str]] = {}
    for profile in profiles:
        paths = pipeline.RunPaths(work / profile.name)
        shutil.rmtree(paths.root, ignore_errors=True)
        paths.root.mkdir(parents=True, mode=0o700)
        shutil.copytree(snapshot_dir, paths.snapshot)
        pipeline.build(profile, paths, run)
        packaged = pipeline.package(profile, paths)
        files: dict[str, str] = {}
        for written in packaged["files"]:
            path = Path(written["path"])
            if path.suffix == ".zip":
                with zipfile.ZipFile(path) as archive:
                    for member in sorted(archive.namelist()):
                        files[f"{path.name}/{member}"] = hashlib.sha256(archive.read(member)).hexdigest()
            else:
                files[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
        digests[profile.name] = files
    return digests
