"""The benchmark harness (bench/, ``make bench``) end to end at size S (5,000 students): a smoke test, not a timed assertion.

The night's snapshot, every vendor profile and every stage must be in the results with sane numbers, the API sources
must be read through their stand-ins (default concurrency and one at a time) and give the same vendor files, and
the chart must be drawn. The bench creates (and drops) its own database next to the session's test database.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[1]
STAGES = ("build", "validate", "package")


@pytest.mark.postgres
def test_bench_runs_every_vendor_and_stage(postgres_url, tmp_path):
    database = sa.engine.make_url(postgres_url).database
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--sizes", "S", "--admin-url", postgres_url, "--db", f"{database}_bench",
         "--out", str(out), "--name", "smoke", "--no-dag-parse", "--no-import-cost", "--api-sizes", "S",
         "--api-latency-ms", "2"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads((out / "smoke.json").read_text())
    assert (out / "smoke.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    vendors = {p.stem for p in (REPO / "config" / "vendors").glob("*.yaml")}
    assert set(results["vendors"]) == vendors
    (size,) = results["sizes"]
    assert size["students"] == 5000 and sum(size["sis_rows"].values()) > 5000
    assert set(size["vendors"]) == vendors
    for name, vendor in size["vendors"].items():
        assert vendor["complete"], (name, {s: v.get("error") for s, v in vendor["stages"].items()})
        for stage in STAGES:
            numbers = vendor["stages"][stage]
            assert numbers["ok"], (name, stage, numbers.get("error"))
            for key in ("seconds", "cpu_seconds", "process_seconds", "peak_rss_mib", "rows_in", "rows_out",
                        "rows_per_second"):
                assert numbers[key] > 0, (name, stage, key, numbers[key])
        assert vendor["stages"]["validate"]["valid"], (name, vendor["stages"]["validate"].get("failure"))
        assert vendor["total_seconds"] > 0 and vendor["peak_rss_mib"] > 0
        assert vendor["own_snapshot_seconds"] > vendor["total_seconds"]
        assert 0 <= vendor["suite_check_share"] < 1 and vendor["gx_seconds"] >= 0
    snapshot = size["snapshot"]
    assert snapshot["ok"] and snapshot["rows_out"] > 5000 and snapshot["peak_rss_mib"] > 0
    assert size["nightly_total_seconds"] == pytest.approx(snapshot["seconds"] + sum(
        v["total_seconds"] for v in size["vendors"].values()))
    assert size["floor"]["copy_seconds_1_connection"] > 0 and size["floor"]["copy_rows"] > 0
    for source in ("powerschool", "aeries"):
        api = size["api_sources"][source]
        assert api["default"]["ok"] and api["sequential"]["ok"], api
        assert api["default"]["requests"] == api["sequential"]["requests"] > 5
        assert api["default"]["bytes"] > 0 and api["speedup"] > 0 and api["pull_speedup"] > 0
        assert 0 < api["default"]["pull_seconds"] < api["default"]["seconds"]
        assert api["differing_files"] == [] and api["identical_files"] > 10, api.get("differing_files")
    assert results["targets"]["size"] == "S" and not results["targets"]["binding"]
    assert results["targets"]["api_size"] == "S"

    admin = sa.create_engine(postgres_url)
    with admin.connect() as conn:  # the bench dropped its database
        assert conn.execute(sa.text("SELECT count(*) FROM pg_database WHERE datname = :n"),
                            {"n": f"{database}_bench"}).scalar() == 0
    admin.dispose()
