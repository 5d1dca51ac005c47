"""
### SIS snapshot — the night's one read of the SIS, shared by every vendor DAG (`rostering.orchestration.snapshot_dag`)

Nightly (`schedule` in `config/sis.yaml`, district time): reads the SIS through the configured source
(`source:` — `sql_model` over connection `sis_db`, `powerschool` over `powerschool_api`, `aeries` over `aeries_api`)
for today's date, runs the input checks, and publishes the snapshot to the snapshot store
(`var/snapshots/<date>/`, owner-only). Then `announce` emits the Airflow Asset `rostering_sis_snapshot` (extra:
as-of date, school year, version, row counts): ST Math and Literably start on it, and every vendor run that day
reads this snapshot instead of the SIS. `prune` (teardown) deletes snapshots older than `retention_days`.

**Params**: `as_of_date` (YYYY-MM-DD, empty = today). A past date replaces that date's stored snapshot (for vendor
backfills, which are dry runs) and does **not** trigger the vendors; re-running today (empty) does.

**When it fails**: nothing is published and no Asset event is emitted, so no vendor DAG runs on a bad read (the
vendors keep what they received last). The `snapshot` task's log says why, without student data: the SIS refused
access (HTTP 401/403/404 on a named resource: the district's API grant or the connection) — final, not retried; the
input checks rejected more than `max_rejected_share` of a table — final, the records to fix (keys and rules, no
values) are in this run's `reports/rejected.csv` under `var/work/sis_snapshot/<run>/`; the SIS was unreachable or a
paged read did not add up — retried twice with backoff. Fix the cause, then clear the failed `snapshot` task (or
trigger this DAG with no params): the vendors start once it publishes. Runbook: `docs/operations.md`.
"""
from rostering.orchestration.snapshot_dag import build_snapshot_dag

dag = build_snapshot_dag(doc_md=__doc__)
