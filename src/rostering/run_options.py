"""A run's options, resolved from the DAG's trigger params and the run time (pure; tested without Airflow)."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Mapping
from zoneinfo import ZoneInfo

from rostering.sis.extract import school_year_for


@dataclass(frozen=True)
class RunOptions:
    as_of: dt.date
    school_year: int
    dry_run: bool
    force: bool
    schools: tuple[str, ...]
    extra: Mapping[str, Any] = field(default_factory=dict)  # the vendor's own params (declared in its YAML)
    approval_reason: str = ""  # a person's reason for delivering despite the change guard (kept in the record)
    approved_run_id: str = ""  # the held run that reason releases: the approval holds only for the same data
    own_date: dt.date | None = None  # the date this run is for (its trigger's); None = as_of
    other_date_reason: str = ""  # a person's reason to deliver a roster built for another date than own_date

    STANDARD = ("as_of_date", "school_year", "schools", "dry_run", "force", "approve_changes_reason",
                "approve_held_run_id", "deliver_other_date_reason")

    @classmethod
    def from_params(cls, params: Mapping[str, Any], *, run_after: dt.datetime, timezone: str,
                    own_date: dt.date | None = None) -> "RunOptions":
        """``as_of_date`` param if given (backfills, "what would we have sent"), else the run's own date.

        ``own_date``: the date the run's trigger names (an Asset event's ``as_of_date``: a snapshot finished after
        midnight is still that night's); default: the run's date in the district.
        """
        own = own_date or run_after.astimezone(ZoneInfo(timezone)).date()
        raw = str(params.get("as_of_date") or "").strip()
        if raw:
            try:
                as_of = dt.date.fromisoformat(raw)
            except ValueError:
                raise ValueError(f"as_of_date must be YYYY-MM-DD, got {raw!r}") from None
        else:
            as_of = own
        school_year = int(params.get("school_year") or school_year_for(as_of))
        schools = tuple(sorted({str(s).strip() for s in params.get("schools") or () if str(s).strip()}))
        extra = {k: v for k, v in params.items() if k not in cls.STANDARD}
        return cls(as_of, school_year, bool(params.get("dry_run")), bool(params.get("force")), schools, extra,
                   _text(params, "approve_changes_reason"), _text(params, "approve_held_run_id"), own,
                   _text(params, "deliver_other_date_reason"))

    def delivery_blocked_reason(self, *, replaces_everything: bool = True) -> str | None:
        """Why this run must not deliver, or None.

        Bulk receivers (OneRoster) replace everything they hold with what we send, so a package built for a subset
        of schools would deprovision every other school: such runs build and validate only. Receivers that replace
        only what a file names (CERS groups) may take a subset. A roster built for another date than the run's own
        (a backfill, a future date) would replace today's at the receiver and become the guard's baseline: it is
        built and validated only, unless a person gives a reason to send it.
        """
        if self.dry_run:
            return "dry run: built and validated, not delivered"
        if self.schools and replaces_everything:
            return "run limited to some schools: a partial bulk package would deprovision the others, not delivered"
        if self.own_date is not None and self.as_of != self.own_date and not self.other_date_reason:
            return (f"built as of {self.as_of}, not this run's date ({self.own_date}): the receiver would replace "
                    "today's roster with it, not delivered (deliver_other_date_reason sends it anyway)")
        return None

    def approval_note(self, *, approved: bool) -> str:
        """What the delivery record keeps about the people's decisions behind this delivery ("" when none).
        ``approved``: the change guard released a hold with this run's approval (else the reason was not needed)."""
        notes = []
        if approved:
            notes.append(f"changes approved (held run {self.approved_run_id}): {self.approval_reason}")
        if self.other_date_reason and self.own_date is not None and self.as_of != self.own_date:
            notes.append(f"delivered as of {self.as_of} on {self.own_date}: {self.other_date_reason}")
        return "; ".join(notes)


def _text(params: Mapping[str, Any], name: str) -> str:
    return str(params.get(name) or "").strip()
