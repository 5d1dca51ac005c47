"""A held delivery: one exception any format (or the change guard) raises, and one record of it per run.

A hold means the payload is built and valid but must not be sent yet: a person releases it (the vendor DAG again,
with an approval or the format's own param) or discards it (``rostering_operations``, ``discard_held``). Nothing is
sent, the receiver keeps the previous delivery, and the task is never retried.

- :class:`DeliveryHeld` ``(reason, kind)``: ``kind`` says which check held it -- ``"guard"`` (the change guard,
  rostering.delivery.guard; its :class:`GuardDiff` is in ``diff``), a format's own (Derivita: ``"columns"``,
  ``"roster"``, ``"stale"``) ...
- :func:`record_hold` writes ``reports/held.json`` -- {held, kind, reason, run_id, at, fingerprint} -- the one record
  the alert mail, the run report and ``discard_held`` read.

No heavy imports: formats, the DAG factory and the alert callbacks all import this module.
"""
from __future__ import annotations

import datetime as dt
import json
from typing import Any

HELD_REPORT = "held.json"
GUARD = "guard"


class DeliveryHeld(Exception):
    """The delivery must not be sent yet; a person decides (release or discard). Never retried.

    ``reason`` is the value-free text the task log, the alert and the report show; ``kind`` names the check that
    held it; ``diff`` is the change guard's GuardDiff when ``kind`` is ``"guard"``.
    """

    def __init__(self, reason: str, kind: str, *, diff: Any = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind
        self.diff = diff

    def __reduce__(self):  # picklable with its keyword argument
        return (_rebuild, (self.reason, self.kind, self.diff))


def _rebuild(reason: str, kind: str, diff: Any) -> DeliveryHeld:
    return DeliveryHeld(reason, kind, diff=diff)


def held_error(error: BaseException | None) -> DeliveryHeld | None:
    """The DeliveryHeld behind ``error`` (itself, or the exception it was raised from / while handling), if any."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, DeliveryHeld):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def record_hold(paths: Any, held: DeliveryHeld, run_id: str, *, now: dt.datetime | None = None) -> dict[str, Any]:
    """Write the run's hold record ``reports/held.json`` and return it. A guard hold carries the fingerprint an
    approval must match (from ``reports/guard.json``)."""
    fingerprint = None
    if held.kind == GUARD:
        guard = paths.reports / "guard.json"
        try:
            fingerprint = json.loads(guard.read_text()).get("fingerprint") if guard.exists() else None
        except (OSError, json.JSONDecodeError):
            fingerprint = None
    reasons = list(getattr(held.diff, "reasons", None) or [])
    record = {
        "held": True,
        "kind": held.kind,
        "reason": "; ".join(reasons) if reasons else held.reason,
        "run_id": run_id,
        "at": (now or dt.datetime.now(dt.timezone.utc)).isoformat(),
        "fingerprint": fingerprint,
    }
    paths.write_report(HELD_REPORT, record)
    return record


def clear_hold(paths: Any) -> None:
    """The run passed its checks now (a cleared deliver task after the cause went away): an earlier attempt's hold
    record no longer says what happened to the run, so it goes (the report and discard_held read it)."""
    (paths.reports / HELD_REPORT).unlink(missing_ok=True)


def read_hold(paths: Any) -> dict[str, Any] | None:
    """The run's hold record, or None when the run was not held (or the record is unreadable)."""
    path = paths.reports / HELD_REPORT
    try:
        record = json.loads(path.read_text()) if path.exists() else None
    except (OSError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) and record.get("held") else None
