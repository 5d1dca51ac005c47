"""The rostering benchmark: demo district at a size -> PostgreSQL -> every vendor's build, per stage, against a floor.

    python -m bench [--sizes S M XL] [--out bench/results] [--admin-url postgresql+psycopg2://postgres@127.0.0.1/postgres]

For each size: a dedicated database (``rostering_bench``, dropped and re-created, never ``test``/``postgres``'s
tables) gets the demo district (``rostering.sis.demo``); then for every vendor profile in ``config/vendors/*.yaml``
the stages extract -> build -> validate -> package run, each in a process of its own (what an Airflow task is), with
no delivery. Measured per stage: wall and CPU time, peak RSS, rows in and out, rows per second. In the same run, the
floor: PostgreSQL ``COPY``-ing the snapshot queries' rows to a null sink (one connection, and two), and pyarrow
writing each vendor's built rows as CSV; each vendor's time is reported as a ratio of that floor.

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
STAGES = ("extract", "build", "validate", "package")
DEFAULT_ADMIN_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
DEFAULT_DB = "rostering_bench"
TARGETS = {"total_build_seconds": 120.0, "task_peak_rss_mib": 4096.0, "ratio_to_floor": 2.0, "gx_share": 0.30,
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
                "great_expectations_imported"):
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
        vendors = result["vendors"]
        snapshot_rows = None
        copy1 = measure("floor_copy", {"connections": 1, **common})
        print(f"  floor COPY 1 connection {copy1['seconds']:8.2f} s", flush=True)
        for profile in profiles:
            name = profile["name"]
            root = Path(args.work) / "runs" / result["size"] / name
            shutil.rmtree(root, ignore_errors=True)
            # the floor right before the vendor's own run: both see the same load on the machine
            copy2 = measure("floor_copy", {"connections": 2, **common})
            print(f"  floor COPY 2 connections {copy2['seconds']:7.2f} s", flush=True)
            stages: dict[str, Any] = {}
            for stage in STAGES:
                stages[stage] = _stage_summary(runner(stage, vendor=name, root=str(root), **common))
                if not stages[stage].get("ok"):
                    break
            vendor: dict[str, Any] = {"format": profile.get("format"), "stages": stages, "notes": [],
                                      "floor_copy_seconds": copy2["seconds"]}
            if stages["extract"].get("ok"):
                snapshot_rows = stages["extract"]["rows_out"]
            if all(stages.get(s, {}).get("ok") for s in STAGES):
                write = measure("floor_write", {"root": str(root)})
                vendor["floor_write_seconds"] = write.get("seconds")
                vendor["floor_write_rows"] = write.get("rows_out")
                _record_delivery(name, root, args)
            if profile.get("format") == "subgroups":
                vendor["notes"].append(
                    f"validated against {profile.get('subgroups', {}).get('student_ids_from')}'s payload of this "
                    "run, recorded as delivered in the bench's own state folder (nothing is sent)")
            vendors[name] = vendor
            if not args.keep:
                shutil.rmtree(root, ignore_errors=True)
        copies = [v["floor_copy_seconds"] for v in vendors.values()]
        result["floor"] = {
            "copy_seconds_1_connection": copy1["seconds"], "copy_seconds_2_connections": min(copies),
            "copy_seconds_2_connections_per_vendor": {n: v["floor_copy_seconds"] for n, v in vendors.items()},
            "copy_rows": snapshot_rows, "copy_bytes": copy1.get("bytes"),
        }
        _summarise(result)
        return result
    finally:
        if not args.keep:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{args.db}" WITH (FORCE)'))
        admin.dispose()


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
        engine = stages["validate"].get("suite_engine") or {}
        gx = float(engine.get("gx_seconds", 0.0))
        columnar = float(engine.get("columnar_seconds", 0.0))
        vendor["gx_seconds"] = gx
        vendor["suite_check_seconds"] = gx + columnar
        vendor["gx_share"] = gx / seconds if seconds else None
        vendor["suite_check_share"] = (gx + columnar) / seconds if seconds else None
        if vendor.get("floor_write_seconds") is not None:
            # the lower of the two COPY floors (two connections, measured right before this vendor, or one)
            floor = min(vendor["floor_copy_seconds"], result["floor"]["copy_seconds_1_connection"]) + \
                vendor["floor_write_seconds"]
            vendor["floor_seconds"] = floor
            vendor["ratio_to_floor"] = seconds / floor
        total += seconds
        peak = max(peak, vendor["peak_rss_mib"])
    result["total_build_seconds"] = total
    result["max_task_peak_rss_mib"] = peak
    # Today each vendor DAG extracts its own snapshot; with one shared snapshot per night only one extract would run.
    extracts = sorted(v["stages"]["extract"]["seconds"] for v in result["vendors"].values() if v.get("complete"))
    if extracts:
        result["total_build_seconds_one_shared_snapshot"] = total - sum(extracts) + extracts[len(extracts) // 2]


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
        out["total_build_seconds"] = {"value": checked["total_build_seconds"],
                                      "met": checked["total_build_seconds"] < TARGETS["total_build_seconds"]}
        out["task_peak_rss_mib"] = {"value": checked["max_task_peak_rss_mib"],
                                    "met": checked["max_task_peak_rss_mib"] < TARGETS["task_peak_rss_mib"]}
        out["ratio_to_floor"] = {n: {"value": v.get("ratio_to_floor"),
                                     "met": (v.get("ratio_to_floor") or 99) <= TARGETS["ratio_to_floor"]}
                                 for n, v in vendors.items()}
        out["gx_share"] = {n: {"value": v.get("gx_share"), "suite_check_share": v.get("suite_check_share"),
                               "met": (v.get("suite_check_share") or 0) <= TARGETS["gx_share"]}
                           for n, v in vendors.items()}
    parse = results.get("dag_parse") or {}
    out["dag_parse_seconds"] = {n: {"value": p.get("parse_seconds"),
                                    "met": bool(p.get("ok")) and (p.get("parse_seconds") or 99) < TARGETS[
                                        "dag_parse_seconds"]} for n, p in parse.items()}
    return out


def table(results: dict[str, Any]) -> str:
    lines = ["| size | vendor | stage | wall s | CPU s | peak RSS MiB | rows in | rows out | rows/s |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for size in results["sizes"]:
        for name, vendor in size["vendors"].items():
            for stage in STAGES:
                s = vendor["stages"].get(stage)
                if not s:
                    continue
                if not s.get("ok"):
                    lines.append(f"| {size['size']} | {name} | {stage} | failed: {s.get('error', '')[:60]} |||||| ")
                    continue
                lines.append(f"| {size['size']} | {name} | {stage} | {s['seconds']:.2f} | {s['cpu_seconds']:.2f} | "
                             f"{s['peak_rss_mib']:.0f} | {s['rows_in']:,} | {s['rows_out']:,} | "
                             f"{s.get('rows_per_second', 0):,} |")
    lines += ["", "| size | vendor | build s (4 stages) | floor s (COPY + CSV write) | ratio | GX s | suite checks s "
              "(share) | peak RSS MiB |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for size in results["sizes"]:
        for name, v in size["vendors"].items():
            if not v.get("complete"):
                lines.append(f"| {size['size']} | {name} | incomplete ||||||")
                continue
            floor = v.get("floor_seconds")
            lines.append(f"| {size['size']} | {name} | {v['total_seconds']:.1f} | "
                         f"{floor:.1f} | {v.get('ratio_to_floor', 0):.1f}x | {v['gx_seconds']:.1f} | "
                         f"{v['suite_check_seconds']:.1f} ({100 * v['suite_check_share']:.0f} %) | "
                         f"{v['peak_rss_mib']:.0f} |" if floor else
                         f"| {size['size']} | {name} | {v['total_seconds']:.1f} | n/a | n/a | {v['gx_seconds']:.1f} | "
                         f"{v['suite_check_seconds']:.1f} | {v['peak_rss_mib']:.0f} |")
        floor = size.get("floor", {})
        if "total_build_seconds_one_shared_snapshot" in size:
            lines.append(f"| {size['size']} | all, one shared snapshot | "
                         f"{size['total_build_seconds_one_shared_snapshot']:.1f} | | | | | |")
        lines.append(f"| {size['size']} | **all** | **{size['total_build_seconds']:.1f}** | COPY "
                     f"{floor.get('copy_seconds_1_connection') or 0:.1f} (1 conn) / "
                     f"{floor.get('copy_seconds_2_connections') or 0:.1f} (2 conns) | | | | "
                     f"**{size['max_task_peak_rss_mib']:.0f}** |")
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
