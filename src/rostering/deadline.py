"""The morning alarm: which vendors' night has not reached them by the district's deadline (``deliveries_due`` in
config/sis.yaml, 06:00 by default).

A vendor's night counts as done when its deliver task either delivered the roster of that night or found the
receiver already holds it (unchanged, or sent earlier that day). The deliver task notes that outcome here
(``note_outcome``); the ``rostering_deadline`` DAG compares the notes with the nights that were due (``missed``).
A failed, held, never-started or still-running night has no note, so every way of missing the morning shows -- the
failure mails cover the failures they see, this covers the ones nobody saw (a scheduler down, a run stuck).
"""
from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from zoneinfo import ZoneInfo

from rostering.paths import state_dir

OUTCOMES = "outcomes"  # <state>/outcomes/<vendor>.json: the newest night that reached the vendor


def note_outcome(vendor: str, *, night: dt.date, outcome: str, base: Path | None = None) -> None:
    """Remember that ``vendor`` holds the roster of ``night`` (``delivered`` or ``unchanged``). Never goes back."""
    folder = (base or state_dir()) / OUTCOMES
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / f"{vendor}.json"
    newest = latest_night(vendor, base=base)
    if newest and newest > night:
        return  # a backfill sent with a reason does not make an older night the newest
    tmp = folder / f".{vendor}.json.tmp"
    tmp.write_text(json.dumps({"night": night.isoformat(), "outcome": outcome,
                               "at": dt.datetime.now(dt.timezone.utc).isoformat()}))
    tmp.chmod(0o600)
    os.replace(tmp, path)


def latest_night(vendor: str, *, base: Path | None = None) -> dt.date | None:
    path = (base or state_dir()) / OUTCOMES / f"{vendor}.json"
    try:
        return dt.date.fromisoformat(json.loads(path.read_text())["night"])
    except (OSError, ValueError, KeyError):
        return None


def due_night(cron: str, *, deadline: dt.datetime, timezone: str) -> dt.date | None:
    """The date of the night that was due by ``deadline``: the last time ``cron`` fired in the 24 hours before it
    (district time), or None when it did not fire (CERS on any day but its own)."""
    from croniter import croniter

    zone = ZoneInfo(timezone)
    local = deadline.astimezone(zone)
    fired = croniter(cron, local).get_prev(dt.datetime)
    return fired.date() if fired > local - dt.timedelta(hours=24) else None


def missed(profiles: list, *, sis_schedule: str, deadline: dt.datetime, timezone: str,
           base: Path | None = None) -> list[str]:
    """Lines naming each vendor whose due night has not reached it (empty: all on time)."""
    lines = []
    for profile in profiles:
        cron = sis_schedule if profile.on_snapshot or profile.after else profile.schedule
        if not cron:
            continue  # on demand only: nothing is due
        night = due_night(cron, deadline=deadline, timezone=timezone)
        if night is None:
            continue
        have = latest_night(profile.name, base=base)
        if have is None or have < night:
            lines.append(f"{profile.title} ({profile.dag_id}): the roster of {night} has not reached it "
                         f"(newest: {have or 'none'})")
    return lines
