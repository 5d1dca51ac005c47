"""The mass-deprovisioning guard: compare a new payload with the last accepted delivery before sending it.

Receivers replace what they hold with what we send, so an incomplete extract (a failed join, a missing school, a
term rollover, an SIS outage returning few rows) becomes mass deprovisioning the next morning. Before any delivery,
per entity (schools/orgs, students, staff, classes/groups, enrollments) we count what would be added, deleted and
updated against the kept copy of the last good delivery, and HOLD when (Clever's defaults, configurable per vendor):

- deletions exceed ``max_delete_pct`` (10 %), additions ``max_add_pct`` (25 %) or updates ``max_update_pct`` (75 %)
  of an entity,
- an entity that had rows drops to zero,
- a school that had students now has none,
- against the oldest delivery of the last ``window_days`` (7) -- but none older than the last approved one --
  deletions exceed ``max_window_delete_pct`` (20 %) or additions ``max_window_add_pct`` (50 %): small nightly
  losses that compound (10 % a night for a week is half the district) are held too.

A held run fails with a diff summary (counts per entity and per school, never student data), keeps its built files,
and delivers nothing. A person releases it (with a recorded reason) or discards it: the operations DAG. A first
delivery (no history) passes.

Formats describe their entities with ``guard_entities(read) -> {entity: DataFrame[key, school, fingerprint]}``
where ``read(file_name)`` returns a file of the payload as strings.
"""
from __future__ import annotations

import io
import re
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from rostering.delivery.holds import GUARD, DeliveryHeld  # noqa: F401 - raised by change_guard

DEFAULTS = {"max_delete_pct": 10.0, "max_update_pct": 75.0, "max_add_pct": 25.0,
            "window_days": 7, "max_window_delete_pct": 20.0, "max_window_add_pct": 50.0}
Reader = Callable[[str], pd.DataFrame]


def held_by(diff: "GuardDiff") -> DeliveryHeld:
    """The hold the guard raises: the payload differs too much from the last good delivery (kind ``"guard"``)."""
    return DeliveryHeld(diff.summary(), GUARD, diff=diff)


@dataclass
class EntityDiff:
    entity: str
    before: int
    after: int
    added: int
    deleted: int
    updated: int

    @property
    def deleted_pct(self) -> float:
        return 100.0 * self.deleted / self.before if self.before else 0.0

    @property
    def updated_pct(self) -> float:
        return 100.0 * self.updated / self.before if self.before else 0.0

    @property
    def added_pct(self) -> float:
        return 100.0 * self.added / self.before if self.before else 0.0


@dataclass
class GuardDiff:
    entities: list[EntityDiff] = field(default_factory=list)
    schools: dict[str, dict[str, int]] = field(default_factory=dict)  # school -> {"before": n, "after": n} students
    reasons: list[str] = field(default_factory=list)  # why held; empty = passes
    baseline: str | None = None  # the record compared with

    @property
    def held(self) -> bool:
        return bool(self.reasons)

    def to_dict(self) -> dict[str, Any]:
        return {
            "held": self.held,
            "reasons": self.reasons,
            "baseline": self.baseline,
            "entities": [{**asdict(e), "deleted_pct": round(e.deleted_pct, 2), "updated_pct": round(e.updated_pct, 2),
                          "added_pct": round(e.added_pct, 2)} for e in self.entities],
            "schools": self.schools,
        }

    def summary(self) -> str:
        head = "delivery HELD: " + "; ".join(self.reasons) if self.held else "change check passed"
        lines = [head, f"  compared with {self.baseline}"]
        lines += [f"  {e.entity:<12} {e.before:>9,} -> {e.after:>9,}  +{e.added:,} -{e.deleted:,} ~{e.updated:,}"
                  f"  ({e.deleted_pct:.1f}% deleted, {e.updated_pct:.1f}% updated)" for e in self.entities]
        emptied = [s for s, c in self.schools.items() if c["before"] and not c["after"]]
        if emptied:
            lines.append(f"  schools that lost all their students: {', '.join(emptied)}")
        return "\n".join(lines)


def compare(
    old: dict[str, pd.DataFrame], new: dict[str, pd.DataFrame], limits: dict[str, float] | None = None,
    *, same_schools_only: bool = False, window: str | None = None,
) -> GuardDiff:
    """Diff two entity sets and decide whether to hold. Vectorised: merges on keys, row fingerprints for updates.

    ``same_schools_only``: compare only the schools the new payload names (receivers that replace only what a file
    names, like CERS: a file for fewer schools deletes nothing elsewhere). ``window``: ``old`` is the oldest
    delivery of the rolling window (named so in the reasons); only the window's deletion and addition limits apply.
    """
    limits = {**DEFAULTS, **(limits or {})}
    unknown = sorted(set(limits) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"delivery.guard: unknown limit(s) {unknown}; known: {sorted(DEFAULTS)}")
    if window:
        limits = {**limits, "max_delete_pct": limits["max_window_delete_pct"],
                  "max_add_pct": limits["max_window_add_pct"], "max_update_pct": float("inf")}
    since = f" since {window}" if window else ""
    scope = f"{limits['window_days']:g}-day " if window else ""
    if same_schools_only:
        named = set().union(*(set(frame["school"].dropna()) for frame in new.values())) if new else set()
        old = {entity: frame[frame["school"].isin(named)] for entity, frame in old.items()}
    diff = GuardDiff()
    for entity in sorted(set(old) | set(new)):
        before = old.get(entity, _empty())
        after = new.get(entity, _empty())
        merged = before[["key", "fingerprint"]].merge(
            after[["key", "fingerprint"]], on="key", how="outer", suffixes=("_old", "_new"), indicator=True
        )
        both = merged["_merge"] == "both"
        result = EntityDiff(
            entity=entity,
            before=len(before),
            after=len(after),
            added=int((merged["_merge"] == "right_only").sum()),
            deleted=int((merged["_merge"] == "left_only").sum()),
            updated=int((both & (merged["fingerprint_old"] != merged["fingerprint_new"])).sum()),
        )
        diff.entities.append(result)
        if result.before and not result.after and not window:
            diff.reasons.append(f"{entity} dropped to zero (had {result.before:,})")
        elif result.deleted_pct > limits["max_delete_pct"]:
            diff.reasons.append(f"{entity}: {result.deleted_pct:.1f}% deleted{since} "
                                f"({scope}limit {limits['max_delete_pct']:g}%)")
        if result.added_pct > limits["max_add_pct"]:
            diff.reasons.append(f"{entity}: {result.added_pct:.1f}% added{since} ({scope}limit {limits['max_add_pct']:g}%)")
        if result.updated_pct > limits["max_update_pct"]:
            diff.reasons.append(f"{entity}: {result.updated_pct:.1f}% updated (limit {limits['max_update_pct']:g}%)")
    if window:
        return diff  # the nightly comparison already judges emptied schools
    if "students" in old or "students" in new:
        before_by_school = _per_school(old.get("students", _empty()))
        after_by_school = _per_school(new.get("students", _empty()))
        for school in sorted(set(before_by_school.index) | set(after_by_school.index)):
            counts = {"before": int(before_by_school.get(school, 0)), "after": int(after_by_school.get(school, 0))}
            diff.schools[school] = counts
        emptied = [s for s, c in diff.schools.items() if c["before"] and not c["after"]]
        if emptied:
            diff.reasons.append(f"{len(emptied)} school(s) that had students now have none")
    return diff


def _empty() -> pd.DataFrame:
    return pd.DataFrame({"key": pd.Series(dtype="string"), "school": pd.Series(dtype="string"),
                         "fingerprint": pd.Series(dtype="uint64")})


def _per_school(students: pd.DataFrame) -> pd.Series:
    schools = students["school"].astype("string").str.split(",").explode().dropna()
    return schools[schools != ""].value_counts()


def fingerprint(frame: pd.DataFrame) -> pd.Series:
    """A 64-bit hash of each row's values (vectorised), to tell an updated record from an unchanged one."""
    return pd.util.hash_pandas_object(frame.astype("string").fillna(""), index=False)


# -- reading a payload: a build folder, plain delivered files, or a zip ------------------------------------------------

_SPLIT_PART = re.compile(r"^(?P<stem>.+?)\d*\.csv$")


def payload_reader(files: list[Path]) -> Reader:
    """``read(name)`` over a payload's files: zip members or plain files; split parts (users2.csv…) are rejoined."""
    members: dict[str, list[bytes]] = {}

    def add(name: str, data: bytes) -> None:
        match = _SPLIT_PART.match(name)
        canonical = f"{match['stem']}.csv" if match else name
        members.setdefault(canonical, []).append(data)

    for path in sorted(files):
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as archive:
                for name in sorted(archive.namelist()):
                    add(name, archive.read(name))
        else:
            add(path.name, path.read_bytes())

    def read(name: str) -> pd.DataFrame:
        """One file (its split parts rejoined), or ``"*"``: every CSV of the payload concatenated."""
        chosen = [d for n in sorted(members) if n.endswith(".csv") for d in members[n]] if name == "*" else \
            members.get(name, [])
        if not chosen:
            return pd.DataFrame()
        parts = [pd.read_csv(io.BytesIO(data), dtype="string", keep_default_na=False, na_values=[""])
                 for data in chosen]
        return pd.concat(parts, ignore_index=True)

    return read
