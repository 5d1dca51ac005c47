"""
### Derivita — student subgroups over SFTP (Airflow DAG from `rostering.orchestration.dag_factory`)

Runs after each ST Math delivery (Airflow Asset `rostering_stmath_delivered`; `after: stmath` in the profile) and on
demand. Reads the SIS snapshot of the ST Math run's date (the `sis_snapshot` DAG's, `config/sis.yaml`) and writes
`student_subgroups.csv`: `student_id` — the same id and the same students as the ST Math roster
(`subgroups.student_ids_from`) — then one column per configured subgroup (ELL status, SPED, Title I, 504, GATE,
foster, homeless, SED) from programs active on that date.
Validates it (Great Expectations suite `include/expectations/subgroups.json` + allowed values from the
configuration; every `student_id` must be a student in the last ST Math delivery), compares it with the previous
Derivita delivery, and uploads it to the account's folder over SFTP (connection `derivita_sftp`, host key pinned)
under a temporary name, renamed into place. Then the changes (students added/removed, values that flipped) are kept
beside the delivery record and appended to the audit trail (`python -m rostering.subgroups.audit --student ID`).

**Params**: `as_of_date` (YYYY-MM-DD, empty = today), `schools` (subset: build only, never delivered),
`dry_run` (build + validate, no upload), `force`, `accept_column_change` (deliver although the columns differ from
the previous delivery — only after Derivita has agreed to the new layout).

**When it fails**: the failed task's log says why, without student data. `validate` lists file, line, column and
rule: a value outside a column's configured values, a blank, a duplicate id, or a `student_id` that is not in the
last ST Math delivery (run ST Math first, or fix the id settings — one setting, `student_ids_from`). `deliver`
fails with "delivery held" when the columns differ from the previous delivery (it names the added and removed
columns): agree the layout with Derivita, then trigger again with `accept_column_change=true` — or, if the new
layout is a mistake, discard the run (`rostering_operations`, `discard_held`, this run's id); the previous file
stays in place and nothing is recorded in the audit. Every hold (columns, roster, change guard) is in the run's
`reports/held.json`. Host key or password errors are permanent — check
`derivita_sftp`; network errors are retried with backoff. Configuration: `config/vendors/derivita.yaml`.
Docs: `docs/derivita.md`.

**When it is held**: the change guard stopped the delivery (more than 10 % of an entity deleted, 25 % added or
75 % updated, 20 % deleted over 7 days, or a school left without students): `deliver` fails with "delivery HELD", nothing is sent (Derivita keeps the previous
delivery) and the alert e-mail says HELD. Look at the run's `reports/report.html` (changes per entity and per
school). A real change: trigger again with `approve_changes_reason` and `approve_held_run_id` = this run's id
(kept in the delivery record; held again if the data changed). Wrong data: fix the
SIS, then `rostering_operations` with `discard_held` and this run's id. Every run's report: `reports/report.html` in
`var/work/derivita_subgroups/<run>/`, its path in the `summary` task's return value. Runbook: `docs/operations.md`.
"""
from rostering.orchestration.dag_factory import build_vendor_dag

dag = build_vendor_dag("derivita", doc_md=__doc__)
