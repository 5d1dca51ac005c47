"""The rostering benchmark: the whole night -- one SIS snapshot, then every vendor's build on it -- by size.

    python -m bench [--sizes S M XL] [--api-sizes M] [--out bench/results] [--admin-url postgresql+psycopg2://...]

For each size: a dedicated database (``rostering_bench``, dropped and re-created, never ``test``/``postgres``'s
tables) gets the demo district (``rostering.sis.demo``). Then the night as it runs: the ``snapshot`` (what the
sis_snapshot DAG does, sql_model on PostgreSQL), and for every vendor profile in ``config/vendors/*.yaml`` the
stages build -> validate -> package on that one snapshot, each in a process of its own (what an Airflow task is),
with no delivery. Measured per stage: wall and CPU time, peak RSS, rows in and out, rows per second; the night's
total is the snapshot plus every vendor's stages. PostgreSQL ``COPY`` of the snapshot queries to a null sink is
measured alongside, as the reference floor of reading the SIS.

At the ``--api-sizes`` (default M), each API source (PowerSchool, Aeries) is read through its stand-in, in a process
of its own with ``--api-latency-ms`` (default 20) added to every request: once with the default concurrency and
once one request at a time. Reported: requests, bytes, seconds, and the speed-up. Every vendor's files built from
each API source's snapshot are compared, by SHA-256, with those built from the sql_model snapshot.

A vendor whose validation needs the delivery of another (Derivita's ids must be students of the last ST Math
delivery) is validated against the other vendor's payload recorded as delivered in a bench-private state folder
(``ROSTERING_STATE_DIR``) -- what a successful, not performed, delivery would leave. Results: ``<out>/<name>.json``
and ``<out>/<name>.png``; bench/README.md explains them.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.stage import measure

REPO = Path(__file__).resolve().parents[1]
SIZES = {"S": 5_000, "M": 50_000, "XL": 500_000}
STAGES = ("build", "validate", "package")  # per vendor, on the night's one snapshot
DEFAULT_ADMIN_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
DEFAULT_DB = "rostering_bench"
API_SOURCES = ("powerschool", "aeries")
TARGETS = {"nightly_total_seconds": 45.0, "snapshot_peak_rss_mib": 2048.0, "api_speedup": 4.0, "gx_share": 0.30,
           "dag_parse_seconds": 0.5}
TARGET_SIZE = "XL"


def students_for(size: str) -> int:
    return SIZES[size.upper()] if size.upper() in SIZES else int(size)


def size_label(size: str) -> str:
    return size.upper() if size.upper() in SIZES else f"{int(size)}"


# --------------------------------------------------------------------------------------------------------------------
# environment


def machine() -> dict[str, Any]:
    from importlib import metadata

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                       if line.startswith("MemTotal"))
    except (OSError, StopIteration, ValueError):
        mem_kib = 0
    versions = {}
    for package in ("pandas", "pyarrow", "great-expectations", "apache-airflow", "numpy", "SQLAlchemy",
                    "psycopg2-binary"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem_kib / 2**20, 1),
            "python": platform.python_version(), "platform": platform.platform(), "packages": versions,
            "load_average_at_start": list(os.getloadavg())}


def vendor_profiles(only: list[str] | None = None) -> list[dict[str, Any]]:
    """Every profile in config/vendors, a vendor after the one it follows (``after:``)."""
    import yaml

    profiles = {}
    for path in sorted((REPO / "config" / "vendors").glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        profiles[data["name"]] = data
    if only:
        missing = sorted(set(only) - set(profiles))
        if missing:
            raise SystemExit(f"unknown vendor(s): {missing}")
    ordered: list[str] = []

    def visit(name: str, chain: tuple[str, ...] = ()) -> None:
        if name in ordered or name not in profiles or name in chain:
            return
        after = profiles[name].get("after")
        if after:
            visit(after, chain + (name,))
        ordered.append(name)

    for name in sorted(profiles):
        visit(name)
    wanted = set(only or profiles)
    for name in list(wanted):  # a vendor needs the one it follows (its delivery record) in the same run
        after = profiles[name].get("after")
        if after in profiles:
            wanted.add(after)
    return [profiles[name] for name in ordered if name in wanted]


def child_environment(work: Path, profiles: list[dict[str, Any]]) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "ROSTERING_WORK_DIR": str(work / "work"),
        "ROSTERING_STATE_DIR": str(work / "state"),  # delivery records of this run only
        "AIRFLOW_HOME": str(work / "airflow"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
    })
    for profile in profiles:  # e.g. Literably's shared staff password: a placeholder, never a real secret
        password = ((profile.get(profile.get("format", ""), {}) or {}).get("staff_password") or {})
        if password.get("mode") == "connection":
            key = f"AIRFLOW_CONN_{password['conn_id'].upper()}"
            env.setdefault(key, json.dumps({"conn_type": "generic", "password": "bench-placeholder"}))
    return env


# --------------------------------------------------------------------------------------------------------------------
# running one step


class Runner:
    """Runs each step in a process of its own: forked from a server with the libraries loaded (``fork``, what an
    executor does with task processes), or a fresh interpreter (``process``: every stage also pays its imports)."""

    PRELOAD = ["bench.stage", "rostering.pipeline", "rostering.sis.demo", "pyarrow.compute", "pyarrow.csv",
               "pyarrow.parquet", "yaml"]

    def __init__(self, work: Path, env: dict[str, str], *, isolation: str = "fork", preload_airflow: bool = True,
                 verbose: bool = True) -> None:
        self.work, self.env, self.isolation, self.verbose, self.count = work, env, isolation, verbose, 0
        self.preload_airflow = preload_airflow
        self._context = None
        if isolation == "fork":
            import multiprocessing

            os.environ.update(env)  # the fork server, and so every stage process, starts with this environment
            self._context = multiprocessing.get_context("forkserver")
            self._context.set_forkserver_preload(self.PRELOAD + (["airflow.sdk"] if preload_airflow else []))

    def __call__(self, step: str, **job: Any) -> dict[str, Any]:
        self.count += 1
        job_path = self.work / "jobs" / f"{self.count:03d}_{step}.json"
        result_path = job_path.with_suffix(".result.json")
        job_path.parent.mkdir(parents=True, exist_ok=True)
        job_path.write_text(json.dumps({"step": step, "preload_airflow": self.preload_airflow, **job}, default=str))
        started = time.perf_counter()
        error = ""
        if self._context is not None:
            from bench.stage import run_job

            process = self._context.Process(target=run_job, args=(str(job_path), str(result_path)))
            process.start()
            process.join()
            error = f"exit {process.exitcode}"
        else:
            proc = subprocess.run([sys.executable, "-m", "bench.stage", str(job_path), str(result_path)],
                                  cwd=REPO, env=self.env, capture_output=True, text=True)
            error = f"exit {proc.returncode}: {proc.stderr[-2000:]}"
        process_seconds = time.perf_counter() - started
        if result_path.exists():
            result = json.loads(result_path.read_text())
        else:  # the process died before writing its result (killed, out of memory): the end of its log says why
            log = job_path.with_suffix(".log")
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            result = {"step": step, "ok": False, "error": f"{error} {tail}".strip()}
        result["process_seconds"] = process_seconds
        if self.verbose:
            label = " ".join(str(v) for k, v in job.items() if k in ("vendor", "students", "dag_file"))
            if result.get("ok"):
                print(f"  {step:<10} {label:<40} {result['seconds']:8.2f} s  (process {process_seconds:6.2f} s)  "
                      f"peak {result['peak_rss_mib']:7.0f} MiB", flush=True)
            else:
                print(f"  {step:<10} {label:<40} FAILED: {result.get('error')}", flush=True)
        return result


def _stage_summary(result: dict[str, Any]) -> dict[str, Any]:
    keep = ("ok", "seconds", "cpu_seconds", "import_seconds", "process_seconds", "peak_rss_mib", "rows_in",
            "rows_out", "load_average", "error")
    out = {k: result[k] for k in keep if k in result}
    if result.get("ok") and result.get("seconds"):
        out["rows_per_second"] = round(max(result.get("rows_in", 0), result.get("rows_out", 0)) / result["seconds"])
    for key in ("timings", "suite_engine", "valid", "failure", "files", "payload_bytes", "tables", "rejected",
                "great_expectations_imported", "requests", "bytes", "resources", "max_concurrency", "pull_seconds"):
        if key in result:
            out[key] = result[key]
    return out


# --------------------------------------------------------------------------------------------------------------------
# one size


def run_size(size: str, args: argparse.Namespace, runner: Runner, profiles: list[dict[str, Any]]) -> dict[str, Any]:
    import sqlalchemy as sa

    students = students_for(size)
    admin = sa.create_engine(args.admin_url, isolation_level="AUTOCOMMIT")
    url = sa.engine.make_url(args.admin_url).set(database=args.db).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{args.db}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{args.db}"'))
    print(f"\n== {size_label(size)}: {students:,} students (database {args.db})", flush=True)
    try:
        common = {"url": url, "as_of": args.as_of, "school_year": args.school_year}
        loaded = runner("load", students=students, seed=args.seed, **common)
        if not loaded.get("ok"):
            raise SystemExit(f"loading the demo district failed: {loaded.get('error')}")
        result: dict[str, Any] = {
            "size": size_label(size), "students": students, "sis_rows": loaded["tables"],
            "postgres": loaded.get("postgres"), "generate_seconds": loaded["generate_seconds"],
            "load_seconds": loaded["load_seconds"], "vendors": {},
        }
        copy1 = measure("floor_copy", {"connections": 1, **common})
        print(f"  floor COPY 1 connection {copy1['seconds']:8.2f} s", flush=True)
        night = Path(args.work) / "runs" / result["size"]
        shutil.rmtree(night, ignore_errors=True)
        shared = night / "_snapshot"
        result["snapshot"] = _stage_summary(runner("snapshot", root=str(shared), **common))
        result["floor"] = {"copy_seconds_1_connection": copy1["seconds"], "copy_bytes": copy1.get("bytes"),
                           "copy_rows": result["snapshot"].get("rows_out")}
        if not result["snapshot"].get("ok"):
            raise SystemExit(f"the snapshot failed: {result['snapshot'].get('error')}")
        for profile in profiles:
            name = profile["name"]
            root = night / name
            _link_snapshot(shared / "snapshot", root / "snapshot")
            stages: dict[str, Any] = {}
            for stage in STAGES:
                stages[stage] = _stage_summary(runner(stage, vendor=name, root=str(root), **common))
                if not stages[stage].get("ok"):
                    break
            vendor: dict[str, Any] = {"format": profile.get("format"), "stages": stages, "notes": []}
            if all(stages.get(s, {}).get("ok") for s in STAGES):
                _record_delivery(name, root, args)
            if profile.get("format") == "subgroups":
                vendor["notes"].append(
                    f"validated against {profile.get('subgroups', {}).get('student_ids_from')}'s payload of this "
                    "run, recorded as delivered in the bench's own state folder (nothing is sent)")
            result["vendors"][name] = vendor
        _summarise(result)
        if result["size"] in args.api_sizes or size in args.api_sizes:
            result["api_sources"] = api_sources(result, args, runner, shared, night)
        if not args.keep:
            shutil.rmtree(night, ignore_errors=True)
        return result
    finally:
        if not args.keep:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{args.db}" WITH (FORCE)'))
        admin.dispose()


def _link_snapshot(source: Path, target: Path) -> None:
    """A vendor run's view of the night's snapshot: hard links, as the vendor DAGs take it from the store."""
    target.mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():
        if path.is_file():
            os.link(path, target / path.name)


def api_sources(result: dict[str, Any], args: argparse.Namespace, runner: Runner, shared: Path,
                night: Path) -> dict[str, Any]:
    """Each API source through its stand-in with added latency: default concurrency, then one request at a time;
    then every vendor's files from its snapshot against the sql_model's."""
    from bench.standin import StandinProcess

    latency = args.api_latency_ms / 1000
    common = {"as_of": args.as_of, "school_year": args.school_year}
    print(f"  API sources through their stand-ins, {args.api_latency_ms:g} ms added per request", flush=True)
    reference = runner("digests", root=str(shared), **common)
    out: dict[str, Any] = {"latency_ms": args.api_latency_ms}
    for source in API_SOURCES:
        entry: dict[str, Any] = {}
        try:
            with StandinProcess(source, students=result["students"], seed=args.seed, school_year=args.school_year,
                                latency_s=latency) as connection:
                for label, concurrency in (("default", None), ("sequential", 1)):
                    root = night / f"_{source}_{label}"
                    entry[label] = _stage_summary(runner("api_snapshot", source=source, connection=connection,
                                                         max_concurrency=concurrency, root=str(root), **common))
                    if not entry[label].get("ok"):
                        break
        except Exception as error:  # noqa: BLE001 - reported, the bench goes on
            entry["error"] = f"{type(error).__name__}: {error}"
        default, sequential = entry.get("default", {}), entry.get("sequential", {})
        if default.get("ok") and sequential.get("ok"):
            entry["speedup"] = sequential["seconds"] / default["seconds"]  # the whole snapshot task
            entry["pull_speedup"] = sequential["pull_seconds"] / default["pull_seconds"]  # the HTTP reading
            built = runner("digests", root=str(night / f"_{source}_default"), **common)
            if built.get("ok") and reference.get("ok"):
                entry["identical_files"], entry["differing_files"] = _compare(reference["digests"], built["digests"])
            print(f"    {source:<12} {default['requests']:,} requests, {default['bytes'] / 1e6:,.1f} MB: pull "
                  f"{default['pull_seconds']:.1f} s at concurrency {default.get('max_concurrency')}, "
                  f"{sequential['pull_seconds']:.1f} s one at a time -> {entry['pull_speedup']:.1f}x (snapshot "
                  f"{default['seconds']:.1f} s vs {sequential['seconds']:.1f} s); vendor files identical: "
                  f"{entry.get('identical_files')}", flush=True)
        out[source] = entry
    return out


def _compare(expected: dict[str, dict[str, str]], actual: dict[str, dict[str, str]]) -> tuple[int, list[str]]:
    names = {(v, f) for v, files in expected.items() for f in files} | {(v, f) for v, files in actual.items()
                                                                          for f in files}
    differing = sorted(f"{v}/{f}" for v, f in names if expected.get(v, {}).get(f) != actual.get(v, {}).get(f))
    return len(names) - len(differing), differing


def _record_delivery(vendor: str, root: Path, args: argparse.Namespace) -> None:
    """The payload as a successful delivery would leave it (record + kept copy), in the bench's state folder."""
    from rostering.delivery.records import record_delivery

    files = sorted(p for p in (root / "payload").iterdir() if p.is_file())
    import hashlib

    checksums = {}
    for path in files:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        checksums[path.name] = digest.hexdigest()
    record_delivery(vendor=vendor, destination="bench (not sent)", run_id=f"bench_{root.parent.name}",
                    as_of_date=args.as_of, files=files, checksums=checksums, base=Path(args.work) / "state")


def _summarise(result: dict[str, Any]) -> None:
    total = 0.0
    peak = 0.0
    snapshot = result["snapshot"]
    for vendor in result["vendors"].values():
        stages = vendor["stages"]
        complete = all(stages.get(s, {}).get("ok") for s in STAGES)
        vendor["complete"] = complete
        if not complete:
            continue
        seconds = sum(stages[s]["seconds"] for s in STAGES)
        vendor["total_seconds"] = seconds
        vendor["total_cpu_seconds"] = sum(stages[s]["cpu_seconds"] for s in STAGES)
        vendor["total_process_seconds"] = sum(stages[s]["process_seconds"] for s in STAGES)
        vendor["peak_rss_mib"] = max(stages[s]["peak_rss_mib"] for s in STAGES)
        # what this vendor alone took before the shared snapshot: its own extract (= a snapshot) + its stages
        vendor["own_snapshot_seconds"] = snapshot["seconds"] + seconds
        engine = stages["validate"].get("suite_engine") or {}
        gx = float(engine.get("gx_seconds", 0.0))
        columnar = float(engine.get("columnar_seconds", 0.0))
        vendor["gx_seconds"] = gx
        vendor["suite_check_seconds"] = gx + columnar
        vendor["gx_share"] = gx / seconds if seconds else None
        vendor["suite_check_share"] = (gx + columnar) / seconds if seconds else None
        total += seconds
        peak = max(peak, vendor["peak_rss_mib"])
    result["vendors_seconds"] = total
    result["nightly_total_seconds"] = snapshot["seconds"] + total
    result["each_vendor_own_snapshot_seconds"] = sum(v.get("own_snapshot_seconds", 0) for v in
                                                     result["vendors"].values())
    result["snapshot_peak_rss_mib"] = snapshot["peak_rss_mib"]
    result["max_task_peak_rss_mib"] = max(peak, snapshot["peak_rss_mib"])


# --------------------------------------------------------------------------------------------------------------------
# DAG parse


def task_imports(work: Path, env: dict[str, str]) -> dict[str, float]:
    """Import cost of a fresh task process, measured once (each Airflow task pays it; stage times do not include
    it when stages are forked from a loaded server)."""
    result = Runner(work, env, isolation="process", preload_airflow=False, verbose=False)("imports")
    return result.get("import_seconds_by_module", {})


def dag_parse(work: Path, env: dict[str, str]) -> dict[str, Any]:
    print("\n== DAG files (the DAG processor's parse, one fresh process per file, Airflow preloaded)", flush=True)
    runner = Runner(work, env, isolation="process", preload_airflow=True, verbose=False)
    out = {}
    for path in sorted((REPO / "dags").glob("*.py")):
        result = runner("dag_parse", dag_file=str(path))
        out[path.name] = {"parse_seconds": result.get("parse_seconds"), "ok": bool(result.get("ok")) and not
                          result.get("import_errors"), "dags": result.get("dags"),
                          "process_seconds": result.get("process_seconds"), "error": result.get("error")}
        if result.get("ok"):
            print(f"    {path.name:<32} {result['parse_seconds']:.3f} s", flush=True)
    return out


# --------------------------------------------------------------------------------------------------------------------
# targets and the printed table


def evaluate_targets(results: dict[str, Any]) -> dict[str, Any]:
    sizes = {s["size"]: s for s in results["sizes"]}
    checked = sizes.get(TARGET_SIZE) or (results["sizes"][-1] if results["sizes"] else None)
    out: dict[str, Any] = {"size": checked["size"] if checked else None, "targets": TARGETS,
                           "binding": bool(checked and checked["size"] == TARGET_SIZE)}
    if checked:
        vendors = {n: v for n, v in checked["vendors"].items() if v.get("complete")}
        out["all_vendors_complete"] = len(vendors) == len(checked["vendors"])
        out["nightly_total_seconds"] = {"value": checked["nightly_total_seconds"],
                                        "met": checked["nightly_total_seconds"] < TARGETS["nightly_total_seconds"]}
        out["snapshot_peak_rss_mib"] = {"value": checked["snapshot_peak_rss_mib"],
                                        "met": checked["snapshot_peak_rss_mib"] < TARGETS["snapshot_peak_rss_mib"]}
        out["gx_share"] = {n: {"value": v.get("gx_share"), "suite_check_share": v.get("suite_check_share"),
                               "met": (v.get("suite_check_share") or 0) <= TARGETS["gx_share"]}
                           for n, v in vendors.items()}
    api = next((s for s in results["sizes"] if s.get("api_sources")), None)
    if api:
        out["api_size"] = api["size"]
        out["api_speedup"] = {source: {"value": api["api_sources"][source].get("pull_speedup"),
                                       "snapshot_speedup": api["api_sources"][source].get("speedup"),
                                       "met": (api["api_sources"][source].get("pull_speedup") or 0)
                                       >= TARGETS["api_speedup"]}
                              for source in API_SOURCES}
        out["same_files_every_source"] = {source: {"differing": api["api_sources"][source].get("differing_files"),
                                                   "met": api["api_sources"][source].get("differing_files") == []}
                                          for source in API_SOURCES}
    parse = results.get("dag_parse") or {}
    out["dag_parse_seconds"] = {n: {"value": p.get("parse_seconds"),
                                    "met": bool(p.get("ok")) and (p.get("parse_seconds") or 99) < TARGETS[
                                        "dag_parse_seconds"]} for n, p in parse.items()}
    return out


def table(results: dict[str, Any]) -> str:
    lines = ["| size | vendor | stage | wall s | CPU s | peak RSS MiB | rows in | rows out | rows/s |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]

    def row(size: str, name: str, stage: str, s: dict[str, Any]) -> str:
        if not s.get("ok"):
            return f"| {size} | {name} | {stage} | failed: {s.get('error', '')[:60]} |||||| "
        return (f"| {size} | {name} | {stage} | {s['seconds']:.2f} | {s['cpu_seconds']:.2f} | {s['peak_rss_mib']:.0f} "
                f"| {s['rows_in']:,} | {s['rows_out']:,} | {s.get('rows_per_second', 0):,} |")

    for size in results["sizes"]:
        lines.append(row(size["size"], "(all)", "snapshot", size["snapshot"]))
        for name, vendor in size["vendors"].items():
            lines += [row(size["size"], name, stage, vendor["stages"][stage]) for stage in STAGES
                      if stage in vendor["stages"]]
    lines += ["", "| size | vendor | on the shared snapshot s | with its own snapshot s (before) | GX s | suite checks s "
              "(share) | peak RSS MiB |", "|---|---|---:|---:|---:|---:|---:|"]
    for size in results["sizes"]:
        lines.append(f"| {size['size']} | snapshot (once a night) | {size['snapshot']['seconds']:.1f} | | | | "
                     f"{size['snapshot']['peak_rss_mib']:.0f} |")
        for name, v in size["vendors"].items():
            if not v.get("complete"):
                lines.append(f"| {size['size']} | {name} | incomplete |||||")
                continue
            lines.append(f"| {size['size']} | {name} | {v['total_seconds']:.1f} | {v['own_snapshot_seconds']:.1f} | "
                         f"{v['gx_seconds']:.1f} | {v['suite_check_seconds']:.1f} ({100 * v['suite_check_share']:.0f} %) "
                         f"| {v['peak_rss_mib']:.0f} |")
        lines.append(f"| {size['size']} | **the night** | **{size['nightly_total_seconds']:.1f}** | "
                     f"{size['each_vendor_own_snapshot_seconds']:.1f} | | COPY floor "
                     f"{size['floor']['copy_seconds_1_connection']:.1f} | **{size['max_task_peak_rss_mib']:.0f}** |")
    for size in results["sizes"]:
        api = size.get("api_sources")
        if not api:
            continue
        lines += ["", f"API sources at {size['size']} ({size['students']:,} students), {api['latency_ms']:g} ms added "
                  "per request:", "",
                  "| source | requests | MB | pull s (default concurrency) | pull s (one at a time) | pull speed-up | "
                  "snapshot s (default / one at a time) | peak RSS MiB | vendor files identical |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
        for source in API_SOURCES:
            entry = api.get(source, {})
            d, q = entry.get("default", {}), entry.get("sequential", {})
            if not (d.get("ok") and q.get("ok")):
                error = entry.get("error") or d.get("error") or q.get("error") or "not run"
                lines.append(f"| {source} | failed: {str(error)[:80]} ||||||||")
                continue
            same = ("all " + str(entry.get("identical_files")) if entry.get("differing_files") == []
                    else f"NO: {entry.get('differing_files')}")
            lines.append(f"| {source} | {d['requests']:,} | {d['bytes'] / 1e6:,.1f} | {d['pull_seconds']:.1f} "
                         f"(x{d.get('max_concurrency')}) | {q['pull_seconds']:.1f} | {entry['pull_speedup']:.1f}x | "
                         f"{d['seconds']:.1f} / {q['seconds']:.1f} | {d['peak_rss_mib']:.0f} | {same} |")
    if results.get("dag_parse"):
        lines += ["", "| DAG file | parse s |", "|---|---:|"]
        lines += [f"| {n} | {p['parse_seconds']:.3f} |" if p.get("parse_seconds") is not None else f"| {n} | failed |"
                  for n, p in results["dag_parse"].items()]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["S", "M", "XL"],
                        help="S (5k students), M (50k), XL (500k) or a number of students (default: S M XL)")
    parser.add_argument("--vendors", nargs="*", default=None, help="vendor profiles (default: all)")
    parser.add_argument("--api-sizes", nargs="*", default=["M"],
                        help="sizes at which the API sources are read through their stand-ins (default: M)")
    parser.add_argument("--api-latency-ms", type=float, default=20.0,
                        help="latency the stand-ins add to every request (default: %(default)s)")
    parser.add_argument("--out", default=str(REPO / "bench" / "results"), help="folder for <name>.json/.png")
    parser.add_argument("--name", default="latest", help="file name stem of the results (default: %(default)s)")
    parser.add_argument("--admin-url", default=os.environ.get("ROSTERING_BENCH_PG_URL", DEFAULT_ADMIN_URL),
                        help="PostgreSQL URL with the right to create databases (default: %(default)s)")
    parser.add_argument("--db", default=DEFAULT_DB, help="the bench database, dropped and re-created per size")
    parser.add_argument("--school-year", type=int, default=2027)
    parser.add_argument("--as-of", default=None, help="YYYY-MM-DD (default: February 1 of the school year)")
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument("--work", default=None, help="scratch folder (default: a temporary folder, removed)")
    parser.add_argument("--keep", action="store_true", help="keep the database and the scratch folder")
    parser.add_argument("--no-dag-parse", action="store_true", help="skip the DAG parse measurement")
    parser.add_argument("--no-import-cost", action="store_true",
                        help="skip measuring a fresh task process's imports")
    parser.add_argument("--isolation", choices=("fork", "process"), default="fork",
                        help="fork: each stage in a process forked from a server with the libraries loaded, as an "
                        "executor runs tasks (default); process: a fresh interpreter per stage (imports included)")
    parser.add_argument("--no-airflow-preload", dest="airflow_preload", action="store_false",
                        help="stage processes without the Airflow task SDK loaded first (a connection lookup then "
                        "pays the Airflow import inside the stage)")
    parser.add_argument("--no-chart", action="store_true", help="JSON only")
    args = parser.parse_args(argv)
    if args.db in ("postgres", "test", "template0", "template1"):
        parser.error(f"--db {args.db}: the bench drops its database; use a dedicated one")
    args.as_of = args.as_of or f"{args.school_year}-02-01"
    for size in args.sizes:
        try:
            students_for(size)
        except ValueError:
            parser.error(f"--sizes: {size!r} is not S, M, XL or a number")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    profiles = vendor_profiles(args.vendors)
    scratch = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="rostering_bench_"))
    scratch.mkdir(parents=True, exist_ok=True)
    scratch.chmod(0o700)
    args.work = str(scratch)
    runner = Runner(scratch, child_environment(scratch, profiles), isolation=args.isolation,
                    preload_airflow=args.airflow_preload)
    results: dict[str, Any] = {
        "generated_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(), "as_of_date": args.as_of, "school_year": args.school_year, "seed": args.seed,
        "vendors": [p["name"] for p in profiles], "stages": list(STAGES), "sizes": [],
    }
    try:
        for size in args.sizes:
            results["sizes"].append(run_size(size, args, runner, profiles))
        results["task_imports_seconds"] = {} if args.no_import_cost else task_imports(scratch, runner.env)
        results["dag_parse"] = {} if args.no_dag_parse else dag_parse(scratch, runner.env)
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    results["targets"] = evaluate_targets(results)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / f"{args.name}.json"
    json_path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print("\n" + table(results) + "\n")
    print(f"results: {json_path}")
    if not args.no_chart:
        from bench.chart import draw

        print(f"chart:   {draw(results, out / f'{args.name}.png')}")
    return results
