"""A deterministic, realistic demo district in the SIS model (include/sql/schema/sis_schema.sql).

    python -m rostering.sis.demo --students N [--seed S] [--school-year Y] [--url SQLALCHEMY_URL | --sqlite PATH]

``generate_district`` is pure: the same arguments give identical frames (one ``numpy.random.default_rng(seed)``
drawn in a fixed order, no clock, no hashing). Everything is vectorised over students and enrollments; Python loops
only run over grades, schools' levels, name groups and the few multi-school teachers.

Shape (what the benchmarks and transform tests rely on):

* one district ``D1``; elementary (PK/TK..05, ~450 students), middle (06..08, ~900) and high schools (09..12, ~1800),
  at least one of each; a community day school (07..12) that is active but excluded from state reporting; one
  inactive (closed) elementary school with no students;
* a district-wide school year ``<Y>-Y`` with semesters ``<Y>-S1``/``<Y>-S2`` and quarters ``<Y>-Q1..Q4`` under them;
* elementary students: one self-contained homeroom (``caaspp_subject`` ALL) and, in grades 3-5, PE and sometimes
  music; secondary students: one section per period 1..7 (full year, or two semester sections for Health/Ethnic
  Studies in grade 9 and Government/Economics in grade 12); classes of ~20-34, so ~1 section per 25 enrollments;
* about one staff member per 20 students; ~3% of teachers at two schools; co-teachers, job shares, aides and ~1%
  of sections with two lead rows;
* edge populations that exist at any size: no SSID (all PK and ~1% more), excluded students (~1%) and enrollments
  (~0.5%), enrollment status 20/30 (~2%), mid-year withdrawals (~2%), school changes (~1%, some into the community
  day school), re-entries into the same section, late entrants, inactive and empty sections, exited and mid-year
  programs.

All event dates (withdrawals, school changes, re-entries) fall between early September and early November, so they
are in the past for a run in the later part of the school year and in the future for one in August.
"""
from __future__ import annotations

import argparse
import datetime as dt
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd

from rostering.sis.load import load_district  # noqa: F401 - re-exported: the demo's loader, used by tests and tools
from rostering.sis.schema import COLUMNS, TABLES


DISTRICT_ID = "D1"
DISTRICT_NAME = "Demo Unified School District"
DISTRICT_CDS = "1975309"          # fictional: county 19 + district 75309
DISTRICT_NCES = "0699901"         # fictional 7-digit LEA id
DOMAIN = "demousd.example.org"
STUDENT_DOMAIN = f"students.{DOMAIN}"
MIN_STUDENTS = 50

GRADES = ("PK", "TK", "KG", "01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "12")
_G = {code: i for i, code in enumerate(GRADES)}
_GRADE_WEIGHT = np.array([0.15, 0.55] + [1.0] * 12 + [0.95])
_AGE_ON_SEP_1 = np.array([3, 4] + list(range(5, 18)))
ELEMENTARY, MIDDLE, HIGH, OTHER = 0, 1, 2, 3
_LEVEL_NAME = ("elementary", "middle", "high", "other")
_LEVEL_OF_GRADE = np.array([ELEMENTARY] * 8 + [MIDDLE] * 3 + [HIGH] * 4)
_SCHOOL_SIZE = {ELEMENTARY: 450, MIDDLE: 900, HIGH: 1800}

# --------------------------------------------------------------------------------------------------------------------
# Courses: (course_number, title, department, subject_area, caaspp_subject, teaching group)

_COURSES: tuple[tuple[str, str, str, str, str | None, str], ...] = (
    ("HR-PK", "Preschool", "Elementary", "Multiple Subjects", "ALL", "HR"),
    ("HR-TK", "Transitional Kindergarten", "Elementary", "Multiple Subjects", "ALL", "HR"),
    ("HR-KG", "Kindergarten", "Elementary", "Multiple Subjects", "ALL", "HR"),
    *((f"HR-{g:02d}", f"Grade {g} Self-Contained", "Elementary", "Multiple Subjects", "ALL", "HR") for g in range(1, 6)),
    ("PE-ELEM", "Elementary Physical Education", "Physical Education", "Physical Education", None, "ELEM-PE"),
    ("MUS-ELEM", "Elementary Music", "Visual and Performing Arts", "Visual and Performing Arts", None, "ELEM-MUS"),
    ("MA6", "Math 6", "Mathematics", "Mathematics", "Math", "MATH"),
    ("MA7", "Math 7", "Mathematics", "Mathematics", "Math", "MATH"),
    ("MA8", "Math 8", "Mathematics", "Mathematics", "Math", "MATH"),
    ("ALG1", "Algebra 1", "Mathematics", "Mathematics", "Math", "MATH"),
    ("GEOM", "Geometry", "Mathematics", "Mathematics", "Math", "MATH"),
    ("ALG2", "Algebra 2", "Mathematics", "Mathematics", "Math", "MATH"),
    ("PREC", "Precalculus", "Mathematics", "Mathematics", "Math", "MATH"),
    ("STAT", "Statistics", "Mathematics", "Mathematics", "Math", "MATH"),
    ("APCAB", "AP Calculus AB", "Mathematics", "Mathematics", "Math", "MATH"),
    ("EN6", "English 6", "English", "English Language Arts", "ELA", "ENG"),
    ("EN7", "English 7", "English", "English Language Arts", "ELA", "ENG"),
    ("EN8", "English 8", "English", "English Language Arts", "ELA", "ENG"),
    ("EN9", "English 9", "English", "English Language Arts", "ELA", "ENG"),
    ("EN10", "English 10", "English", "English Language Arts", "ELA", "ENG"),
    ("EN11", "English 11", "English", "English Language Arts", "ELA", "ENG"),
    ("EN12", "English 12", "English", "English Language Arts", "ELA", "ENG"),
    ("APLANG", "AP English Language and Composition", "English", "English Language Arts", "ELA", "ENG"),
    ("APLIT", "AP English Literature and Composition", "English", "English Language Arts", "ELA", "ENG"),
    ("ELD", "English Language Development", "English Language Development", "English Language Development", None,
     "ENG"),
    ("SC6", "Science 6", "Science", "Science", None, "SCI"),
    ("SC7", "Science 7", "Science", "Science", None, "SCI"),
    ("SC8", "Science 8", "Science", "Science", None, "SCI"),
    ("BIO", "Biology", "Science", "Science", None, "SCI"),
    ("CHEM", "Chemistry", "Science", "Science", None, "SCI"),
    ("PHYS", "Physics", "Science", "Science", None, "SCI"),
    ("APBIO", "AP Biology", "Science", "Science", None, "SCI"),
    ("ENVS", "Environmental Science", "Science", "Science", None, "SCI"),
    ("HS6", "Ancient Civilizations", "Social Science", "History-Social Science", None, "SS"),
    ("HS7", "Medieval World History", "Social Science", "History-Social Science", None, "SS"),
    ("HS8", "U.S. History 8", "Social Science", "History-Social Science", None, "SS"),
    ("HLTH", "Health", "Health", "Health", None, "SS"),
    ("ETHS", "Ethnic Studies", "Social Science", "History-Social Science", None, "SS"),
    ("WHIS", "World History", "Social Science", "History-Social Science", None, "SS"),
    ("USH", "U.S. History", "Social Science", "History-Social Science", None, "SS"),
    ("GOV", "American Government", "Social Science", "History-Social Science", None, "SS"),
    ("ECON", "Economics", "Social Science", "History-Social Science", None, "SS"),
    ("PEMS", "Physical Education 6-8", "Physical Education", "Physical Education", None, "PE"),
    ("PE9", "Physical Education 9", "Physical Education", "Physical Education", None, "PE"),
    ("PE10", "Physical Education 10", "Physical Education", "Physical Education", None, "PE"),
    ("ART1", "Art 1", "Visual and Performing Arts", "Visual and Performing Arts", None, "VAPA"),
    ("BAND", "Band", "Visual and Performing Arts", "Visual and Performing Arts", None, "VAPA"),
    ("CHOR", "Choir", "Visual and Performing Arts", "Visual and Performing Arts", None, "VAPA"),
    ("DRAM", "Drama", "Visual and Performing Arts", "Visual and Performing Arts", None, "VAPA"),
    ("SPN1", "Spanish 1", "World Languages", "World Languages", None, "WL"),
    ("SPN2", "Spanish 2", "World Languages", "World Languages", None, "WL"),
    ("FRN1", "French 1", "World Languages", "World Languages", None, "WL"),
    ("CS1", "Computer Science Discoveries", "Career Technical Education", "Computer Science", None, "CTE"),
    ("APCSP", "AP Computer Science Principles", "Career Technical Education", "Computer Science", None, "CTE"),
    ("ENGR", "Introduction to Engineering", "Career Technical Education", "Career Technical Education", None, "CTE"),
    ("YRBK", "Yearbook", "Electives", "Electives", None, "ELEC"),
    ("LEAD", "Leadership", "Electives", "Electives", None, "ELEC"),
    ("AVID", "AVID", "Electives", "Electives", None, "ELEC"),
    ("CDS-ENG", "English (Community Day)", "Alternative Education", "English Language Arts", "ELA", "CDS"),
    ("CDS-MATH", "Mathematics (Community Day)", "Alternative Education", "Mathematics", "Math", "CDS"),
    ("CDS-SCI", "Science (Community Day)", "Alternative Education", "Science", None, "CDS"),
    ("CDS-SS", "Social Science (Community Day)", "Alternative Education", "History-Social Science", None, "CDS"),
    ("CDS-PE", "Physical Education (Community Day)", "Alternative Education", "Physical Education", None, "CDS"),
    ("CDS-CTE", "Career Exploration (Community Day)", "Alternative Education", "Career Technical Education", None,
     "CDS"),
)
_C = {c[0]: i for i, c in enumerate(_COURSES)}
_TEACH_GROUPS = tuple(dict.fromkeys(c[5] for c in _COURSES))
_COURSE_TG = np.array([_TEACH_GROUPS.index(c[5]) for c in _COURSES])

# Secondary slots per grade: a tuple of (course, weight) = a choice; ("PAIR", fall, spring) = two semester courses in
# one period; "ELEC" = a distinct elective from the level's pool (the last one is ELD for English learners).
_MS_ELECTIVES = ("ART1", "BAND", "CHOR", "SPN1", "CS1", "DRAM", "LEAD", "AVID")
_HS_ELECTIVES = ("ART1", "BAND", "CHOR", "SPN1", "SPN2", "FRN1", "CS1", "APCSP", "DRAM", "YRBK", "AVID", "ENGR")
_SLOTS: dict[str, tuple] = {
    "06": ((("MA6", 1),), (("EN6", 1),), (("SC6", 1),), (("HS6", 1),), (("PEMS", 1),), "ELEC", "ELEC"),
    "07": ((("MA7", 1),), (("EN7", 1),), (("SC7", 1),), (("HS7", 1),), (("PEMS", 1),), "ELEC", "ELEC"),
    "08": ((("MA8", 0.75), ("ALG1", 0.25)), (("EN8", 1),), (("SC8", 1),), (("HS8", 1),), (("PEMS", 1),), "ELEC",
           "ELEC"),
    "09": ((("ALG1", 0.7), ("GEOM", 0.25), ("ALG2", 0.05)), (("EN9", 1),), (("BIO", 1),), ("PAIR", "HLTH", "ETHS"),
           (("PE9", 1),), "ELEC", "ELEC"),
    "10": ((("GEOM", 0.7), ("ALG2", 0.25), ("ALG1", 0.05)), (("EN10", 1),), (("CHEM", 0.85), ("APBIO", 0.15)),
           (("WHIS", 1),), (("PE10", 1),), "ELEC", "ELEC"),
    "11": ((("ALG2", 0.65), ("PREC", 0.25), ("GEOM", 0.1)), (("EN11", 0.75), ("APLANG", 0.25)),
           (("PHYS", 0.7), ("APBIO", 0.3)), (("USH", 1),), "ELEC", "ELEC", "ELEC"),
    "12": ((("PREC", 0.4), ("STAT", 0.3), ("APCAB", 0.3)), (("EN12", 0.7), ("APLIT", 0.3)), (("ENVS", 1),),
           ("PAIR", "GOV", "ECON"), "ELEC", "ELEC", "ELEC"),
}
_CDS_SLOTS = ("CDS-ENG", "CDS-MATH", "CDS-SCI", "CDS-SS", "CDS-PE", "CDS-CTE")

# Period codes: 0 = homeroom, 1..7 = secondary periods, 8 = elementary specials.
_HR, _SP = 0, 8
_PERIOD_CODE = np.array(["HR", "1", "2", "3", "4", "5", "6", "7", "SP"], dtype=object)

# --------------------------------------------------------------------------------------------------------------------
# Names. Groups: (weight, first names, last names, {home language code: probability}). The pools deliberately hold
# apostrophes, commas, double quotes, accents and non-Latin scripts; _FORCED_* make sure each hard one appears.

_NAME_GROUPS: tuple[tuple[float, tuple[str, ...], tuple[str, ...], dict[str, float]], ...] = (
    (0.40,
     ("Olivia", "Liam", "Emma", "Noah", "Ava", "Elijah", "Charlotte", "James", "Amelia", "William", "Harper",
      "Benjamin", "Evelyn", "Lucas", "Abigail", "Henry", "Emily", "Jackson", "Madison", "Aiden", 'Robert "Bobby"',
      "D'Andre", "Aaliyah", "Jaylen", "Zoë", "Renée", "Chloé", "Mary Kate"),
     ("Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson", "Anderson", "Taylor", "Thomas",
      "Moore", "Jackson", "White", "Harris", "Martin", "Thompson", "Young", "O'Brien", "O'Connor", "Smith, Jr.",
      "Johnson-Lee", "Van der Berg", "Washington", "St. John"),
     {"00": 1.0}),
    (0.36,
     ("José", "María", "Sofía", "Mateo", "Santiago", "Valentina", "Camila", "Diego", "Luis", "Ximena", "Jesús", "Ana",
      "Juan Carlos", "Guadalupe", "Emiliano", "Renata", "Iñaki", "Joaquín"),
     ("García", "Hernández", "López", "Martínez", "Núñez", "Rodríguez", "González", "Pérez", "Sánchez", "Ramírez",
      "Flores", "Gómez", "Díaz", "Cruz", "De la Cruz", "Ortiz", "Peña", "García-Márquez"),
     {"00": 0.45, "01": 0.55}),
    (0.05,
     ("Minh", "Anh", "Linh", "Huy", "Thảo", "Bảo", "Khoa", "Ngọc", "Tuấn", "Vy"),
     ("Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Võ", "Nguyen", "Tran", "Pham", "Huỳnh"),
     {"00": 0.4, "02": 0.6}),
    (0.05,
     ("王芳", "李娜", "Wei", "Jun", "Mei", "Hao", "Yan", "Xiaoming", "Jia", "Chen"),
     ("李", "王", "张", "Chen", "Li", "Wang", "Zhang", "Liu", "Huang", "Wu"),
     {"00": 0.4, "03": 0.25, "07": 0.35}),
    (0.03,
     ("김민준", "이서연", "Ji-woo", "Seo-yeon", "Min-jun", "Ha-eun", "Do-hyun", "Eun-ji"),
     ("Kim", "Lee", "Park", "Choi", "Jung", "Kang", "김", "박"),
     {"00": 0.45, "04": 0.55}),
    (0.03,
     ("Angelo", "Kristine", "Jericho", "Maricel", "Paolo", "Andrea", "Rhea", "Jomar"),
     ("Santos", "Reyes", "Cruz", "Bautista", "Dela Cruz", "Mendoza", "Villanueva", "Aquino"),
     {"00": 0.7, "05": 0.3}),
    (0.02,
     ("محمد", "فاطمة", "Omar", "Layla", "Yusuf", "Fatima", "Ahmad", "Noor"),
     ("Haddad", "Khalil", "Nasser", "Saleh", "Al-Masri", "Mansour", "حداد"),
     {"00": 0.4, "11": 0.6}),
    (0.015,
     ("Aram", "Ani", "Narek", "Lilit", "Tigran", "Mariam", "Արամ"),
     ("Petrosyan", "Hovhannisyan", "Sargsyan", "Grigoryan", "Harutyunyan", "Ղազարյան"),
     {"00": 0.5, "12": 0.5}),
    (0.015,
     ("Алексей", "Анастасия", "Dmitri", "Olga", "Ivan", "Natalia"),
     ("Ivanov", "Smirnova", "Kuznetsov", "Popova", "Volkov", "Соколов"),
     {"00": 0.5, "29": 0.5}),
    (0.02,
     ("Ελένη", "Γιώργος", "Zoë", "Jürgen", "Chloé", "Søren", "François", "Björn"),
     ("Müller", "Papadopoulos", "Dubois", "Schröder", "Rossi", "D'Angelo", "Παπαδόπουλος", "Ødegaard"),
     {"00": 0.85, "17": 0.05, "18": 0.05, "19": 0.05}),
)
_FORCED_FIRST = ('Robert "Bobby"', "José", "Zoë", "王芳", "Алексей", "محمد", "김민준", "Ελένη")
_FORCED_LAST = ("O'Brien", "D'Angelo", "Smith, Jr.", "Nguyễn", "Müller", "Núñez", "李")
_ASCII_NAME = {
    "王芳": "wangfang", "李娜": "lina", "李": "li", "王": "wang", "张": "zhang", "김민준": "minjun", "이서연": "seoyeon",
    "김": "kim", "박": "park", "محمد": "mohammed", "فاطمة": "fatima", "حداد": "haddad", "Արամ": "aram",
    "Ղազարյան": "ghazaryan", "Алексей": "aleksei", "Анастасия": "anastasia", "Соколов": "sokolov", "Ελένη": "eleni",
    "Γιώργος": "giorgos", "Παπαδόπουλος": "papadopoulos", "Søren": "soren", "Ødegaard": "odegaard",
    'Robert "Bobby"': "robert", "Smith, Jr.": "smith",
}


def _ascii_slug(name: str) -> str:
    """Lower-case ASCII letters for email addresses (explicit romanisation for the non-Latin pool entries)."""
    if name in _ASCII_NAME:
        return _ASCII_NAME[name]
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = "".join(ch for ch in folded.lower() if "a" <= ch <= "z")
    if not slug:
        raise ValueError(f"no ASCII form for pool name {name!r}: add it to _ASCII_NAME")
    return slug


_FIRST = np.array([n for g in _NAME_GROUPS for n in g[1]], dtype=object)
_LAST = np.array([n for g in _NAME_GROUPS for n in g[2]], dtype=object)
_FIRST_SLUG = np.array([_ascii_slug(n) for n in _FIRST], dtype=object)
_LAST_SLUG = np.array([_ascii_slug(n) for n in _LAST], dtype=object)
_FIRST_OFF = np.cumsum([0] + [len(g[1]) for g in _NAME_GROUPS])
_LAST_OFF = np.cumsum([0] + [len(g[2]) for g in _NAME_GROUPS])

_SCHOOL_NAME_A = (
    "Oak", "Cedar", "Maple", "Willow", "Sycamore", "Juniper", "Madrone", "Redwood", "Alder", "Aspen", "Laurel",
    "Magnolia", "Manzanita", "Poppy", "Sequoia", "Cypress", "Buckeye", "Olive", "Walnut", "Palm", "Mesa", "Canyon",
    "Harbor", "Sunset", "Vista", "Mission", "Rancho", "Del Mar", "Arroyo", "Bay", "Sierra", "Golden", "Pacific",
    "Hillcrest", "Lakeview", "Riverside", "Fairview", "Glenwood", "Brookside", "Meadow",
)
_SCHOOL_NAME_B = (
    "Grove", "Park", "Valley", "Hills", "Ridge", "Creek", "Heights", "Springs", "Knoll", "Terrace", "Glen", "Point",
    "Crossing", "Gardens", "Meadows", "Trail", "Vista", "Pines", "Landing", "Crest", "Hollow", "Bluff", "View",
    "Fields", "Woods",
)
_SCHOOL_NAME_PEOPLE = (
    "César Chávez", "Dolores Huerta", "Sally Ride", "Thurgood Marshall", "Fred T. Korematsu", "Ruby Bridges",
    "Sylvia Mendez", "Harvey Milk", "Maya Angelou", "John Muir", "Ellen Ochoa", "Mae Jemison",
)

_LANGUAGE_NONE = "00"
_HOMELESS_CODES = (("100", 0.10), ("200", 0.70), ("300", 0.05), ("400", 0.15))
_DISABILITY_CODES = (
    ("290", 0.38), ("240", 0.20), ("320", 0.15), ("280", 0.13), ("210", 0.06), ("260", 0.04), ("310", 0.02),
    ("220", 0.01), ("270", 0.01),
)
_FP_LETTERS = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"), dtype=object)
_FP_CENTER = {"TK": 0, "KG": 2, "01": 7, "02": 11, "03": 14, "04": 17, "05": 20}

_EPOCH = dt.date(1970, 1, 1)
_NULL_DAY = -1


# --------------------------------------------------------------------------------------------------------------------
# Small helpers


def default_school_year(today: dt.date | None = None) -> int:
    """The spring year of the school year (Aug 1 .. Jul 31) containing ``today``: 2026-11-23 -> 2027."""
    today = today or dt.date.today()
    return today.year + 1 if today.month >= 8 else today.year


def _day(year: int, month: int, day: int) -> int:
    return (dt.date(year, month, day) - _EPOCH).days


def _busday(days, roll: str = "forward", offset=0) -> np.ndarray:
    """Weekday on/after (``forward``) or on/before (``backward``) the given day numbers, plus ``offset`` weekdays."""
    arr = np.asarray(days, dtype=np.int64).astype("datetime64[D]")
    return np.busday_offset(arr, offset, roll=roll).astype(np.int64)


def _rand_busday(rng: np.random.Generator, lo: int, hi: int, n: int) -> np.ndarray:
    """Uniform weekdays in [lo, hi] (lo must itself be a weekday)."""
    return _busday(rng.integers(lo, hi + 1, n), roll="backward")


def _iso(days: np.ndarray) -> np.ndarray:
    """Day numbers -> object array of 'YYYY-MM-DD' (None where negative = NULL)."""
    days = np.asarray(days, dtype=np.int64)
    uniq, inverse = np.unique(days, return_inverse=True)
    labels = np.datetime_as_string(np.maximum(uniq, 0).astype("datetime64[D]")).astype(object)
    labels[uniq < 0] = None
    return labels[inverse.reshape(-1)]


def _str_ids(numbers: np.ndarray, prefix: str = "") -> np.ndarray:
    out = np.asarray(numbers).astype(np.int64).astype(str).astype(object)
    return out if not prefix else np.array([prefix + s for s in out], dtype=object)


def _unique_numbers(rng: np.random.Generator, n: int, start: int, stop: int, max_gap: int) -> np.ndarray:
    """``n`` distinct integers in [start, stop), increasing with random gaps, in random order."""
    gap = max(1, min(max_gap, (stop - start - 1) // max(n, 1)))
    values = start + rng.integers(0, gap) + np.cumsum(rng.integers(1, gap + 1, n))
    if n and values[-1] >= stop:
        raise ValueError(f"cannot draw {n} distinct values in [{start}, {stop})")
    return rng.permutation(values)


def _apportion(total: int, weights: np.ndarray, minimum: int = 0) -> np.ndarray:
    """Largest-remainder split of ``total`` by ``weights`` (deterministic), each part at least ``minimum``."""
    weights = np.asarray(weights, dtype=float)
    raw = total * weights / weights.sum()
    counts = np.floor(raw).astype(np.int64)
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[: total - counts.sum()]] += 1
    if minimum:
        eligible = weights > 0
        while (short := np.flatnonzero(eligible & (counts < minimum))).size:
            counts[short[0]] += 1
            counts[np.argmax(counts)] -= 1
    return counts


def _choose(rng: np.random.Generator, candidates: np.ndarray, k: int) -> np.ndarray:
    """``k`` distinct members of ``candidates`` (all of them if fewer), sorted."""
    candidates = np.asarray(candidates)
    k = int(min(max(k, 0), candidates.size))
    return np.sort(rng.choice(candidates, size=k, replace=False)) if k else candidates[:0]


def _weighted(rng: np.random.Generator, options, n: int) -> np.ndarray:
    values = np.array([o[0] for o in options], dtype=object)
    p = np.array([o[1] for o in options], dtype=float)
    return values[rng.choice(len(values), size=n, p=p / p.sum())]


def _group_rank(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For rows already sorted by ``keys``: (rank within group, group number per row, group start offsets)."""
    n = keys.size
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    group = np.repeat(np.arange(starts.size), np.diff(np.r_[starts, n]))
    return np.arange(n) - starts[group], group, starts


def _frame(table: str, data: dict) -> pd.DataFrame:
    return pd.DataFrame({column: data[column] for column in COLUMNS[table]})


def _draw_names(rng: np.random.Generator, group: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices into _FIRST (first, middle or -1) and _LAST for people of the given name groups."""
    n = group.size
    first = np.empty(n, np.int64)
    middle = np.empty(n, np.int64)
    last = np.empty(n, np.int64)
    for g, (_, firsts, lasts, _) in enumerate(_NAME_GROUPS):
        idx = np.flatnonzero(group == g)
        first[idx] = _FIRST_OFF[g] + rng.integers(0, len(firsts), idx.size)
        middle[idx] = _FIRST_OFF[g] + rng.integers(0, len(firsts), idx.size)
        last[idx] = _LAST_OFF[g] + rng.integers(0, len(lasts), idx.size)
    middle[rng.random(n) < 0.45] = -1
    return first, middle, last


def _name_group(rng: np.random.Generator, n: int) -> np.ndarray:
    p = np.array([g[0] for g in _NAME_GROUPS])
    return rng.choice(len(_NAME_GROUPS), size=n, p=p / p.sum())


def _names_of(idx: np.ndarray, pool: np.ndarray) -> np.ndarray:
    out = pool[np.maximum(idx, 0)]
    out[idx < 0] = None
    return out


# --------------------------------------------------------------------------------------------------------------------
# Sections


def _assign_sections(key: np.ndarray, target: np.ndarray, rng: np.random.Generator):
    """Split the rows of each ``key`` into ceil(count / target) sections, students dealt round-robin in random order.

    Returns (section per row, group key per section).
    """
    n = key.size
    order = np.lexsort((rng.random(n), key))
    sorted_key = key[order]
    rank, group, starts = _group_rank(sorted_key)
    counts = np.diff(np.r_[starts, n])
    sections = np.maximum(1, np.ceil(counts / target[order][starts]).astype(np.int64))
    first_section = np.r_[0, np.cumsum(sections)[:-1]]
    section_sorted = first_section[group] + rank % sections[group]
    section = np.empty(n, np.int64)
    section[order] = section_sorted
    return section, np.repeat(sorted_key[starts], sections)


def _secondary_teachers(school, tgroup, period, term, rng):
    """Lead teachers for period-scheduled sections, per (school, teaching group): no teacher has two sections in the
    same period at the same time (a full-year section blocks both semesters), about six of the seven periods each.

    Returns (local teacher number, teachers per department, department key per section)."""
    n = school.size
    dept = school * len(_TEACH_GROUPS) + tgroup
    frame = pd.DataFrame({"dept": dept, "period": period, "term": term, "r": rng.random(n), "row": np.arange(n)})
    frame = frame.sort_values(["dept", "period", "term", "r"], kind="stable").reset_index(drop=True)
    frame["rk"] = frame.groupby(["dept", "period", "term"], sort=False).cumcount()
    full_year = (frame["term"] == 0).groupby([frame["dept"], frame["period"]], sort=False).transform("sum")
    frame["slot"] = frame["rk"] + np.where(frame["term"] > 0, full_year, 0)
    cells = frame.groupby(["dept", "period"], sort=True).agg(load=("slot", "max"))
    cells["load"] += 1
    frame["weight"] = np.where(frame["term"] == 0, 1.0, 0.5)
    depts = pd.DataFrame({
        "max_load": cells.groupby(level="dept")["load"].max(),
        "year_equiv": frame.groupby("dept")["weight"].sum(),
    })
    depts["teachers"] = np.maximum(depts["max_load"], np.ceil(depts["year_equiv"] / 6.0)).astype(np.int64)
    cells["offset"] = cells.groupby(level="dept")["load"].cumsum() - cells["load"]
    cells = cells.join(depts["teachers"], on="dept")
    cells["offset"] %= cells["teachers"]
    joined = frame.join(cells[["offset", "teachers"]], on=["dept", "period"])
    local = ((joined["slot"] + joined["offset"]) % joined["teachers"]).to_numpy()
    out = np.empty(n, np.int64)
    out[frame["row"].to_numpy()] = local
    return out, depts["teachers"], dept


# --------------------------------------------------------------------------------------------------------------------
# The generator


def generate_district(
    students: int, *, seed: int = 20261123, school_year: int | None = None
) -> dict[str, pd.DataFrame]:
    """Generate a demo district of about ``students`` students: table name -> DataFrame with the DDL's columns.

    Pure and deterministic for given arguments (``school_year=None`` means the current school year, so only that
    default depends on the clock). Dates are 'YYYY-MM-DD' strings, flags int 0/1, missing values None/NaN.
    """
    n = int(students)
    if n < MIN_STUDENTS:
        raise ValueError(f"students must be at least {MIN_STUDENTS} (got {students})")
    year = default_school_year() if school_year is None else int(school_year)
    rng = np.random.default_rng(seed)

    # ---- calendar ----------------------------------------------------------------------------------------------
    ys = int(_busday(_day(year - 1, 8, 14)))
    ye = int(_busday(_day(year, 6, 11), "backward"))
    s1e = int(_busday(_day(year - 1, 12, 19), "backward"))
    s2s = int(_busday(_day(year, 1, 6)))
    q1e = int(_busday(_day(year - 1, 10, 16), "backward"))
    q3e = int(_busday(_day(year, 3, 19), "backward"))
    term_start = np.array([ys, ys, s2s, ys, int(_busday(q1e, offset=1)), s2s, int(_busday(q3e, offset=1))])
    term_end = np.array([ye, s1e, ye, q1e, s1e, q3e, ye])
    term_ids = np.array([f"{year}-{s}" for s in ("Y", "S1", "S2", "Q1", "Q2", "Q3", "Q4")], dtype=object)
    fall, spring = year - 1, year
    term_df = _frame("term", {
        "term_id": term_ids,
        "school_id": np.full(7, None, dtype=object),
        "school_year": np.full(7, year, dtype=np.int64),
        "term_type": np.array(["schoolYear", "semester", "semester"] + ["gradingPeriod"] * 4, dtype=object),
        "title": np.array([f"{fall}-{spring}", f"Fall Semester {fall}", f"Spring Semester {spring}",
                           f"Quarter 1 {fall}-{spring}", f"Quarter 2 {fall}-{spring}", f"Quarter 3 {fall}-{spring}",
                           f"Quarter 4 {fall}-{spring}"], dtype=object),
        "start_date": _iso(term_start),
        "end_date": _iso(term_end),
        "parent_term_id": np.array([None, term_ids[0], term_ids[0], term_ids[1], term_ids[1], term_ids[2],
                                    term_ids[2]], dtype=object),
    })
    event_lo = int(_busday(_day(year - 1, 9, 2)))       # withdrawals / school changes / re-entries happen between
    event_hi = int(_busday(_day(year - 1, 11, 6), "backward"))  # early September and early November

    # ---- grades and schools ------------------------------------------------------------------------------------
    n_cds = max(3, round(0.003 * n))
    main_counts = _apportion(n - n_cds, _GRADE_WEIGHT, minimum=1)
    cds_weight = np.zeros(len(GRADES))
    cds_weight[_G["07"]:] = (0.5, 0.7, 1.0, 1.2, 1.3, 1.2)
    cds_counts = _apportion(n_cds, cds_weight)
    level_students = {lvl: int(main_counts[_LEVEL_OF_GRADE == lvl].sum()) for lvl in (ELEMENTARY, MIDDLE, HIGH)}
    n_schools = {lvl: max(1, round(level_students[lvl] / _SCHOOL_SIZE[lvl])) for lvl in (ELEMENTARY, MIDDLE, HIGH)}
    school_level = np.array(
        [ELEMENTARY] * n_schools[ELEMENTARY] + [MIDDLE] * n_schools[MIDDLE] + [HIGH] * n_schools[HIGH]
        + [OTHER, ELEMENTARY]
    )
    n_sch = school_level.size
    cds = n_sch - 2
    closed = n_sch - 1
    school_active = np.ones(n_sch, np.int64)
    school_active[closed] = 0
    school_excluded = np.zeros(n_sch, np.int64)
    school_excluded[cds] = 1
    size_factor = rng.uniform(0.7, 1.3, n_sch)
    level_schools = {lvl: np.flatnonzero(school_level[:cds] == lvl) for lvl in (ELEMENTARY, MIDDLE, HIGH)}
    elem = level_schools[ELEMENTARY]
    pk_schools = _choose(rng, elem, max(1, round(elem.size / 3)))
    has_pk = np.zeros(n_sch, bool)
    has_pk[pk_schools] = True

    grade_parts, school_parts = [], []
    for g, count in enumerate(main_counts):
        candidates = pk_schools if g == _G["PK"] else level_schools[_LEVEL_OF_GRADE[g]]
        p = size_factor[candidates] / size_factor[candidates].sum()
        grade_parts.append(np.full(count, g))
        school_parts.append(candidates[rng.choice(candidates.size, size=count, p=p)])
    for g, count in enumerate(cds_counts):
        grade_parts.append(np.full(count, g))
        school_parts.append(np.full(count, cds))
    grade = np.concatenate(grade_parts).astype(np.int64)
    school = np.concatenate(school_parts).astype(np.int64)
    assert grade.size == n

    # school attributes
    combos = [f"{a} {b}" for a in _SCHOOL_NAME_A for b in _SCHOOL_NAME_B]
    for compass in ("North", "South", "East", "West"):
        if len(combos) >= n_sch:
            break
        combos += [f"{compass} {a} {b}" for a in _SCHOOL_NAME_A for b in _SCHOOL_NAME_B]
    people = rng.permutation(np.array(_SCHOOL_NAME_PEOPLE, dtype=object))[:4]
    base_names = rng.permutation(np.r_[people, rng.permutation(np.array(combos, dtype=object))[:n_sch]])[:n_sch]
    suffix = np.array(["Elementary School", "Middle School", "High School", "Community Day School"], dtype=object)
    school_name = np.array([f"{b} {suffix[lvl]}" for b, lvl in zip(base_names, school_level)], dtype=object)
    school_id = _str_ids(np.arange(1, n_sch + 1))
    school_number = _str_ids(np.arange(101, 101 + n_sch))
    level_code_base = np.select([school_level == ELEMENTARY, school_level == MIDDLE, school_level == HIGH],
                                [6000000, 6050000, 1930000], 100000)
    seven = level_code_base + 11 + 37 * np.arange(n_sch)
    cds_code = np.array([f"{DISTRICT_CDS}{s:07d}" for s in seven], dtype=object)
    nces = np.array([f"{DISTRICT_NCES}{101 + 3 * i:05d}" for i in range(n_sch)], dtype=object)
    low = np.array(["PK" if has_pk[i] else {ELEMENTARY: "TK", MIDDLE: "06", HIGH: "09", OTHER: "07"}[lvl]
                    for i, lvl in enumerate(school_level)], dtype=object)
    high = np.array([{ELEMENTARY: "05", MIDDLE: "08", HIGH: "12", OTHER: "12"}[lvl] for lvl in school_level],
                    dtype=object)
    school_df = _frame("school", {
        "school_id": school_id, "district_id": np.full(n_sch, DISTRICT_ID, dtype=object),
        "school_number": school_number, "name": school_name, "cds_code": cds_code, "nces_id": nces,
        "school_level": np.array(_LEVEL_NAME, dtype=object)[school_level], "low_grade": low, "high_grade": high,
        "classification": np.full(n_sch, "public", dtype=object), "is_active": school_active,
        "excluded_from_state_reporting": school_excluded,
    })
    district_df = _frame("district", {
        "district_id": [DISTRICT_ID], "name": [DISTRICT_NAME], "cds_district_code": [DISTRICT_CDS],
        "nces_id": [DISTRICT_NCES], "state_code": ["CA"],
    })
    course_df = _frame("course", {
        "course_id": _str_ids(3001 + np.arange(len(_COURSES))),
        "course_number": np.array([c[0] for c in _COURSES], dtype=object),
        "title": np.array([c[1] for c in _COURSES], dtype=object),
        "department": np.array([c[2] for c in _COURSES], dtype=object),
        "subject_area": np.array([c[3] for c in _COURSES], dtype=object),
    })
    course_ids = course_df["course_id"].to_numpy(dtype=object)

    # ---- students: identity and demographics -------------------------------------------------------------------
    student_id = _str_ids(_unique_numbers(rng, n, 100000, 10_000_000, 8))
    ssid_numbers = _unique_numbers(rng, n, 1_000_000_000 + int(rng.integers(0, 10**8)), 9_999_999_999, 300)
    ssid = _str_ids(ssid_numbers)
    group = _name_group(rng, n)
    first, middle, last = _draw_names(rng, group)
    spots = rng.permutation(n)[: len(_FORCED_FIRST) + len(_FORCED_LAST)]
    first[spots[: len(_FORCED_FIRST)]] = [int(np.flatnonzero(_FIRST == f)[0]) for f in _FORCED_FIRST]
    last[spots[len(_FORCED_FIRST):]] = [int(np.flatnonzero(_LAST == s)[0]) for s in _FORCED_LAST]
    language = np.empty(n, dtype=object)
    for g, (_, _, _, languages) in enumerate(_NAME_GROUPS):
        idx = np.flatnonzero(group == g)
        language[idx] = _weighted(rng, tuple(languages.items()), idx.size)
    age = _AGE_ON_SEP_1[grade] + (rng.random(n) < 0.03)               # ~3% retained a year
    birth = np.array([_day(year - 1 - a - 1, 9, 2) for a in range(0, 25)])[age] + rng.integers(0, 365, n)
    is_elem_grade = _LEVEL_OF_GRADE[grade] == ELEMENTARY
    secondary_student = ~is_elem_grade

    reading = np.full(n, None, dtype=object)
    imputed = np.zeros(n, np.int64)
    reading_idx = np.full(n, -99, np.int64)
    for code, center in _FP_CENTER.items():
        idx = np.flatnonzero(grade == _G[code])
        value = np.clip(np.rint(center + rng.normal(0, 1.6, idx.size)), 0, 25).astype(np.int64)
        keep = rng.random(idx.size) >= 0.05                              # ~5% not assessed yet
        reading_idx[idx[keep]] = value[keep] - center
        reading[idx[keep]] = _FP_LETTERS[value[keep]]
    has_level = np.flatnonzero(reading != None)  # noqa: E711 - object array comparison
    imputed[has_level[rng.random(has_level.size) < 0.1]] = 1

    # ---- edge populations (disjoint where they would interfere) ------------------------------------------------
    used = np.zeros(n, bool)
    pk = grade == _G["PK"]
    prev_school = np.full(n, -1, np.int64)
    move_day = np.full(n, _NULL_DAY, np.int64)
    n_changers = max(2, round(0.01 * n))
    to_cds_pool = np.flatnonzero((grade >= _G["07"]) & (school != cds))
    same_pool = np.flatnonzero(
        ~pk & (school != cds) & np.isin(_LEVEL_OF_GRADE[grade], [lvl for lvl, s in level_schools.items() if s.size > 1])
    )
    n_to_cds = n_changers if same_pool.size == 0 else max(1, round(0.06 * n_changers))
    to_cds = _choose(rng, to_cds_pool, n_to_cds)
    used[to_cds] = True
    same = _choose(rng, same_pool[~used[same_pool]], n_changers - to_cds.size)
    used[same] = True
    prev_school[to_cds] = school[to_cds]
    school[to_cds] = cds
    for lvl, schools_of_level in level_schools.items():
        idx = same[_LEVEL_OF_GRADE[grade[same]] == lvl]
        if idx.size:
            pos = np.searchsorted(schools_of_level, school[idx])
            j = rng.integers(0, schools_of_level.size - 1, idx.size)
            j += j >= pos
            prev_school[idx] = school[idx]
            school[idx] = schools_of_level[j]
    changers = np.sort(np.r_[to_cds, same])
    move_day[changers] = _rand_busday(rng, event_lo, event_hi, changers.size)

    withdrawn = _choose(rng, np.flatnonzero(~used), max(2, round(0.02 * n)))
    used[withdrawn] = True
    exit_day = np.full(n, _NULL_DAY, np.int64)
    exit_day[withdrawn] = _rand_busday(rng, event_lo, event_hi, withdrawn.size)
    late = _choose(rng, np.flatnonzero(~used), max(1, round(0.02 * n)))
    used[late] = True
    entry_day = np.full(n, ys, np.int64)
    entry_day[late] = _rand_busday(rng, int(_busday(ys, offset=3)), event_hi, late.size)
    entry_day[changers] = _busday(move_day[changers], offset=rng.integers(1, 6, changers.size))
    reentry = _choose(rng, np.flatnonzero(~used), max(2, round(0.002 * n)))
    used[reentry] = True

    status = np.full(n, "10", dtype=object)
    odd_status = _choose(rng, np.setdiff1d(np.arange(n), changers), max(2, round(0.02 * n)))
    status[odd_status] = np.where(np.arange(odd_status.size) % 2 == 0, "20", "30")
    student_excluded = np.zeros(n, np.int64)
    student_excluded[_choose(rng, np.arange(n), max(1, round(0.01 * n)))] = 1
    no_ssid = pk.copy()
    no_ssid[_choose(rng, np.flatnonzero(~pk), max(1, round(0.02 * n) - int(pk.sum())))] = True
    ssid[no_ssid] = None

    # ---- English learner status (needed for the schedule: ELD replaces an elective) ----------------------------
    el_status = np.zeros(n, np.int64)          # 0 none, 1 EL, 2 RFEP, 3 IFEP
    speaks_other = (language != _LANGUAGE_NONE) & ~pk
    g_num = grade.astype(float)
    p_el = np.clip(0.50 - 0.025 * g_num, 0.15, None)
    p_rfep = np.where(grade >= _G["02"], 0.03 + 0.025 * g_num, 0.0)
    p_ifep = np.full(n, 0.10)
    u = rng.random(n)
    el_status[speaks_other & (u < p_el)] = 1
    el_status[speaks_other & (u >= p_el) & (u < p_el + p_rfep)] = 2
    el_status[speaks_other & (u >= p_el + p_rfep) & (u < p_el + p_rfep + p_ifep)] = 3

    # ---- enrollment spans: the current one, plus the earlier one of each school changer --------------------------
    span_student = np.r_[np.arange(n), changers]
    span_school = np.r_[school, prev_school[changers]]
    span_start = np.r_[entry_day, np.full(changers.size, ys)]
    span_end = np.r_[exit_day, move_day[changers]]
    span_grade = grade[span_student]
    n_span = span_student.size

    # ---- schedules: (span, course, term, period, grade key) rows ------------------------------------------------
    rows_span, rows_course, rows_term, rows_period, rows_gkey = [], [], [], [], []

    def add_rows(spans, course, term, period, gkey=0):
        rows_span.append(np.asarray(spans, np.int64))
        for store, value in ((rows_course, course), (rows_term, term), (rows_period, period), (rows_gkey, gkey)):
            store.append(np.broadcast_to(np.asarray(value, np.int64), spans.shape).copy())

    span_level = np.where(span_school == cds, OTHER, _LEVEL_OF_GRADE[span_grade])
    for g in range(_G["PK"], _G["06"]):
        spans = np.flatnonzero((span_grade == g) & (span_level == ELEMENTARY))
        add_rows(spans, _C[f"HR-{GRADES[g]}"], 0, _HR)
        if g >= _G["03"]:
            add_rows(spans, _C["PE-ELEM"], 0, _SP, g + 1)
        if g >= _G["04"]:
            band = spans[rng.random(spans.size) < 0.25]
            add_rows(band, _C["MUS-ELEM"], 0, _SP)
    # secondary students move through the day in teams of ~32 that share a rotation of the seven slots over the
    # periods, so core classes fill up (a per-student rotation would scatter each course over all periods)
    team_order = np.lexsort((rng.random(n_span), span_grade, span_school))
    team_rank, team_group, team_starts = _group_rank(span_school[team_order] * len(GRADES) + span_grade[team_order])
    n_teams = np.ceil(np.diff(np.r_[team_starts, n_span]) / 32).astype(np.int64)
    team_offset = rng.integers(0, 7, team_starts.size)
    rotation = np.empty(n_span, np.int64)
    rotation[team_order] = (team_rank % n_teams[team_group] + team_offset[team_group]) % 7
    for code, slots in _SLOTS.items():
        spans = np.flatnonzero((span_grade == _G[code]) & (span_level != ELEMENTARY) & (span_level != OTHER))
        m = spans.size
        if not m:
            continue
        pool = _MS_ELECTIVES if _LEVEL_OF_GRADE[_G[code]] == MIDDLE else _HS_ELECTIVES
        n_elec = sum(1 for s in slots if s == "ELEC")
        electives = np.argsort(rng.random((m, len(pool))), axis=1)[:, :n_elec]
        elective_courses = np.array([_C[c] for c in pool])[electives]
        learners = el_status[span_student[spans]] == 1
        elective_courses[learners, n_elec - 1] = _C["ELD"]
        e = 0
        for slot, spec in enumerate(slots):
            period = (slot + rotation[spans]) % 7 + 1
            if spec == "ELEC":
                add_rows(spans, elective_courses[:, e], 0, period)
                e += 1
            elif spec[0] == "PAIR":
                add_rows(spans, _C[spec[1]], 1, period)
                add_rows(spans, _C[spec[2]], 2, period)
            else:
                chosen = _weighted(rng, spec, m)
                add_rows(spans, np.array([_C[c] for c in chosen], dtype=np.int64), 0, period)
    cds_spans = np.flatnonzero(span_level == OTHER)
    for slot, course in enumerate(_CDS_SLOTS):
        add_rows(cds_spans, _C[course], 0, slot + 1)

    r_span = np.concatenate(rows_span)
    r_course = np.concatenate(rows_course)
    r_term = np.concatenate(rows_term)
    r_period = np.concatenate(rows_period)
    r_gkey = np.concatenate(rows_gkey)
    r_school = span_school[r_span]
    # class size caps: a key's students are split into ceil(count / cap) sections
    target = np.full(r_span.size, 36)
    hr_grade = span_grade[r_span]
    is_hr = r_period == _HR
    target[is_hr] = np.where(hr_grade[is_hr] <= _G["TK"], 24, np.where(hr_grade[is_hr] <= _G["03"], 28, 33))
    target[r_period == _SP] = 34
    target[r_course == _C["ELD"]] = 26
    n_courses = len(_COURSES)
    key = (((r_school * 9 + r_period) * n_courses + r_course) * 3 + r_term) * 16 + r_gkey
    r_section, sec_key = _assign_sections(key, target, rng)

    # decode sections, add inactive and empty clones, then number them per school
    rest = sec_key // 16
    s_term = rest % 3
    rest //= 3
    s_course = rest % n_courses
    rest //= n_courses
    s_period = rest % 9
    s_school = rest // 9
    n_regular = sec_key.size
    clone_pool = np.flatnonzero(s_period != _HR)
    n_inactive = max(1, round(0.01 * n_regular))
    n_empty = max(1, round(0.01 * n_regular))
    templates = rng.choice(clone_pool, size=n_inactive + n_empty, replace=True)
    s_term = np.r_[s_term, s_term[templates]]
    s_course = np.r_[s_course, s_course[templates]]
    s_period = np.r_[s_period, s_period[templates]]
    s_school = np.r_[s_school, s_school[templates]]
    s_active = np.r_[np.ones(n_regular, np.int64), np.zeros(n_inactive, np.int64), np.ones(n_empty, np.int64)]
    s_clone = np.r_[np.zeros(n_regular, np.int64), np.ones(n_inactive + n_empty, np.int64)]
    order = np.lexsort((s_clone, s_term, s_course, s_period, s_school))
    new_index = np.empty(order.size, np.int64)
    new_index[order] = np.arange(order.size)
    r_section = new_index[r_section]
    s_term, s_course, s_period, s_school, s_active = (
        a[order] for a in (s_term, s_course, s_period, s_school, s_active)
    )
    n_sec = s_school.size
    sec_rank_in_school, _, _ = _group_rank(s_school)
    section_number = _str_ids(1001 + sec_rank_in_school)
    section_id = _str_ids(200001 + np.arange(n_sec))

    # ---- lead teachers -----------------------------------------------------------------------------------------
    s_tg = _COURSE_TG[s_course]
    teacher_school_parts, teacher_tg_parts = [], []
    lead = np.full(n_sec, -1, np.int64)
    next_teacher = 0
    # elementary homerooms: one teacher each
    hr = np.flatnonzero(s_period == _HR)
    lead[hr] = next_teacher + np.arange(hr.size)
    teacher_school_parts.append(s_school[hr])
    teacher_tg_parts.append(s_tg[hr])
    next_teacher += hr.size
    # elementary specials: one teacher per ten sections, per school and subject
    sp = np.flatnonzero(s_period == _SP)
    sp = sp[np.lexsort((s_tg[sp], s_school[sp]))]
    sp_key = s_school[sp] * len(_TEACH_GROUPS) + s_tg[sp]
    rank, grp, starts = _group_rank(sp_key)
    counts = np.diff(np.r_[starts, sp.size])
    teachers = np.ceil(counts / 10).astype(np.int64)
    first_teacher = next_teacher + np.r_[0, np.cumsum(teachers)[:-1]]
    lead[sp] = first_teacher[grp] + rank % teachers[grp]
    teacher_school_parts.append(np.repeat(s_school[sp][starts], teachers))
    teacher_tg_parts.append(np.repeat(s_tg[sp][starts], teachers))
    next_teacher += int(teachers.sum())
    # secondary periods
    per = np.flatnonzero((s_period >= 1) & (s_period <= 7))
    local, dept_teachers, _dept = _secondary_teachers(s_school[per], s_tg[per], s_period[per], s_term[per], rng)
    dept_keys = dept_teachers.index.to_numpy()
    dept_first = next_teacher + np.r_[0, np.cumsum(dept_teachers.to_numpy())[:-1]]
    lead[per] = dept_first[np.searchsorted(dept_keys, _dept)] + local
    teacher_school_parts.append(np.repeat(dept_keys // len(_TEACH_GROUPS), dept_teachers.to_numpy()))
    teacher_tg_parts.append(np.repeat(dept_keys % len(_TEACH_GROUPS), dept_teachers.to_numpy()))
    next_teacher += int(dept_teachers.sum())
    teacher_school = np.concatenate(teacher_school_parts)
    teacher_tg = np.concatenate(teacher_tg_parts)
    n_teachers = next_teacher

    # rooms follow the teacher (PE in the gym, elementary specials in the MPR / music room)
    t_order = np.lexsort((np.arange(n_teachers), teacher_school))
    t_rank = np.empty(n_teachers, np.int64)
    t_rank[t_order], _, _ = _group_rank(teacher_school[t_order])
    lead_rank = t_rank[lead]
    room = np.where(s_period == _HR, (1 + lead_rank).astype(str),
                    np.char.add(np.array(list("ABCDEFGH"))[np.minimum(lead_rank // 30, 7)],
                                (101 + lead_rank % 30).astype(str))).astype(object)
    tg_name = np.array(_TEACH_GROUPS, dtype=object)[s_tg]
    room[tg_name == "PE"] = "GYM"
    room[tg_name == "ELEM-PE"] = "MPR"
    room[tg_name == "ELEM-MUS"] = "MUSIC"
    room[rng.random(n_sec) < 0.02] = None

    # ~3% of teachers also teach one section at a second school (a free period there, same level when possible)
    extra_school_rows = []
    movable = np.flatnonzero(teacher_tg != _TEACH_GROUPS.index("HR"))
    movers = _choose(rng, movable, max(1, round(0.03 * n_teachers)))
    non_hr = np.flatnonzero(s_period != _HR)
    non_hr = non_hr[np.argsort(s_school[non_hr], kind="stable")]
    nh_schools, nh_starts = np.unique(s_school[non_hr], return_index=True)
    by_school = dict(zip(nh_schools.tolist(), np.split(non_hr, nh_starts[1:])))
    by_level: dict[int, list[int]] = {}
    for s in by_school:
        by_level.setdefault(int(school_level[s]), []).append(s)
    mover_sections = np.isin(lead, movers)
    busy = {int(t): set(p) for t, p in
            pd.Series(s_period[mover_sections]).groupby(lead[mover_sections]).agg(list).items()}
    taken: set[int] = set()
    for t in movers.tolist():
        home = int(teacher_school[t])
        options = [s for s in by_level.get(int(school_level[home]), []) if s != home]
        if not options:
            options = [s for s in by_school if s != home]
        if not options:
            continue
        target_school = options[int(rng.integers(0, len(options)))]
        candidates = by_school[target_school]
        same_subject = candidates[s_tg[candidates] == teacher_tg[t]]
        candidates = same_subject if same_subject.size else candidates
        periods = busy.get(t, set())
        for sec in rng.choice(candidates, size=min(8, candidates.size), replace=False).tolist():
            if sec in taken or (s_period[sec] in periods and s_period[sec] != _SP):
                continue
            taken.add(sec)
            lead[sec] = t
            extra_school_rows.append((t, target_school))
            break
    extra_school_rows = sorted(set(extra_school_rows))

    # ---- other staff -------------------------------------------------------------------------------------------
    enrolled_at = np.bincount(school, minlength=n_sch)
    active_schools = np.flatnonzero(school_active == 1)
    secondary_schools = np.flatnonzero(np.isin(school_level, [MIDDLE, HIGH, OTHER]) & (school_active == 1))
    n_counselors = np.zeros(n_sch, np.int64)
    n_counselors[secondary_schools] = np.maximum(1, np.rint(enrolled_at[secondary_schools] / 400)).astype(np.int64)
    n_admins = np.zeros(n_sch, np.int64)
    n_admins[active_schools] = 1 + np.select(
        [school_level[active_schools] == HIGH, school_level[active_schools] == MIDDLE],
        [np.maximum(1, np.rint(enrolled_at[active_schools] / 800)), 1], 0).astype(np.int64)
    n_aides = np.zeros(n_sch, np.int64)
    elem_active = np.flatnonzero((school_level == ELEMENTARY) & (school_active == 1))
    n_aides[elem_active] = np.maximum(1, np.rint(enrolled_at[elem_active] / 300)).astype(np.int64)
    n_aides[cds] = 1
    n_other = np.zeros(n_sch, np.int64)
    n_other[np.flatnonzero(np.isin(school_level, [MIDDLE, HIGH]) & (school_active == 1))] = 1
    n_district_admins = 3
    n_inactive_staff = max(2, round(0.01 * (n_teachers + n_admins.sum() + n_counselors.sum() + n_aides.sum())))

    roles = (["district_administrator"] * n_district_admins
             + ["administrator"] * int(n_admins.sum()) + ["counselor"] * int(n_counselors.sum())
             + ["teacher"] * n_teachers + ["aide"] * int(n_aides.sum()) + ["other"] * int(n_other.sum())
             + ["teacher"] * n_inactive_staff)
    staff_role = np.array(roles, dtype=object)
    n_staff = staff_role.size
    inactive_home = rng.choice(active_schools, size=n_inactive_staff)
    inactive_home[0] = closed
    staff_home = np.r_[np.full(n_district_admins, -1), np.repeat(np.arange(n_sch), n_admins),
                       np.repeat(np.arange(n_sch), n_counselors), teacher_school,
                       np.repeat(np.arange(n_sch), n_aides), np.repeat(np.arange(n_sch), n_other),
                       inactive_home].astype(np.int64)
    teacher_offset = n_district_admins + int(n_admins.sum()) + int(n_counselors.sum())
    counselor_offset = n_district_admins + int(n_admins.sum())
    aide_offset = teacher_offset + n_teachers
    staff_active = np.ones(n_staff, np.int64)
    staff_active[n_staff - n_inactive_staff:] = 0
    staff_ids = _str_ids(np.sort(_unique_numbers(rng, n_staff, 10000, 9_999_999, 3)))
    s_group = _name_group(rng, n_staff)
    sf, sm, sl = _draw_names(rng, s_group)
    base = pd.Series(_FIRST_SLUG[sf]) + "." + pd.Series(_LAST_SLUG[sl])
    dup = base.groupby(base).cumcount().to_numpy()
    local_part = np.where(dup == 0, base.to_numpy(dtype=object), base.to_numpy(dtype=object) + (dup + 1).astype(str))
    local_part = local_part.astype(object)
    certificated = np.isin(staff_role, ["teacher", "administrator", "district_administrator", "counselor"])
    seid = np.full(n_staff, None, dtype=object)
    cert_idx = np.flatnonzero(certificated)
    seid[cert_idx] = _str_ids(_unique_numbers(rng, cert_idx.size, 1_000_000_000 + int(rng.integers(0, 10**8)),
                                              9_999_999_999, 500))
    active_teachers = np.flatnonzero((staff_role == "teacher") & (staff_active == 1))
    seid[_choose(rng, active_teachers, max(1, round(0.01 * active_teachers.size)))] = None
    staff_df = _frame("staff", {
        "staff_id": staff_ids, "first_name": _FIRST[sf], "middle_name": _names_of(sm, _FIRST),
        "last_name": _LAST[sl], "email": np.array([f"{p}@{DOMAIN}" for p in local_part], dtype=object),
        "username": local_part, "state_educator_id": seid, "staff_role": staff_role, "is_active": staff_active,
        "initial_password": None,  # the demo district uses SSO: no per-user passwords
    })
    has_home = np.flatnonzero(staff_home >= 0)
    ss_staff = np.r_[has_home, [teacher_offset + t for t, _ in extra_school_rows]].astype(np.int64)
    ss_school = np.r_[staff_home[has_home], [s for _, s in extra_school_rows]].astype(np.int64)
    ss_home = np.r_[np.ones(has_home.size, np.int64), np.zeros(len(extra_school_rows), np.int64)]
    ss_order = np.lexsort((ss_school, ss_staff))
    staff_school_df = _frame("staff_school", {
        "staff_id": staff_ids[ss_staff[ss_order]], "school_id": school_id[ss_school[ss_order]],
        "is_home": ss_home[ss_order],
    })

    # ---- section staff -----------------------------------------------------------------------------------------
    lead_staff = teacher_offset + lead
    home_teachers = np.flatnonzero((staff_role == "teacher") & (staff_active == 1) & (staff_home >= 0))
    ht_sorted = home_teachers[np.argsort(staff_home[home_teachers], kind="stable")]
    ht_start = np.searchsorted(staff_home[ht_sorted], np.arange(n_sch))
    ht_count = np.searchsorted(staff_home[ht_sorted], np.arange(n_sch), side="right") - ht_start

    def colleague(sections: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Another active home teacher of each section's school (sections at one-teacher schools are dropped)."""
        sch = s_school[sections]
        ok = ht_count[sch] >= 2
        sections, sch = sections[ok], sch[ok]
        j = (rng.random(sections.size) * (ht_count[sch] - 1)).astype(np.int64)
        pick = ht_sorted[ht_start[sch] + j]
        clash = pick == lead_staff[sections]
        pick[clash] = ht_sorted[ht_start[sch[clash]] + ht_count[sch[clash]] - 1]
        return sections, pick

    perm = rng.permutation(n_sec)
    k_two, k_co, k_js = max(1, round(0.01 * n_sec)), max(1, round(0.03 * n_sec)), max(1, round(0.01 * n_sec))
    two_lead_secs, second_lead = colleague(np.sort(perm[:k_two]))
    co_secs, co_staff = colleague(np.sort(perm[k_two:k_two + k_co]))
    js_secs, js_staff = colleague(np.sort(perm[k_two + k_co:k_two + k_co + k_js]))
    # about a third of the aides are scheduled into one section of their school
    aide_staff = aide_offset + np.arange(int(n_aides.sum()))
    aide_who = aide_staff[rng.random(aide_staff.size) < 0.3]
    if aide_who.size == 0:
        aide_who = aide_staff[:1]
    sec_by_school = np.argsort(s_school, kind="stable")
    sec_start = np.searchsorted(s_school[sec_by_school], np.arange(n_sch))
    sec_count = np.searchsorted(s_school[sec_by_school], np.arange(n_sch), side="right") - sec_start
    aide_who = aide_who[sec_count[staff_home[aide_who]] > 0]
    aide_school = staff_home[aide_who]
    aide_secs = sec_by_school[sec_start[aide_school]
                              + (rng.random(aide_who.size) * sec_count[aide_school]).astype(np.int64)]

    sst_section = np.r_[np.arange(n_sec), two_lead_secs, co_secs, js_secs, aide_secs]
    sst_staff = np.r_[lead_staff, second_lead, co_staff, js_staff, aide_who]
    sst_role = np.r_[np.full(n_sec, "lead", dtype=object), np.full(two_lead_secs.size, "lead", dtype=object),
                     np.full(co_secs.size, "co_teacher", dtype=object), np.full(js_secs.size, "job_share", dtype=object),
                     np.full(aide_secs.size, "aide", dtype=object)]
    sst_order = np.lexsort((sst_staff, sst_section))
    section_staff_df = _frame("section_staff", {
        "section_id": section_id[sst_section[sst_order]], "staff_id": staff_ids[sst_staff[sst_order]],
        "staff_role": sst_role[sst_order], "start_date": _iso(term_start[s_term[sst_section[sst_order]]]),
        "end_date": np.full(sst_order.size, None, dtype=object),
    })

    caaspp = np.array([c[4] for c in _COURSES], dtype=object)[s_course]
    period_code = _PERIOD_CODE[s_period]
    section_df = _frame("section", {
        "section_id": section_id, "school_id": school_id[s_school], "course_id": course_ids[s_course],
        "term_id": term_ids[s_term], "section_number": section_number, "period_code": period_code,
        "class_expression": np.array([f"{p}(A)" for p in _PERIOD_CODE], dtype=object)[s_period],
        "room": room, "caaspp_subject": caaspp,
        "class_type": np.where(s_period == _HR, "homeroom", "scheduled").astype(object),
        "is_active": s_active, "start_date": np.full(n_sec, None, dtype=object),
        "end_date": np.full(n_sec, None, dtype=object),
    })

    # ---- enrollments -------------------------------------------------------------------------------------------
    enr_order = np.lexsort((span_start, span_student))
    enr_excluded = np.zeros(n_span, np.int64)
    enr_excluded[_choose(rng, np.arange(n_span), max(1, round(0.005 * n_span)))] = 1
    span_status = np.r_[status, np.full(changers.size, "10", dtype=object)]
    school_enrollment_df = _frame("school_enrollment", {
        "student_id": student_id[span_student[enr_order]], "school_id": school_id[span_school[enr_order]],
        "entry_date": _iso(span_start[enr_order]), "exit_date": _iso(span_end[enr_order]),
        "enrollment_status": span_status[enr_order], "excluded_from_state_reporting": enr_excluded[enr_order],
    })

    r_tstart = term_start[r_term]
    r_tend = term_end[r_term]
    r_sstart = span_start[r_span]
    r_send = span_end[r_span]
    keep = (r_tend >= r_sstart) & ((r_send < 0) | (r_tstart <= r_send))
    r_span, r_section, r_tstart, r_tend, r_sstart, r_send, r_term = (
        a[keep] for a in (r_span, r_section, r_tstart, r_tend, r_sstart, r_send, r_term))
    se_entry = np.maximum(r_tstart, r_sstart)
    se_exit = np.where((r_send >= 0) & (r_send < r_tend), r_send, _NULL_DAY)
    se_student = span_student[r_span]
    # re-entries: one year-long or fall section per chosen student, left and re-entered weeks later
    cand = np.flatnonzero(np.isin(se_student, reentry) & (r_term <= 1) & (se_entry == r_tstart))
    cand = cand[rng.permutation(cand.size)]
    _, first_of = np.unique(se_student[cand], return_index=True)
    split = np.sort(cand[first_of])
    left = _busday(r_tstart[split] + rng.integers(20, 60, split.size), "backward")
    back = _busday(left, offset=rng.integers(5, 15, split.size))
    se_exit[split] = left
    se_student = np.r_[se_student, se_student[split]]
    se_section = np.r_[r_section, r_section[split]]
    se_entry = np.r_[se_entry, back]
    se_exit = np.r_[se_exit, np.full(split.size, _NULL_DAY)]
    se_order = np.lexsort((se_entry, se_section, se_student))
    section_enrollment_df = _frame("section_enrollment", {
        "student_id": student_id[se_student[se_order]], "section_id": section_id[se_section[se_order]],
        "entry_date": _iso(se_entry[se_order]), "exit_date": _iso(se_exit[se_order]),
    })

    # ---- student table -----------------------------------------------------------------------------------------
    counselor = np.full(n, None, dtype=object)
    c_first = counselor_offset + np.r_[0, np.cumsum(n_counselors)[:-1]]
    sec_students = np.flatnonzero(secondary_student & (n_counselors[school] > 0))
    pick_c = c_first[school[sec_students]] + (rng.random(sec_students.size)
                                              * n_counselors[school[sec_students]]).astype(np.int64)
    counselor[sec_students] = staff_ids[pick_c]
    has_account = ~pk
    email = np.full(n, None, dtype=object)
    username = np.full(n, None, dtype=object)
    username[has_account] = np.char.add("s", student_id[has_account].astype(str)).astype(object)
    email[has_account] = np.char.add(username[has_account].astype(str), "@" + STUDENT_DOMAIN).astype(object)
    student_df = _frame("student", {
        "student_id": student_id, "ssid": ssid, "first_name": _FIRST[first], "middle_name": _names_of(middle, _FIRST),
        "last_name": _LAST[last], "grade_level": np.array(GRADES, dtype=object)[grade], "birth_date": _iso(birth),
        "email": email, "username": username, "counselor_staff_id": counselor, "home_language_code": language,
        "reading_level": reading, "reading_level_imputed": imputed, "excluded_from_state_reporting": student_excluded,
    })

    # ---- programs ----------------------------------------------------------------------------------------------
    p_student, p_code, p_status, p_start, p_end = [], [], [], [], []

    def add_program(who, code, status_codes, start, end):
        who = np.asarray(who, np.int64)
        p_student.append(who)
        p_code.append(np.full(who.size, code, dtype=object))
        p_status.append(np.broadcast_to(np.asarray(status_codes, dtype=object), who.shape).copy())
        p_start.append(np.asarray(start, np.int64))
        p_end.append(np.asarray(end, np.int64))

    school_age = birth + 5 * 365 + 200               # roughly the first day of kindergarten

    def history(who, min_years_back=0.1, max_years_back=4.0):
        """Start days in past school years (never before kindergarten), capped at the year start."""
        back = rng.integers(int(365 * min_years_back), int(365 * max_years_back), who.size)
        return _busday(np.minimum(np.maximum(ys - back, school_age[who]), ys), "backward")

    def standard_program(code, who, status_codes=None, p_mid=0.08, p_exit=0.06):
        who = np.asarray(who, np.int64)
        u = rng.random(who.size)
        start = history(who)
        end = np.full(who.size, _NULL_DAY, np.int64)
        mid = u < p_mid
        start[mid] = _rand_busday(rng, int(_busday(ys, offset=10)), int(_busday(s2s, offset=20)), int(mid.sum()))
        exited = (u >= p_mid) & (u < p_mid + p_exit) & (grade[who] >= _G["01"])
        past = exited & (rng.random(who.size) < 0.5)
        this_year = exited & ~past
        end[past] = _busday(ys - rng.integers(20, 400, int(past.sum())), "backward")
        end[this_year] = _rand_busday(rng, event_lo, event_hi, int(this_year.sum()))
        start[exited] = np.minimum(start[exited], end[exited] - 120)
        add_program(who, code, status_codes, start, end)

    # ELL: EL (some newcomers this year), IFEP, and RFEP with the closed EL row before it
    init = _busday(np.minimum(np.maximum(ys - 365 * np.maximum(grade - _G["KG"], 0) + rng.integers(-5, 30, n),
                                         school_age), ys))
    el = np.flatnonzero(el_status == 1)
    el_start = init[el].copy()
    newcomer = rng.random(el.size) < 0.1
    el_start[newcomer] = _rand_busday(rng, int(_busday(ys, offset=5)), int(_busday(s2s, offset=30)),
                                      int(newcomer.sum()))
    add_program(el, "ELL", "EL", el_start, np.full(el.size, _NULL_DAY))
    ifep = np.flatnonzero(el_status == 3)
    add_program(ifep, "ELL", "IFEP", init[ifep], np.full(ifep.size, _NULL_DAY))
    rfep = np.flatnonzero(el_status == 2)
    reclass = _busday(np.maximum(ys - rng.integers(30, 1100, rfep.size), init[rfep] + 400))
    reclass = np.minimum(reclass, int(_busday(s2s, offset=40)))
    add_program(rfep, "ELL", "EL", init[rfep], _busday(reclass, offset=-1))
    add_program(rfep, "ELL", "RFEP", reclass, np.full(rfep.size, _NULL_DAY))

    everyone = np.arange(n)
    sped = _choose(rng, everyone, round(0.12 * n))
    standard_program("SPED", sped, _weighted(rng, _DISABILITY_CODES, sped.size))
    standard_program("504", _choose(rng, np.flatnonzero(grade >= _G["KG"]), max(1, round(0.03 * n))))
    standard_program("GATE", _choose(rng, np.flatnonzero(grade >= _G["03"]), max(1, round(0.08 * n))))
    standard_program("FOSTER", _choose(rng, everyone, max(1, round(0.005 * n))), p_mid=0.2, p_exit=0.15)
    homeless = _choose(rng, everyone, max(1, round(0.02 * n)))
    standard_program("HOMELESS", homeless, _weighted(rng, _HOMELESS_CODES, homeless.size), p_mid=0.25, p_exit=0.1)
    # SED: by school (each school's rate drawn around 55%); eligibility recorded per school year from July 1
    sed_rate = np.clip(rng.normal(0.55, 0.18, n_sch), 0.1, 0.95)
    sed = np.flatnonzero(rng.random(n) < sed_rate[school])
    sed_start = np.full(sed.size, _day(year - 1, 7, 1))
    mid = rng.random(sed.size) < 0.03
    sed_start[mid] = _rand_busday(rng, int(_busday(ys, offset=10)), int(_busday(s2s, offset=20)), int(mid.sum()))
    add_program(sed, "SED", None, sed_start, np.full(sed.size, _NULL_DAY))
    # TITLE1: schoolwide at the schools with the highest SED rates, ~40% of students; one row per enrollment span
    ranked = active_schools[np.argsort(-sed_rate[active_schools], kind="stable")]
    cum = np.cumsum(enrolled_at[ranked]) / n
    title1_schools = ranked[: int(np.searchsorted(cum, 0.40)) + 1]
    t1 = np.flatnonzero(np.isin(span_school, title1_schools))
    add_program(span_student[t1], "TITLE1", None, span_start[t1], span_end[t1])

    ps = np.concatenate(p_student)
    p_order = np.lexsort((np.concatenate(p_start), np.concatenate(p_code), ps))
    student_program_df = _frame("student_program", {
        "student_id": student_id[ps[p_order]], "program_code": np.concatenate(p_code)[p_order],
        "status_code": np.concatenate(p_status)[p_order], "start_date": _iso(np.concatenate(p_start)[p_order]),
        "end_date": _iso(np.concatenate(p_end)[p_order]),
    })

    # ---- student groups ----------------------------------------------------------------------------------------
    groups_by_level = {
        ELEMENTARY: (("READ-INT", "Reading intervention"), ("MATH-INT", "Math intervention"), ("ELD2", "ELD 2")),
        MIDDLE: (("ELD2", "ELD 2"), ("AVID", "AVID"), ("READ-INT", "Reading intervention")),
        HIGH: (("ELD2", "ELD 2"), ("AVID", "AVID"), ("ATH-SOC", "Athletics - Soccer"),
               ("CSF", "California Scholarship Federation")),
        OTHER: (("COUNS", "Counseling group"), ("ELD2", "ELD 2")),
    }
    g_school, g_code, g_name = [], [], []
    for s in active_schools.tolist():
        for code, name in groups_by_level[school_level[s]]:
            g_school.append(s)
            g_code.append(code)
            g_name.append(name)
    g_school = np.array(g_school, np.int64)
    g_code = np.array(g_code, dtype=object)
    n_groups = g_school.size
    owner = np.full(n_groups, None, dtype=object)
    staffed = np.flatnonzero((ht_count[g_school] > 0) & (rng.random(n_groups) >= 0.1))
    owner_j = (rng.random(staffed.size) * ht_count[g_school[staffed]]).astype(np.int64)
    owner[staffed] = staff_ids[ht_sorted[ht_start[g_school[staffed]] + owner_j]]
    group_ids = np.array([f"G{i + 1:05d}" for i in range(n_groups)], dtype=object)
    student_group_df = _frame("student_group", {
        "student_group_id": group_ids, "school_id": school_id[g_school], "group_code": g_code,
        "name": np.array(g_name, dtype=object), "owner_staff_id": owner,
    })
    codes = sorted(set(g_code.tolist()))
    group_lookup = np.full((n_sch, len(codes)), -1, np.int64)
    group_lookup[g_school, np.searchsorted(codes, g_code)] = np.arange(n_groups)
    u = rng.random(n)
    eligible = {
        "READ-INT": (is_elem_grade & (reading_idx <= -2)) | ((school_level[school] == MIDDLE) & (u < 0.06)),
        "MATH-INT": is_elem_grade & (grade >= _G["02"]) & (u < 0.07),
        "ELD2": (el_status == 1) & (u < 0.5),
        "AVID": secondary_student & (u < 0.05),
        "ATH-SOC": (school_level[school] == HIGH) & (u > 0.96),
        "CSF": (grade >= _G["10"]) & (u > 0.92),
        "COUNS": school == cds,
    }
    m_group, m_student = [], []
    for code, mask in eligible.items():
        if code not in codes:
            continue
        who = np.flatnonzero(mask)
        gid = group_lookup[school[who], codes.index(code)]
        m_group.append(gid[gid >= 0])
        m_student.append(who[gid >= 0])
    mg, ms = np.concatenate(m_group), np.concatenate(m_student)
    m_order = np.lexsort((ms, mg))
    student_group_member_df = _frame("student_group_member", {
        "student_group_id": group_ids[mg[m_order]], "student_id": student_id[ms[m_order]],
    })

    return {
        "district": district_df, "school": school_df, "term": term_df, "course": course_df, "section": section_df,
        "staff": staff_df, "staff_school": staff_school_df, "section_staff": section_staff_df, "student": student_df,
        "school_enrollment": school_enrollment_df, "section_enrollment": section_enrollment_df,
        "student_program": student_program_df, "student_group": student_group_df,
        "student_group_member": student_group_member_df,
    }


# --------------------------------------------------------------------------------------------------------------------
# CLI


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m rostering.sis.demo", description="Generate the demo district and load it into a database."
    )
    parser.add_argument("--students", type=int, required=True, help="number of students (at least 50)")
    parser.add_argument("--seed", type=int, default=20261123, help="random seed (default: %(default)s)")
    parser.add_argument("--school-year", type=int, default=None, help="spring year, e.g. 2027 (default: current)")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--url", help="SQLAlchemy URL of the target database")
    target.add_argument("--sqlite", default="var/demo/sis.sqlite", help="SQLite file (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.students < MIN_STUDENTS:
        parser.error(f"--students must be at least {MIN_STUDENTS}")
    tables = generate_district(args.students, seed=args.seed, school_year=args.school_year)
    if args.url:
        url = args.url
    else:
        path = Path(args.sqlite).resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{path}"
    load_district(tables, url)
    width = max(len(t) for t in TABLES)
    for table in TABLES:
        print(f"{table:<{width}}  {len(tables[table]):>10}")


if __name__ == "__main__":
    main()
