"""
### Rostering operations (Airflow DAG from `rostering.orchestration.operations_dag`)

Operator actions, each with a recorded reason:

- **purge_expired** (also nightly at 05:00): delete kept copies of deliveries and run folders older than
  `retention_days` (default 30). The newest delivery of each vendor is always kept: it is the change guard's baseline.
- **redeliver_last_good**: send `vendor`'s last good delivery again, byte for byte (e.g. the vendor lost it).
- **discard_held**: a held delivery (any hold: the change guard, Derivita's column change ...; the run's
  `reports/held.json`) must not go out: remove run `run_id`'s built files.
  (To *release* a held delivery instead, trigger the vendor's DAG with `approve_changes_reason`.)

**When it fails**: the log says why (unknown vendor, no delivery to re-send, the run is not held, missing reason);
nothing is retried automatically. What was delivered and when: `python -m rostering.operations deliveries`.
Runbook (held deliveries, re-delivery, retention): `docs/operations.md`.
"""
from rostering.orchestration.operations_dag import build_operations_dag

dag = build_operations_dag(doc_md=__doc__)
