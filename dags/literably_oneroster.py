"""
### Literably — OneRoster 1.1 over SFTP (Airflow DAG from `rostering.orchestration.dag_factory`)

Nightly, as soon as the SIS snapshot is published (`sis_snapshot` DAG, Asset `rostering_sis_snapshot`): reads that
snapshot (the night's one read of the SIS, `config/sis.yaml`) as of its date, builds Literably's five OneRoster files
(orgs, users, classes, courses, enrollments) with its extension columns (`metadata.literably.ELL`, `.homeLanguage`,
`.initialLevel`, `.levelImputed`; orgs `metadata.classification`), validates them (Great Expectations suites in
`include/expectations/` plus cross-file checks) and uploads them to the login's home folder over SFTP (connection
`literably_sftp`, host key pinned), each under a temporary name renamed into place. Staff passwords come from the
`literably_staff_password` connection and are never logged. Users whose id or username collides (ignoring case)
with another's are withheld and listed by SIS key in the run's `reports/withheld.csv`.

**Params**: `as_of_date` (YYYY-MM-DD, empty = today), `schools` (subset: build only, never delivered),
`dry_run` (build + validate, no upload), `force` (send even if unchanged since the last delivery),
`approve_changes_reason` + `approve_held_run_id` (release a held run), `deliver_other_date_reason` (send
a roster whose `as_of_date` is not the run's date: otherwise built, not delivered).

**When it fails**: the failed task's log says why. `validate` lists file, line, column and rule (no student data):
fix the SIS record or the mapping, then clear the run. `deliver` failures on host key or password are permanent —
check the `literably_sftp` connection; network errors are retried with backoff. Nothing partial is ever uploaded.
Configuration: `config/vendors/literably.yaml`. Runbook: `docs/operations.md`.

**When it is held**: the change guard stopped the delivery (more than 10 % of an entity deleted, 25 % added or
75 % updated, 20 % deleted over 7 days, or a school left without students): `deliver` fails with "delivery HELD", nothing is sent (Literably keeps the previous
delivery) and the alert e-mail says HELD. Look at the run's `reports/report.html` (changes per entity and per
school). A real change: trigger again with `approve_changes_reason` and `approve_held_run_id` = this run's id
(kept in the delivery record; held again if the data changed). Wrong data: fix the
SIS, then `rostering_operations` with `discard_held` and this run's id. Every run's report: `reports/report.html` in
`var/work/literably_oneroster/<run>/`, its path in the `summary` task's return value. Runbook: `docs/operations.md`.
"""
from rostering.orchestration.dag_factory import build_vendor_dag

dag = build_vendor_dag("literably", doc_md=__doc__)
