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

    STANDARD = ("as_of_date", "school_year", "schools", "dry_run", "force", "approve_changes_reason")

    @classmethod
    def from_params(cls, params: Mapping[str, Any], *, run_after: dt.datetime, timezone: str) -> "RunOptions":
        """``as_of_date`` param if given (backfills, "what would we have sent"), else the run's date in the district."""
        raw = str(params.get("as_of_date") or "").strip()
        if raw:
            try:
                as_of = dt.date.fromisoformat(raw)
            except ValueError:
                raise ValueError(f"as_of_date must be YYYY-MM-DD, got {raw!r}") from None
        else:
            as_of = run_after.astimezone(ZoneInfo(timezone)).date()
        school_year = int(params.get("school_year") or school_year_for(as_of))
        schools = tuple(sorted({str(s).strip() for s in params.get("schools") or () if str(s).strip()}))
        extra = {k: v for k, v in params.items() if k not in cls.STANDARD}
        approval = str(params.get("approve_changes_reason") or "").strip()
        return cls(as_of, school_year, bool(params.get("dry_run")), bool(params.get("force")), schools, extra,
                   approval)

    def delivery_blocked_reason(self, *, replaces_everything: bool = True) -> str | None:
        """Why this run must not deliver, or None.

        Bulk receivers (OneRoster) replace everything they hold with what we send, so a package built for a subset
        of schools would deprovision every other school: such runs build and validate only. Receivers that replace
        only what a file names (CERS groups) may take a subset.
        """
        if self.dry_run:
            return "dry run: built and validated, not delivered"
        if self.schools and replaces_everything:
            return "run limited to some schools: a partial bulk package would deprovision the others, not delivered"
        return None
