"""WHERE CERS GROUP NAMES ARE BUILT. Every name in every CERS file comes from ``assign_names`` below.

A CERS group is identified by (group_name, school_natural_id, school_year): a name that changes between runs is a
new group (and the old one stays in CERS untouched), two groups with one name at one school are one group. So names
must be deterministic, unique per school, and fit the strictest receiver (PowerSchool: 20 characters).

Patterns (``name_pattern`` in config/cers_profiles.yaml; which roster types take which: rostering.cers.profiles):

=====================  ===========================================================================  ================
pattern                components, in order                                                         example
=====================  ===========================================================================  ================
powerschool            school year, teacher last name, first initial, class expression, course      2027LiB2AM6001
                       number, section number (PowerSchool's auto-generated name)
teacher_period         school number, teacher last name, first name, period, part number (Aeries)   201LiBo21
teacher_section        school number, teacher last name, first name, section number, part number   201LiBo11
teacher_course_title   school number, teacher last name, first name, course title, part number      201LiBoMath61
teacher                school number, teacher (or counselor) last name, first name, part number     101ONeilAna1
grade                  school number, "Grade", grade level, part number                             101Grade031
group_code             school number, SIS student group code, part number                           201AVID1
=====================  ===========================================================================  ================

A profile's ``name_prefix`` (at most 8 letters/digits) goes in front of every component.

Rules, in the order they are applied:

1. Components are folded to ASCII letters and digits: accents are removed (Núñez -> Nunez), everything else is
   dropped (spaces, apostrophes, commas, hyphens, parentheses, non-Latin scripts). A teacher whose name folds to
   nothing is named ``T<staff_id>``; a student group code that folds to nothing ``G<group_id>``.
2. Part number: a group with more than 200 students is split (rostering.cers.build) into parts of 200 by SSID.
   Aeries patterns always end with the part number (1, 2, ...); the powerschool pattern has no number on part 1
   and ``2``, ``3``, ... on the others (so an unsplit PowerSchool name is exactly PowerSchool's).
3. Fitting: the name without the part number is shortened to ``max_length - len(part number)`` characters, so the
   number is never cut off. Shortening takes characters from the end of the components in ``SHRINK`` order (first
   names to an initial, then long last names and course titles), keeping the school, period, section and course
   that tell a teacher's groups apart; only if that is not enough is the end cut.
4. Uniqueness per school, case-insensitive (the receiver's database compares names case-insensitively): when two
   groups of one school would get the same name, EVERY group involved is re-named as its fitted name (4 characters
   shorter) + a 4-character hash of the group's identity (profile, roster type, school, SIS keys) + part number.
   The hash depends only on that group, so the result does not depend on row order; should two hashes collide
   too (about 1 in a million), the hash is salted and drawn again until every name is unique.

So: names are stable from run to run as long as the group's components do not change and no other group at its
school collides with it; truncation never produces two equal names (rule 4 runs after rule 3).
"""
from __future__ import annotations

import hashlib
import operator
from functools import reduce
from typing import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

HASH_LENGTH = 4
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
MIN_MAX_LENGTH = 12  # below this a prefix + school number + hash + part number no longer fit

# pattern -> the components, in order. "=Grade" is a literal.
COMPONENTS: dict[str, tuple[str, ...]] = {
    "powerschool": ("prefix", "school_year", "last_name", "first_initial", "class_expression", "course_number",
                    "section_number"),
    "teacher_period": ("prefix", "school_number", "last_name", "first_name", "period_code"),
    "teacher_section": ("prefix", "school_number", "last_name", "first_name", "section_number"),
    "teacher_course_title": ("prefix", "school_number", "last_name", "first_name", "course_title"),
    "teacher": ("prefix", "school_number", "last_name", "first_name"),
    "grade": ("prefix", "school_number", "=Grade", "grade_level"),
    "group_code": ("prefix", "school_number", "group_code"),
}
# pattern -> (component, shortest length) steps used when a name is too long, in order.
SHRINK: dict[str, tuple[tuple[str, int], ...]] = {
    "powerschool": (("last_name", 1),),
    "teacher_period": (("first_name", 1), ("last_name", 1)),
    "teacher_section": (("first_name", 1), ("last_name", 1)),
    "teacher_course_title": (("first_name", 1), ("course_title", 8), ("last_name", 6), ("course_title", 1),
                             ("last_name", 1)),
    "teacher": (("first_name", 1), ("last_name", 1)),
    "grade": (),
    "group_code": (("group_code", 1),),
}
ALWAYS_NUMBERED = frozenset({"teacher_period", "teacher_section", "teacher_course_title", "teacher", "grade",
                             "group_code"})
SOURCE_COLUMNS = ("prefix", "school_year", "school_number", "last_name", "first_name", "class_expression",
                  "course_number", "section_number", "period_code", "course_title", "grade_level", "group_code")


def fold(series: pd.Series) -> pd.Series:
    """ASCII letters and digits only (vectorised): NFKD, drop non-ASCII, drop every other character.

    In Arrow: dropping non-ASCII and then non-alphanumerics is dropping everything but ``[A-Za-z0-9]`` (pandas'
    encode/decode round trip made a Python object of every value).
    """
    text = pa.array(series.astype("string").fillna("").array)
    folded = pc.replace_substring_regex(pc.utf8_normalize(text, "NFKD"), r"[^A-Za-z0-9]", "")
    return pd.Series(pd.arrays.ArrowStringArray(folded), index=series.index, name=series.name).astype("string")


def identity_hash(identity: str, salt: int = 0) -> str:
    """4 characters (Crockford base 32) of BLAKE2b over the group identity; ``salt`` > 0 draws another value."""
    data = identity if not salt else f"{identity}#{salt}"
    number = int.from_bytes(hashlib.blake2b(data.encode("utf-8"), digest_size=8).digest(), "big")
    chars = []
    for _ in range(HASH_LENGTH):
        number, digit = divmod(number, 32)
        chars.append(_CROCKFORD[digit])
    return "".join(chars)


def fit(parts: dict[str, str], order: Sequence[str], shrink: Sequence[tuple[str, int]], budget: int) -> str:
    """Concatenate ``parts`` in ``order`` within ``budget`` characters (see rule 3 in the module docstring)."""
    parts = dict(parts)
    excess = sum(len(parts[c]) for c in order) - budget
    for component, shortest in shrink:
        if excess <= 0:
            break
        value = parts.get(component, "")
        cut = min(excess, max(0, len(value) - shortest))
        if cut:
            parts[component] = value[: len(value) - cut]
            excess -= cut
    return "".join(parts[c] for c in order)[: max(budget, 0)]


def _components(groups: pd.DataFrame) -> pd.DataFrame:
    """The folded components of every row (one row per group part)."""
    out = pd.DataFrame(index=groups.index)
    for column in SOURCE_COLUMNS:
        out[column] = fold(groups[column]) if column in groups else pd.Series("", index=groups.index, dtype="string")
    fallback = fold(groups["fallback_id"]) if "fallback_id" in groups else pd.Series("", index=groups.index)
    nameless = (out["last_name"] == "") & (out["first_name"] == "")
    is_teacher = groups["pattern"].isin([p for p, c in COMPONENTS.items() if "last_name" in c])
    out["last_name"] = out["last_name"].mask(nameless & is_teacher, "T" + fallback)
    no_code = (out["group_code"] == "") & (groups["pattern"] == "group_code")
    out["group_code"] = out["group_code"].mask(no_code, "G" + fallback)
    out["first_initial"] = out["first_name"].str.slice(0, 1)
    out["=Grade"] = "Grade"
    return out


def assign_names(groups: pd.DataFrame, *, max_length: int) -> pd.Series:
    """The group name of every row of ``groups`` (one row per group part), same index.

    Columns: ``identity`` (unique per logical group, parts share it), ``school_id``, ``pattern``, ``part``
    (1-based), the name components in ``SOURCE_COLUMNS`` (missing ones are blank) and ``fallback_id``.
    """
    if max_length < MIN_MAX_LENGTH:
        raise ValueError(f"group_name_max_length must be at least {MIN_MAX_LENGTH}, got {max_length}")
    if groups.empty:
        return pd.Series([], index=groups.index, dtype="string")
    components = _components(groups)
    part = groups["part"].astype(int)
    numbered = groups["pattern"].isin(ALWAYS_NUMBERED) | (part > 1)
    suffix = pd.Series(np.where(numbered, part.astype(str), ""), index=groups.index)

    # Most names fit as they are: their concatenation is vectorised. Only a name that is too long takes a Python
    # step (``fit``: string surgery on a handful of components), as does a name made again after a collision.
    columns = {c: components[c].tolist() for c in components.columns}
    patterns = groups["pattern"].tolist()
    suffixes = suffix.tolist()
    identities = groups["identity"].astype(str).tolist()

    def record(i: int) -> dict[str, str]:
        return {c: columns[c][i] for c in COMPONENTS[patterns[i]]}

    joined = pd.Series(pd.NA, index=groups.index, dtype="string")
    for pattern, order in COMPONENTS.items():
        rows = (groups["pattern"] == pattern).to_numpy()
        if rows.any():
            joined[rows] = reduce(operator.add, [components.loc[rows, c].astype("string") for c in order])
    fits = (joined.str.len() <= max_length - suffix.str.len()).fillna(False).to_numpy(dtype=bool)
    natural = (joined.fillna("") + suffix).tolist()
    for i in np.flatnonzero(~fits):
        natural[i] = fit(record(i), COMPONENTS[patterns[i]], SHRINK[patterns[i]], max_length - len(suffixes[i])) \
            + suffixes[i]
    salts: dict[str, int | None] = {}
    names = list(natural)
    schools = groups["school_id"].astype(str).tolist()
    for _ in range(64):
        frame = pd.DataFrame({"school": schools, "key": [n.lower() for n in names], "identity": identities})
        clash = frame.duplicated(["school", "key"], keep=False)
        colliding = sorted(set(frame.loc[clash, "identity"]))
        if not colliding:
            return pd.Series(names, index=groups.index, dtype="string")
        for identity in colliding:
            salts[identity] = 0 if salts.get(identity) is None else salts[identity] + 1
        names = [
            name if salts.get(ident) is None else
            fit(record(i), COMPONENTS[pat], SHRINK[pat], max_length - len(suf) - HASH_LENGTH)
            + identity_hash(ident, salts[ident]) + suf
            for i, (name, pat, suf, ident) in enumerate(zip(natural, patterns, suffixes, identities))
        ]
    raise RuntimeError("could not make CERS group names unique per school")  # pragma: no cover - 64 hash draws
