"""The configured SIS source (config/sis.yaml), connected through its Airflow connection; and the snapshot of a date
made from it and published to the store.

Used by the ``sis_snapshot`` DAG and by a vendor run that finds no snapshot for its date (a manual run for another
date, a cron vendor before the nightly snapshot). Imported inside tasks only: it pulls in SQLAlchemy and pandas.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from rostering.sis.sources.base import SourceConnection

if TYPE_CHECKING:
    import sqlalchemy as sa

    from rostering.sis.config import SisConfig
    from rostering.sis.store import SnapshotStore, StoredSnapshot

log = logging.getLogger(__name__)


def api_connection(conn: Any) -> SourceConnection:
    """An Airflow connection's fields as an API source needs them: host = base URL (a scheme and port given in
    their own fields are added), login, password, extra. Nothing here is logged."""
    host = (conn.host or "").strip()
    if host and "://" not in host:
        scheme = (conn.schema or "https").strip()
        host = f"{scheme}://{host}{f':{conn.port}' if conn.port else ''}"
    return SourceConnection(host=host.rstrip("/"), login=conn.login or None, password=conn.password or None,
                            extra=dict(conn.extra_dejson or {}))


# Connection types whose SQLAlchemy URL is made here rather than by their hook:
# - mysql: the provider's default DB-API, mysqlclient, is a C build left out of the locks (requirements-exclude.txt);
#   the hook's URL ("mysql://", meaning mysqlclient) is read with PyMySQL instead. extra.client =
#   "mysql-connector-python" (also installed) keeps that driver.
# - oracle: the hook's get_uri() puts login and password into the URL unescaped (a password with "@" or "/" breaks
#   it). python-oracledb in thin mode: no Oracle client libraries (extra.thick_mode is not supported here).
ORACLE_DEFAULT_PORT = 1521


def database_url(conn: Any, hook: Any = None) -> "sa.URL":
    """The SQLAlchemy URL the ``sql_model`` source reads the Airflow database connection ``conn`` with (``hook``:
    its hook, when already made). Raises Airflow's "Unknown hook type" when the connection type's provider is not
    installed. Connects to nothing."""
    import sqlalchemy as sa

    hook = hook if hook is not None else conn.get_hook()
    if conn.conn_type == "oracle":
        extra = conn.extra_dejson or {}
        service_name, sid = extra.get("service_name"), extra.get("sid")
        if service_name and sid:
            raise ValueError("an oracle connection gives extra.service_name or extra.sid, not both")
        return sa.URL.create("oracle+oracledb", username=conn.login or None, password=conn.password or None,
                             host=conn.host or None, port=conn.port or ORACLE_DEFAULT_PORT,
                             database=None if service_name else (sid or conn.schema or None),
                             query={"service_name": service_name} if service_name else {})
    try:
        url = sa.make_url(hook.sqlalchemy_url)
    except NotImplementedError:  # hooks that only build a URI string (mysql, mssql, sqlite)
        url = sa.make_url(hook.get_uri())
    if conn.conn_type == "mysql" and url.drivername == "mysql":
        url = url.set(drivername="mysql+pymysql")
    return url


def database_engine(conn: Any) -> "sa.Engine":
    """A SQLAlchemy engine for the Airflow database connection ``conn`` (``sis_db``), through its type's hook."""
    import sqlalchemy as sa

    hook = conn.get_hook()
    if conn.conn_type in ("mysql", "oracle"):
        return sa.create_engine(database_url(conn, hook))
    return hook.get_sqlalchemy_engine()  # postgres, sqlite, mssql: the hook's own engine, as before


@contextlib.contextmanager
def source_from_airflow(config: "SisConfig") -> Iterator[Any]:
    """The source ``config`` names, connected through Airflow connection ``config.conn_id``; closed on exit."""
    from airflow.sdk import BaseHook

    from rostering.sis.sources import open_source

    conn = BaseHook.get_connection(config.conn_id)
    if config.source == "sql_model":  # a database connection: sqlite, postgres, mysql, mssql, oracle
        engine = database_engine(conn)
        try:
            yield open_source(config, engine=engine)
        finally:
            engine.dispose()
        return
    source = open_source(config, connection=api_connection(conn))
    try:
        yield source
    finally:
        close = getattr(source, "close", None)
        if callable(close):
            close()


def keep_rejected_report(report: Path, reports_dir: Path | None) -> Path | None:
    if reports_dir is None or not report.exists():
        return None
    reports_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    target = reports_dir / report.name
    shutil.copyfile(report, target)
    target.chmod(0o600)
    return target


def snapshot_for(config: "SisConfig", store: "SnapshotStore", *, as_of: dt.date, school_year: int,
                 reports_dir: Path | None = None, replace: bool = False) -> tuple["StoredSnapshot", bool]:
    """The store's snapshot of ``as_of``; made from the configured source and published when there is none (or
    always, with ``replace``: the nightly run). Returns (snapshot, True when this call read the SIS)."""
    from rostering.sis.extract import REJECTED
    from rostering.sis.snapshot import take_snapshot

    def take(out_dir: Path):
        """Read the SIS into ``out_dir``; its rejected.csv is kept in ``reports_dir`` even when the snapshot is
        refused (the temporary folder is deleted, and the DBA needs the list of records to fix)."""
        try:
            with source_from_airflow(config) as source:
                return take_snapshot(source, out_dir, as_of=as_of, school_year=school_year,
                                     max_rejected_share=config.max_rejected_share)
        finally:
            keep_rejected_report(out_dir / REJECTED, reports_dir)

    stored = None if replace else store.find(as_of)
    if stored is not None and stored.info.source != config.source:  # the deployment switched SIS since: re-read
        log.info("the stored snapshot of %s is from %s, the configured source is %s: reading it again",
                 as_of.isoformat(), stored.info.source, config.source)
        replace = True
    if replace:
        return store.publish(as_of, take, source=config.source), True
    return store.find_or_publish(as_of, take, source=config.source)


def final_source_error(error: BaseException) -> bool:
    """Errors a retry cannot fix: the SIS refused access (401 after a refresh, 403, 404), or the input checks
    refused the data (more than max_rejected_share of a table). Anything else (timeouts, 5xx) is retried."""
    from rostering.sis.snapshot import SnapshotRejected
    from rostering.sis.sources.base import SourceAccessError

    return isinstance(error, (SourceAccessError, SnapshotRejected))


def snapshot_for_run(paths: Any, run: Any, *, config: "SisConfig | None" = None,
                     store: "SnapshotStore | None" = None) -> dict[str, Any]:
    """A vendor run's ``snapshot`` step: the store's snapshot of the run's as-of date (made from the configured
    source and published when there is none), hard-linked into the run folder. Returns what the extract returned
    (snapshot folder, as-of date, school year, row counts, rejected by rule) plus ``source`` and ``version``."""
    from rostering.sis.config import load_sis_config
    from rostering.sis.extract import REJECTED
    from rostering.sis.store import SnapshotGone, SnapshotStore

    config = config or load_sis_config()
    store = store or SnapshotStore()
    paths.make_private()
    for _ in range(3):  # a version pruned between find and link (a re-run replaced it): look again
        stored, made = snapshot_for(config, store, as_of=run.as_of, school_year=run.school_year,
                                    reports_dir=paths.reports)
        try:
            info = store.link_into(stored, paths.snapshot)
            break
        except SnapshotGone:
            continue
    else:
        raise SnapshotGone(f"the snapshot of {run.as_of} kept changing while it was linked")
    if info.school_year != run.school_year:
        raise ValueError(f"the stored snapshot of {run.as_of} is of school year {info.school_year}, "
                         f"not {run.school_year}")
    keep_rejected_report(paths.snapshot / REJECTED, paths.reports)  # the DBA's list stays with the run's reports
    log.info("snapshot of %s: version %s from %s (%s), %s rows", info.as_of_date, stored.version, info.source,
             "read now: the store had none" if made else "the store's", f"{sum(info.row_counts.values()):,}")
    return {"snapshot": info.directory, "as_of_date": info.as_of_date, "school_year": info.school_year,
            "rows": dict(info.row_counts), "rejected": dict(info.rejected), "source": info.source,
            "version": stored.version}
