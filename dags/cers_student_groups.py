"""
### CERS student groups — group files uploaded to the state's import API (Airflow DAG from `rostering.orchestration.dag_factory`)

On the schedule in `config/vendors/cers.yaml` (Aeries' "scheduled process"; default Fridays 22:30 district time) and
on demand: reads the day's SIS snapshot (the `sis_snapshot` DAG's; made now if it has not run, `config/sis.yaml`),
builds CERS student groups for the selected profiles of `config/cers_profiles.yaml` (PowerSchool's selection
criteria for every roster type: state-reporting exclusions, SSID, enrollment status 10, a CAASPP ELA/Math/ALL
section active today), validates every file against the receiver's rules
(header and order, contiguous rows, ≤ 200 students per group, 14-digit CDS codes, 10-digit SSIDs, e-mail logins,
unique names of ≤ 20 characters without commas), then uploads each file over the CERS API (connection `cers_api`:
OAuth2 password grant) and polls every import until PROCESSED. A record of every extracted file with its row count is
in the run summary and `var/work/cers_student_groups/<run>/reports/`.

**Params**: `profiles` (profile names; empty = those with `include_in_scheduled_run: true`), `consolidate` (one file
for all profiles instead of one file per school), `schools` (a subset is delivered: CERS only replaces the groups a
file names), `as_of_date` (YYYY-MM-DD, empty = today), `dry_run` (build + validate, keep the files to view and
download under `var/work/cers_student_groups/<run>/payload/`, upload nothing), `force`.

**When it fails**: the failed task's log says why, with no student data. `validate`: file, line, column and rule — fix
the SIS record or the profile, then clear the run. `deliver`: `invalid_client` / `invalid_grant` or a second 401 =
the TOMS credentials in connection `cers_api` (renewed yearly, docs/cers.md); 403 = the system user lacks
group-write permission for a school. `confirm_delivery` (waits for the imports, rescheduled between checks):
`BAD_DATA` etc. = the receiver's `Row: N Failure: …` lines are in the log and in `reports/cers_imports.json` (the
files it PROCESSED are recorded as delivered); a time-out = the receiver is still processing: clear the task to
resume waiting. 5xx, 429 and time-outs are retried with backoff; a retried task skips files the receiver already
PROCESSED in this run. Results are e-mailed to `notify.email`. Runbook: `docs/cers.md`.

**When it is held**: the change guard stopped the delivery (more than 10 % of an entity deleted, 25 % added or
75 % updated, 20 % deleted over 7 days, or a school left without students): `deliver` fails with "delivery HELD", nothing is sent (CERS keeps the previous
delivery) and the alert e-mail says HELD. Look at the run's `reports/report.html` (changes per entity and per
school). A real change: trigger again with `approve_changes_reason` and `approve_held_run_id` = this run's id
(kept in the delivery record; held again if the data changed). Wrong data: fix the
SIS, then `rostering_operations` with `discard_held` and this run's id. Every run's report: `reports/report.html` in
`var/work/cers_student_groups/<run>/`, its path in the `summary` task's return value. Runbook: `docs/operations.md`.
"""
from rostering.orchestration.dag_factory import build_vendor_dag

dag = build_vendor_dag("cers", doc_md=__doc__)
