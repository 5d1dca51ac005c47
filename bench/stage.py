"""One measured step of the benchmark, in a process of its own: ``python -m bench.stage JOB.json RESULT.json``.

A pipeline stage runs as its own Airflow task (its own process), so each is measured in a process of its own:
forked from a server that has the libraries loaded (the default, as an executor forks task processes), or a fresh
interpreter (``--isolation process``). Measured: wall time of the stage itself, CPU time, the process's peak RSS
(``ru_maxrss``: everything the task held at its highest, libraries included), rows in and out. What the stage
process had to import before the stage could start (pandas, pyarrow, SQLAlchemy through ``rostering.pipeline``) is
timed apart as ``import_seconds`` (about 0 when forked); what the stage imports lazily (a format module, Great
Expectations) is part of the stage.

With ``preload_airflow`` the Airflow task SDK is imported before the clock starts, as in a real task process (the
peak RSS then includes it); without it a stage that needs Airflow (a connection lookup) imports it in its own time.

Steps: ``load`` (generate + COPY the demo district), ``snapshot`` (the night's one snapshot, sql_model on
PostgreSQL), ``api_snapshot`` (the same through an API source's stand-in), ``build``, ``validate``, ``package`` (per
vendor), ``digests`` (what each vendor would receive, for the three-source equality), ``dag_parse`` (the DAG
processor's parse of one DAG file). The reference floor (``floor_copy``: PostgreSQL COPY of the snapshot queries
into a null sink) is measured by the harness itself (``measure``).
"""
from __future__ import annotations

import datetime as dt
import json
import os
import resource
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _run_options(job: dict[str, Any]):
    from rostering.run_options import RunOptions

    return RunOptions(dt.date.fromisoformat(job["as_of"]), int(job["school_year"]), True, False, ())


def _snapshot_rows(root: Path) -> int:
    meta = json.loads((root / "snapshot" / "snapshot.json").read_text())
    return int(sum(meta["row_counts"].values()))


def _built_rows(root: Path) -> int:
    return int(sum(json.loads((root / "reports" / "build.json").read_text())["files"].values()))


# --------------------------------------------------------------------------------------------------------------------
# the steps: each returns (prepare, run); prepare's imports are timed apart, run is the measured stage


def step_load(job):
    import sqlalchemy as sa

    from rostering.sis.demo import generate_district, load_district

    def run():
        started = time.perf_counter()
        tables = generate_district(int(job["students"]), seed=int(job.get("seed", 20261123)),
                                   school_year=int(job["school_year"]))
        generated = time.perf_counter()
        load_district(tables, job["url"])
        loaded = time.perf_counter()
        engine = sa.create_engine(job["url"])
        with engine.connect() as conn:
            version = conn.execute(sa.text("SHOW server_version")).scalar()
        engine.dispose()
        rows = {name: len(frame) for name, frame in tables.items()}
        return {"rows_in": 0, "rows_out": sum(rows.values()), "tables": rows, "postgres": version,
                "generate_seconds": generated - started, "load_seconds": loaded - generated}

    return run


def step_snapshot(job):
    """The night's one snapshot from the SIS model in PostgreSQL (what the sis_snapshot DAG's task runs)."""
    import sqlalchemy as sa

    from rostering.sis.snapshot import take_snapshot
    from rostering.sis.sources.sql_model import SqlModelSource

    def run():
        engine = sa.create_engine(job["url"])
        try:
            info = take_snapshot(SqlModelSource(engine), Path(job["root"]) / "snapshot",
                                 as_of=dt.date.fromisoformat(job["as_of"]), school_year=int(job["school_year"]),
                                 max_rejected_share=1.0)
        finally:
            engine.dispose()
        rows = int(sum(info.row_counts.values()))
        return {"rows_in": rows, "rows_out": rows, "tables": info.row_counts, "rejected": info.rejected}

    return run


def step_api_snapshot(job):
    """The snapshot through an API source's adapter, from its stand-in (bench.standin) over loopback HTTP."""
    from rostering.sis.config import load_sis_config
    from rostering.sis.snapshot import take_snapshot
    from rostering.sis.sources import open_source
    from rostering.sis.sources.base import SourceConnection

    def run():
        config = load_sis_config(source=job["source"])
        if job.get("max_concurrency"):
            config = dt_replace(config, options={**config.options, "max_concurrency": int(job["max_concurrency"])})
        source = open_source(config, connection=SourceConnection(**job["connection"]))
        info = take_snapshot(source, Path(job["root"]) / "snapshot", as_of=dt.date.fromisoformat(job["as_of"]),
                             school_year=int(job["school_year"]), max_rejected_share=1.0)
        read = json.loads((Path(job["root"]) / "snapshot" / "source_stats.json").read_text())
        stats = read["resources"]
        rows = int(sum(info.row_counts.values()))
        return {"rows_in": int(sum(s["records"] for s in stats.values())), "rows_out": rows,
                "requests": int(sum(s["requests"] for s in stats.values())),
                "bytes": int(sum(s["bytes"] for s in stats.values())), "resources": stats,
                "pull_seconds": read["pull_seconds"], "max_concurrency": source_concurrency(source),
                "tables": info.row_counts}

    return run


def source_concurrency(source) -> int | None:
    options = getattr(source, "options", None)
    return getattr(options, "max_concurrency", None)


def dt_replace(config, **changes):
    import dataclasses

    return dataclasses.replace(config, **changes)


def step_digests(job):
    """SHA-256 of every file each vendor would receive, built from one snapshot (the three-source equality)."""
    from rostering.devservers.sis_standins import payload_digests

    def run():
        digests = payload_digests(Path(job["root"]) / "snapshot", Path(job["root"]) / "vendors",
                                  as_of=dt.date.fromisoformat(job["as_of"]), school_year=int(job["school_year"]))
        files = int(sum(len(f) for f in digests.values()))
        return {"rows_in": files, "rows_out": files, "digests": digests}

    return run


def step_build(job):
    from rostering import pipeline
    from rostering.vendors.profile import load_profile

    paths, run_options, profile = pipeline.RunPaths(Path(job["root"])), _run_options(job), load_profile(job["vendor"])

    def run():
        result = pipeline.build(profile, paths, run_options)
        return {"rows_in": _snapshot_rows(paths.root), "rows_out": int(sum(result["files"].values())),
                "files": result["files"]}

    return run


def step_validate(job):
    from rostering import pipeline
    from rostering.validation.report import ValidationFailed
    from rostering.vendors.profile import load_profile

    paths, profile = pipeline.RunPaths(Path(job["root"])), load_profile(job["vendor"])

    def run():
        try:
            pipeline.validate(profile, paths)
            ok, failure = True, None
        except ValidationFailed as error:
            ok, failure = False, str(error)[:2000]
        report = json.loads((paths.reports / "validation.json").read_text())
        gx_suites = sys.modules.get("rostering.validation.gx_suites")
        engine = dict(gx_suites.ENGINE_STATS) if gx_suites is not None and hasattr(gx_suites, "ENGINE_STATS") else {}
        rows = int(sum(report.get("files", {}).values()))
        return {"rows_in": rows, "rows_out": rows, "valid": ok, "failure": failure,
                "timings": report.get("timings", {}), "suite_engine": engine,
                "great_expectations_imported": "great_expectations" in sys.modules}

    return run


def step_package(job):
    from rostering import pipeline
    from rostering.vendors.profile import load_profile

    paths, profile = pipeline.RunPaths(Path(job["root"])), load_profile(job["vendor"])

    def run():
        result = pipeline.package(profile, paths)
        rows = _built_rows(paths.root)
        return {"rows_in": rows, "rows_out": rows, "payload": result["files"],
                "payload_bytes": int(sum(f["size"] for f in result["files"]))}

    return run


def step_floor_copy(job):
    import threading

    import sqlalchemy as sa

    from rostering.sis.extract import _NAMED_PARAM, snapshot_queries

    class NullSink:
        def __init__(self) -> None:
            self.bytes = 0

        def write(self, block) -> int:
            self.bytes += len(block)
            return len(block)

    engine = sa.create_engine(job["url"], pool_size=4)
    params = {"as_of_date": job["as_of"], "school_year": int(job["school_year"])}
    queries = list(snapshot_queries().items())
    connections = int(job.get("connections", 1))

    def worker(pending: list, sink: NullSink, lock: threading.Lock) -> None:
        raw = engine.raw_connection()
        try:
            with raw.cursor() as cursor:
                while True:
                    with lock:
                        if not pending:
                            return
                        _, sql = pending.pop(0)
                    bound = cursor.mogrify(_NAMED_PARAM.sub(r"%(\1)s", sql.replace("%", "%%")), params).decode()
                    cursor.copy_expert(f"COPY ({bound}) TO STDOUT WITH (FORMAT csv, HEADER true)", sink)
        finally:
            raw.close()

    def run():
        sinks = [NullSink() for _ in range(connections)]
        pending, lock = list(queries), threading.Lock()
        threads = [threading.Thread(target=worker, args=(pending, sink, lock)) for sink in sinks]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        engine.dispose()
        rows = int(job.get("rows", 0))
        return {"rows_in": rows, "rows_out": rows, "bytes": sum(s.bytes for s in sinks), "connections": connections}

    return run


def step_dag_parse(job):
    import airflow  # noqa: F401 - the DAG processor has Airflow loaded before it parses a file
    import airflow.sdk  # noqa: F401

    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # older layout
        from airflow.models.dagbag import DagBag

    def run():
        bag = DagBag(dag_folder=job["dag_file"])
        stats = bag.dagbag_stats
        duration = stats[0].duration if stats else None
        seconds = duration.total_seconds() if hasattr(duration, "total_seconds") else float(duration or 0)
        return {"rows_in": 0, "rows_out": 0, "parse_seconds": seconds, "dags": sorted(bag.dag_ids),
                "import_errors": len(bag.import_errors)}

    return run


def step_imports(job):
    """What a fresh task process imports before it can do anything (paid per Airflow task; not in stage times)."""
    import importlib

    def run():
        seconds = {}
        for module in ("airflow.sdk", "rostering.pipeline", "great_expectations"):
            started = time.perf_counter()
            importlib.import_module(module)
            seconds[module] = time.perf_counter() - started
        return {"rows_in": 0, "rows_out": 0, "import_seconds_by_module": seconds}

    return run


STEPS: dict[str, Callable] = {
    "load": step_load, "snapshot": step_snapshot, "api_snapshot": step_api_snapshot, "digests": step_digests,
    "build": step_build, "validate": step_validate, "package": step_package, "floor_copy": step_floor_copy,
    "dag_parse": step_dag_parse, "imports": step_imports,
}


def measure(step: str, job: dict[str, Any]) -> dict[str, Any]:
    """Run a step in this process (the floors: their memory is not what is measured)."""
    run = STEPS[step](job)
    ready = time.perf_counter()
    result = {"step": step, **run(), "ok": True}
    result["seconds"] = time.perf_counter() - ready
    return result


def run_job(job_path: str | Path, result_path: str | Path) -> int:
    """Run the job in this process and write its result; the entry point of a stage process (fresh or forked)."""
    job = json.loads(Path(job_path).read_text())
    os.umask(0o077)  # the bench writes children's (synthetic) records: owner-only, like the pipeline
    log = os.open(Path(job_path).with_suffix(".log"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(log, 1)  # the stage's own logging (Airflow's, the pipeline's) goes to the job's log, not the report
    os.dup2(log, 2)
    result: dict[str, Any] = {"step": job["step"], "ok": False}
    try:
        result["load_average"] = os.getloadavg()[0]  # other work on the machine shows here
        started = time.perf_counter()
        if job.get("preload_airflow"):  # an Airflow task's process has the task SDK loaded before the task starts
            import airflow.sdk  # noqa: F401
        run = STEPS[job["step"]](job)
        ready, cpu = time.perf_counter(), _cpu()
        details = run()
        finished = time.perf_counter()
        result.update(details)
        result.update(ok=True, seconds=finished - ready, cpu_seconds=_cpu() - cpu, import_seconds=ready - started)
    except BaseException as error:  # noqa: BLE001 - reported in the results, the harness goes on
        result["error"] = f"{type(error).__name__}: {error}"[:2000]
        result["traceback"] = traceback.format_exc()[-4000:]
    result["peak_rss_mib"] = _peak_rss_mib()
    Path(result_path).write_text(json.dumps(result, indent=2, default=str))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(run_job(sys.argv[1], sys.argv[2]))
