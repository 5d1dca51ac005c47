"""
### Morning alarm: every vendor's night delivered by 06:00 (Airflow DAG from `rostering.orchestration.deadline_dag`)

At `deliveries_due` in `config/sis.yaml` (06:00 district time by default) the `check` task looks at what each vendor
holds: the night's roster delivered, or found unchanged. A vendor whose night is missing -- its run failed, was held,
is still running or never started -- fails the task, and the failure mail (`notify:` in `config/sis.yaml`) names
each one. CERS counts only after its own weekly run.

**When it fails**: open the named vendor DAG's newest run; its failed task (or its absence) says why. Runbook:
`docs/operations.md`.
"""
from rostering.orchestration.deadline_dag import build_deadline_dag

dag = build_deadline_dag(doc_md=__doc__)
