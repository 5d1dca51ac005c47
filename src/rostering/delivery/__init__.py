"""Delivery of built vendor files. ``rostering.delivery.sftp`` is the only place files leave for a vendor's SFTP host.

Uploads are atomic (temporary name in the destination folder, size check, ``posix-rename``), host keys are always
verified, and errors are classified transient or permanent for the retry policy.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: Transports whose receiver confirms a delivery later than the upload (CERS processes each import on its own time),
#: kind -> module: the module also implements ``confirm`` and ``confirm_timing`` (rostering.pipeline), and the
#: vendor DAG waits for the receiver in a reschedule sensor, ``confirm_delivery``, which carries the delivered Asset.
#: Read at DAG parse time: nothing is imported here, and those modules must stay light to import.
CONFIRMED_LATER = {"cers_api": "rostering.delivery.cers_api"}


@dataclass(frozen=True)
class DeliveryRun:
    """The run a delivery belongs to, for transports that keep state across its task's retries (CERS: the upload
    ledger ``<reports>/cers_imports.json`` and the batch ids). Given by the caller, never guessed from the files'
    folder: a re-delivery sends kept copies and must not share their folder, or an earlier delivery's state.

    ``reports``: this delivery's reports folder (a vendor run's ``<run>/reports``; a re-delivery's own
    ``rostering_operations`` run folder). ``key``: what batch ids derive from -- unique per delivery (a new one
    uploads again), the same for every retry of its task (a retry resumes).
    """

    reports: Path
    key: str
