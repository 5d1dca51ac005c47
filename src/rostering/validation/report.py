"""Validation findings and the report that collects them.

A finding names a file, a rule, a column and 1-based line numbers of the CSV file (header = line 1, first data row =
line 2). It never carries a data value: messages are fixed, generic texts written in this code base, so a report can
be logged, mailed and attached to a ticket without exposing children's data.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MAX_ROWS = 20
"""How many line numbers a finding keeps; ``Finding.count`` has the total."""


@dataclass(frozen=True)
class Finding:
    """One broken rule in one file (and column), with the first offending line numbers.

    ``rows`` holds at most :data:`MAX_ROWS` line numbers, ascending; ``count`` is the number of offending rows in all
    (``len(rows)`` when not given). File-level findings (a missing file, a manifest property) have no rows.
    """

    file: str
    rule: str
    column: str | None
    rows: tuple[int, ...] = ()
    count: int | None = None
    message: str = ""

    def __post_init__(self) -> None:
        rows = tuple(sorted(int(r) for r in self.rows))
        count = len(rows) if self.count is None else int(self.count)
        object.__setattr__(self, "rows", rows[:MAX_ROWS])
        object.__setattr__(self, "count", max(count, len(rows)))

    @classmethod
    def at(cls, file: str, rule: str, column: str | None, lines: Iterable[int], message: str,
           count: int | None = None) -> Finding:
        """A finding for all ``lines`` (any iterable or numpy array); keeps the first 20 and counts the rest."""
        array = np.unique(np.asarray(list(lines) if not isinstance(lines, np.ndarray) else lines, dtype=np.int64))
        return cls(file, rule, column, tuple(int(x) for x in array[:MAX_ROWS]),
                   int(array.size) if count is None else count, message)

    def location(self) -> str:
        if not self.rows:
            return self.file
        shown = ", ".join(str(r) for r in self.rows)
        more = f" (+{self.count - len(self.rows)} more)" if self.count > len(self.rows) else ""
        return f"{self.file} line{'s' if self.count > 1 else ''} {shown}{more}"

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "rule": self.rule, "column": self.column, "rows": list(self.rows),
                "count": self.count, "message": self.message}

    def __str__(self) -> str:
        column = f" column {self.column}:" if self.column else ""
        return f"{self.location()} [{self.rule}]{column} {self.message}"


@dataclass
class ValidationReport:
    """Everything one validation run found, plus which files were checked and how many data rows each had."""

    findings: list[Finding] = field(default_factory=list)
    files: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.findings

    def add(self, finding: Finding) -> None:
        self.findings.append(finding)

    def extend(self, other: Iterable[Finding] | ValidationReport) -> None:
        """Add findings (or another report's findings, files and timings)."""
        if isinstance(other, ValidationReport):
            self.findings.extend(other.findings)
            self.files.update(other.files)
            for key, seconds in other.timings.items():
                self.timings[key] = self.timings.get(key, 0.0) + seconds
        else:
            self.findings.extend(other)

    def rules(self) -> set[str]:
        return {f.rule for f in self.findings}

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "files": dict(self.files),
            "finding_count": len(self.findings),
            "findings": [f.to_dict() for f in self.findings],
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
        }

    def to_json(self, **kwargs: Any) -> str:
        kwargs.setdefault("indent", 2)
        return json.dumps(self.to_dict(), ensure_ascii=False, **kwargs)

    def summary(self) -> str:
        """Multi-line, value-free text for logs and alert mails."""
        checked = ", ".join(f"{name} ({rows} rows)" for name, rows in sorted(self.files.items())) or "none"
        if self.ok:
            return f"validation passed: {len(self.files)} file(s) checked: {checked}"
        failing = sorted({f.file for f in self.findings})
        lines = [
            f"validation FAILED: {len(self.findings)} finding(s) in {len(failing)} file(s) "
            f"({', '.join(failing)}); {len(self.files)} file(s) checked: {checked}",
        ]
        lines += [f"- {finding}" for finding in self.findings]
        return "\n".join(lines)

    def raise_if_failed(self) -> None:
        if not self.ok:
            raise ValidationFailed(self)


class ValidationFailed(Exception):
    """Raised by :meth:`ValidationReport.raise_if_failed`; ``str()`` is the value-free summary."""

    def __init__(self, report: ValidationReport) -> None:
        super().__init__(report.summary())
        self.report = report

    def __str__(self) -> str:
        return self.report.summary()
