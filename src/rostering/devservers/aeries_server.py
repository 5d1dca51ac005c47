"""A local Aeries API v5 on loopback: the stand-in the demo, the tests and the bench read through the Aeries source.

It serves the SIS model's tables (e.g. ``rostering.sis.demo.generate_district``) turned INTO Aeries' documented JSON
shapes (PascalCase properties, one ``STU`` record per student per school, ``SectionStaffMembers`` arrays, dates as
``YYYY-MM-DDT00:00:00``, blank strings for empty values, 0 for "no number") -- the inverse of
rostering.sis.sources.aeries. Shapes and citations: docs/sis-sources.md (Aeries). Where the district keeps a value in
an extension the documented API does not name (school number, course number, district-wide section id, CALPADS
enrollment status, enrollment exclusion, the homeless dwelling type), the stand-in serves it under the property name
the adapter's options default to, so the demo round-trips without configuration.

Contract
    Every route but ``/api/v5/systeminfo`` needs the header ``AERIES-CERT: <certificate>``; a missing or wrong one
    answers 401 ``{"Message": "Authorization has been denied for this request."}``. ``DatabaseYear`` (if given)
    must be the served year (``2026-2027`` for the demo's 2027), else 400. ``StartingRecord``/``EndingRecord``
    (1-based, inclusive) page every list. ``deny(path_prefix)`` answers 403 for a security area the certificate
    lacks; the base (rostering.devservers.api_standin) adds latency, a rate limit (429 + Retry-After) and faults.

    GET /api/v5/systeminfo                           GET /api/v5/schools[/{sc}]       GET /api/v5/courses
    GET /api/v5/staff                                GET /api/v5/schools/{sc}/terms   .../sections   .../teachers
    GET /api/v5/schools/{sc}/students                GET /api/v5/schools/{sc}/enrollment/0/year/{yyyy}
    GET /api/v5/schools/{sc}/classes                 GET /api/v5/schools/{sc}/students/0/programs
    GET /api/v5/schools/{sc}/students/0/extended
    GET /api/v5/schools/{sc}/StudentGroups

Paging faults for tests: ``corrupt_paging(path_suffix, mode="repeat"|"short", times=1)`` makes the next read(s) of
a matching resource repeat a record across pages or return a short page in the middle.

Pages are prepared once (one JSON text per record, grouped by school): a page is a join of pre-encoded records.

Command line (foreground until SIGTERM/SIGINT; the certificate from ROSTERING_AERIES_CERT)::

    python -m rostering.devservers.aeries_server --students 2000 [--port 8091] [--school-year 2027]
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Sequence

import numpy as np
import pandas as pd

from rostering.devservers.api_standin import (
    StandinRequest, StandinResponse, StandinServer, error, serve_until_signalled,
)

CERT_HEADER = "AERIES-CERT"
GRADE_CODES = {"PK": -2, "TK": -1, "KG": 0, **{f"{g:02d}": g for g in range(1, 13)}}
ROLE_CODES = {"lead": "", "co_teacher": "CO", "job_share": "JS", "aide": "AI"}
PROGRAM_CODES = {"SPED": "144", "504": "101", "GATE": "127", "FOSTER": "190", "HOMELESS": "191", "TITLE1": "122",
                 "SED": "181"}
FLUENCY_CODES = {"EL": "L", "RFEP": "R", "IFEP": "I"}


def _blank(values: pd.Series) -> pd.Series:
    """Aeries sends "" for an empty text field."""
    return values.astype(object).where(values.notna(), "")


def _stamp(values: pd.Series) -> pd.Series:
    """ISO date -> Aeries' "YYYY-MM-DDT00:00:00" (None stays null)."""
    out = values.astype(object).where(values.isna(), values.astype(str) + "T00:00:00")
    return out.where(values.notna(), None)


def _number(values: pd.Series) -> pd.Series:
    """Numeric ids as JSON numbers where they are digits (Aeries ids are numeric), 0 for none."""
    s = values.astype(object)
    digits = s.astype(str).str.fullmatch(r"\d+") & s.notna()
    out = pd.Series(0, index=s.index, dtype=object)
    out[digits] = s[digits].astype("int64").astype(object)
    out[~digits & s.notna()] = s[~digits & s.notna()]
    return out


class LocalAeriesServer(StandinServer):
    """The Aeries API v5 stand-in (see the module docstring)."""

    name = "aeries-standin"

    def __init__(self, tables: dict[str, pd.DataFrame], *, certificate: str, latency_s: float = 0.0,
                 rate_limit_per_s: float | None = None, port: int = 0, counselor_numbers: str = "staff_id"):
        super().__init__(latency_s=latency_s, rate_limit_per_s=rate_limit_per_s, port=port)
        if counselor_numbers not in ("staff_id", "teacher_number"):
            raise ValueError("counselor_numbers must be staff_id or teacher_number")
        self._certificate = certificate
        self.counselor_numbers = counselor_numbers
        terms = tables["term"]
        self.school_year = int(terms["school_year"].max()) if len(terms) else 2027
        self.database_year = f"{self.school_year - 1}-{self.school_year}"
        self._store: dict[tuple[str, str], list[str]] = {}
        self._paging_faults: list[list[Any]] = []  # [suffix, mode, remaining]
        self._build(tables)
        sc = r"(?P<sc>\d+)"
        self.route("GET", r"/api/v5/systeminfo", self._systeminfo)
        self.route("GET", r"/api/v5/schools/?", lambda r: self._list(r, "schools", ""))
        self.route("GET", rf"/api/v5/schools/{sc}", self._school)
        self.route("GET", r"/api/v5/courses/?", lambda r: self._list(r, "courses", ""))
        self.route("GET", r"/api/v5/staff/?", lambda r: self._list(r, "staff", ""))
        for kind, suffix in (("terms", "terms"), ("sections", "sections"), ("teachers", "teachers"),
                             ("students", "students"), ("classes", "classes"), ("programs", "students/0/programs"),
                             ("extended", "students/0/extended"),
                             ("groups", "(?i:StudentGroups)")):
            self.route("GET", rf"/api/v5/schools/{sc}/{suffix}/?",
                       lambda r, sc, kind=kind: self._list(r, kind, sc))
        self.route("GET", rf"/api/v5/schools/{sc}/enrollment/0/year/(?P<yyyy>\d{{4}})",
                   lambda r, sc, yyyy: self._list(r, "enrollment", sc) if int(yyyy) == self.school_year - 1
                   else self._list(r, "none", sc))

    # -- configuration -------------------------------------------------------------------------------------------
    def corrupt_paging(self, path_suffix: str, *, mode: str = "repeat", times: int = 1) -> None:
        """The next ``times`` reads of resources whose path ends with ``path_suffix`` do not add up: ``repeat``
        serves the last record of page 1 again at the top of page 2; ``short`` answers page 1 one record short while
        more records follow (the record is skipped)."""
        if mode not in ("repeat", "short"):
            raise ValueError("mode must be repeat or short")
        with self._lock:
            self._paging_faults.append([path_suffix, mode, times])

    def replace_records(self, kind: str, school: str | int, records: list[dict]) -> None:
        """Serve these records for (resource kind, school code) -- hand-made records for tests."""
        import json

        self._store[(kind, str(school))] = [json.dumps(r, ensure_ascii=False) for r in records]

    def authenticate(self, request: StandinRequest) -> StandinResponse | None:
        if request.path.rstrip("/").lower() == "/api/v5/systeminfo":
            return None  # documented: no certificate needed
        if request.header(CERT_HEADER) != self._certificate:
            return StandinResponse(401, {"Message": "Authorization has been denied for this request."})
        year = next((v for k, v in request.query.items() if k == "databaseyear"), None)
        if year is not None and year != self.database_year:
            return StandinResponse(400, {"Message": "The DatabaseYear is not available."})
        return None

    # -- handlers ------------------------------------------------------------------------------------------------
    def _systeminfo(self, request: StandinRequest) -> Any:
        return {"AeriesVersion": "stand-in", "DatabaseYear": self.database_year,
                "AvailableDatabaseYears": [self.database_year], "LocalTimeZoneName": "(UTC-08:00) Pacific Time",
                "CurrentDateTime": None}

    def _school(self, request: StandinRequest, sc: str) -> Any:
        import json

        for line in self._store.get(("schools", ""), []):
            record = json.loads(line)
            if str(record.get("SchoolCode")) == str(int(sc)):
                return StandinResponse(200, line.encode())
        return error(404, "School not found")

    def _list(self, request: StandinRequest, kind: str, school: str) -> StandinResponse:
        records = self._store.get((kind, str(int(school)) if school else ""), [])
        start = request.query.get("startingrecord")
        end = request.query.get("endingrecord")
        if start is not None or end is not None:
            first = max(int(start or 1), 1)
            last = int(end) if end is not None else len(records)
            lo, hi = first - 1, last
            size = hi - lo
            # a fault spoils one read: the repeat slides page 2 back one record, the short page is page 1
            if lo == size and size > 0 and self._take_paging_fault(request.path, "repeat"):
                lo, hi = lo - 1, hi - 1
            elif lo == 0 and hi < len(records) and self._take_paging_fault(request.path, "short"):
                hi -= 1
            records = records[lo:hi]
        body = ("[" + ",".join(records) + "]").encode()
        return StandinResponse(200, body)

    def _take_paging_fault(self, path: str, mode: str) -> bool:
        with self._lock:
            for fault in self._paging_faults:
                if fault[2] > 0 and fault[1] == mode and path.endswith(fault[0]):
                    fault[2] -= 1
                    return True
        return False

    # -- building the records (vectorised; a Python loop only over schools) --------------------------------------
    def _put(self, kind: str, frame: pd.DataFrame, by_school: pd.Series | None = None) -> None:
        if frame.empty:
            return
        lines = frame.to_json(orient="records", lines=True, force_ascii=False, date_format="iso").splitlines()
        if by_school is None:
            self._store[(kind, "")] = lines
            return
        keys = by_school.astype(str).to_numpy()
        order = np.argsort(keys, kind="stable")
        lines_sorted = np.asarray(lines, dtype=object)[order]
        uniq, starts = np.unique(keys[order], return_index=True)
        for school, chunk in zip(uniq, np.split(lines_sorted, starts[1:])):
            self._store[(kind, school)] = list(chunk)

    def _build(self, t: dict[str, pd.DataFrame]) -> None:
        year = self.school_year
        district, school = t["district"].iloc[0], t["school"]
        cds = school["cds_code"].astype(str)
        schools = pd.DataFrame({
            "SchoolCode": _number(school["school_id"]), "Name": school["name"], "SchoolNumber": school["school_number"],
            "InactiveStatusCode": np.where(school["is_active"] == 1, "", "I"),
            "DoNotReport": school["excluded_from_state_reporting"].astype(bool),
            "StateCountyID": cds.str.slice(0, 2), "StateDistrictID": cds.str.slice(2, 7),
            "StateSchoolID": cds.str.slice(7, 14), "NCESSchoolID": _blank(school["nces_id"]),
            "LowGradeLevel": school["low_grade"].map(GRADE_CODES), "HighGradeLevel": school["high_grade"].map(
                GRADE_CODES),
            "StateCharterNumber": np.where(school["classification"] == "charter", "C", ""),
            "AddressState": district["state_code"] or "", "ScheduleType": "MasterSchedule", "SessionType": "Regular",
        })
        dcds = str(district["cds_district_code"] or "")
        district_record = pd.DataFrame([{
            "SchoolCode": 0, "Name": district["name"], "SchoolNumber": "", "InactiveStatusCode": "",
            "DoNotReport": False, "StateCountyID": dcds[:2], "StateDistrictID": dcds[2:7], "StateSchoolID": "",
            "NCESSchoolID": district["nces_id"] or "", "LowGradeLevel": None, "HighGradeLevel": None,
            "StateCharterNumber": "", "AddressState": district["state_code"] or "", "ScheduleType": "",
            "SessionType": "Regular"}])
        self._put("schools", pd.concat([district_record, schools], ignore_index=True))
        all_schools = school["school_id"].astype(str)

        # terms: a district-wide term (school_id NULL) is served at every school
        term = t["term"]
        wide = term[term["school_id"].isna()]
        per = pd.concat([wide.assign(school_id=s) for s in all_schools] + [term[term["school_id"].notna()]],
                        ignore_index=True)
        self._put("terms", pd.DataFrame({
            "SchoolCode": _number(per["school_id"]), "TermCode": per["term_id"].str.replace(rf"^{year}-", "",
                                                                                           regex=True),
            "TermDescription": per["title"], "StartDate": _stamp(per["start_date"]), "EndDate": _stamp(per["end_date"]),
            "FirstHalfEndDate": None, "SecondHalfStartDate": None, "TrackTerms": [[] for _ in range(len(per))],
        }), per["school_id"].astype(str))

        course = t["course"]
        self._put("courses", pd.DataFrame({
            "ID": course["course_id"], "Title": course["title"], "CourseNumber": course["course_number"],
            "DepartmentCode": _blank(course["department"]), "SubjectArea1Code": _blank(course["subject_area"]),
            "InactiveStatusCode": "",
        }))

        staff, staff_school = t["staff"], t["staff_school"]
        home = staff_school[staff_school["is_home"] == 1].drop_duplicates("staff_id").set_index("staff_id")["school_id"]
        access = staff_school.groupby("staff_id")["school_id"].agg(list)
        self._put("staff", pd.DataFrame({
            "ID": _number(staff["staff_id"]), "FirstName": staff["first_name"],
            "MiddleName": _blank(staff["middle_name"]),
            "LastName": staff["last_name"], "EmailAddress": _blank(staff["email"]),
            "UserName": _blank(staff["username"]), "NetworkLoginID": _blank(staff["username"]),
            "StateEducatorID": _blank(staff["state_educator_id"]), "Title": staff["staff_role"],
            "InactiveStatusCode": np.where(staff["is_active"] == 1, "", "I"),
            "PrimaryAeriesSchool": _number(staff["staff_id"].map(home)),
            "SchoolAccessPermissions": staff["staff_id"].map(access).map(
                lambda codes: [{"SchoolCode": int(c), "ReadOnlyAccess": False, "CommunicationGroup": True}
                               for c in codes] if isinstance(codes, list) else []),
        }))
        # teachers (TCH): one record per staff member per school, numbered within the school
        tch = staff_school.sort_values(["school_id", "staff_id"], kind="stable").copy()
        tch["TeacherNumber"] = tch.groupby("school_id").cumcount() + 1
        self._put("teachers", pd.DataFrame({"SchoolCode": _number(tch["school_id"]),
                                            "TeacherNumber": tch["TeacherNumber"], "StaffID1": _number(tch["staff_id"]),
                                            "InactiveStatusCode": ""}), tch["school_id"].astype(str))
        teacher_number = tch.set_index(tch["school_id"].astype(str) + "/" + tch["staff_id"].astype(str))[
            "TeacherNumber"]

        # sections (MST) with their SectionStaffMembers
        section = t["section"]
        term_start = term.set_index("term_id")["start_date"]
        sst = t["section_staff"].copy()
        sst["member"] = [
            {"StaffID": int(s) if str(s).isdigit() else s, "IsPrimaryTeacher": r == "lead",
             "StaffRoleCode": ROLE_CODES.get(r, r), "StartDate": d, "EndDate": e, "InactiveStatusCode": ""}
            for s, r, d, e in zip(sst["staff_id"], sst["staff_role"],
                                  _stamp(sst["start_date"].where(
                                      sst["start_date"] != sst["section_id"].map(section.set_index("section_id")[
                                          "term_id"]).map(term_start))),
                                  _stamp(sst["end_date"]))]
        members = sst.groupby("section_id")["member"].agg(list)
        self._put("sections", pd.DataFrame({
            "SchoolCode": _number(section["school_id"]), "SectionNumber": _number(section["section_number"]),
            "SectionID": section["section_id"], "Period": _blank(section["period_code"]),
            "Semester": section["term_id"].str.replace(rf"^{year}-", "", regex=True), "CourseID": section["course_id"],
            "Room": _blank(section["room"]), "InactiveStatusCode": np.where(section["is_active"] == 1, "", "I"),
            "PrimaryClass": section["class_type"] == "homeroom",
            "SectionStaffMembers": section["section_id"].map(members).map(lambda m: m if isinstance(m, list) else []),
        }), section["school_id"].astype(str))

        # students (STU): one record per student per school they were enrolled at this year
        student, enr = t["student"].set_index("student_id"), t["school_enrollment"]
        span = enr.sort_values(["student_id", "school_id", "entry_date"], kind="stable").groupby(
            ["student_id", "school_id"], as_index=False).agg(entered=("entry_date", "min"), left=("exit_date", "last"))
        s = student.loc[span["student_id"]].reset_index()
        program = t["student_program"]
        ell = program[program["program_code"] == "ELL"]
        starts = ell.pivot_table(index="student_id", columns="status_code", values="start_date", aggfunc="first")
        ends = ell.pivot_table(index="student_id", columns="status_code", values="end_date", aggfunc="first")
        status = pd.Series("", index=s.index, dtype=object)
        for code in ("EL", "IFEP", "RFEP"):  # the later wins: RFEP over EL
            if code in starts.columns:
                status[s["student_id"].isin(starts.index[starts[code].notna()])] = FLUENCY_CODES[code]
        el_start = s["student_id"].map(starts["EL"] if "EL" in starts else pd.Series(dtype=object))
        if "IFEP" in starts:
            el_start = el_start.where(el_start.notna(), s["student_id"].map(starts["IFEP"]))
        el_end = s["student_id"].map(ends["EL"]) if "EL" in ends else pd.Series(None, index=s.index)
        rfep = s["student_id"].map(starts["RFEP"]) if "RFEP" in starts else pd.Series(None, index=s.index)
        counselor = _number(s["counselor_staff_id"])
        if self.counselor_numbers == "teacher_number":
            counselor = (span["school_id"].astype(str) + "/" + s["counselor_staff_id"].astype(str)).map(
                teacher_number).fillna(0).astype("int64")
        self._put("students", pd.DataFrame({
            "StudentID": _number(s["student_id"]), "SchoolCode": _number(span["school_id"]),
            "StateStudentID": _blank(s["ssid"]), "FirstName": s["first_name"], "MiddleName": _blank(s["middle_name"]),
            "LastName": s["last_name"], "Grade": s["grade_level"].map(GRADE_CODES),
            "Birthdate": _stamp(s["birth_date"]),
            "StudentEmailAddress": _blank(s["email"]), "NetworkLoginID": _blank(s["username"]),
            "CounselorNumber": counselor, "HomeLanguageCode": _blank(s["home_language_code"]),
            "LanguageFluencyCode": status, "InactiveStatusCode": np.where(span["left"].isna(), "", "*"),
            "SchoolEnterDate": _stamp(span["entered"]), "SchoolLeaveDate": _stamp(span["left"]),
            "UserCode1": _blank(s["reading_level"]), "UserCode2": np.where(s["reading_level_imputed"] == 1, "Y", ""),
            "UserCode3": np.where(s["excluded_from_state_reporting"] == 1, "Y", ""),
        }), span["school_id"].astype(str))

        # Student Information Extended: the LAC English-learner dates, per STU record
        self._put("extended", pd.DataFrame({
            "StudentID": _number(s["student_id"]), "SchoolCode": _number(span["school_id"]),
            "StateStudentID": _blank(s["ssid"]), "EnglishLearnerStartDate": _stamp(el_start),
            "EnglishLearnerEndDate": _stamp(el_end), "DateRedesignatedFluentEnglishProficient": _stamp(rfep),
            "EnglishLearnerProgramCode": "", "LongTermEnglishLearnerCode": "",
        }), span["school_id"].astype(str))

        # enrollment history (ENR)
        self._put("enrollment", pd.DataFrame({
            "StudentID": _number(enr["student_id"]), "SchoolCode": _number(enr["school_id"]),
            "AcademicYear": str(year - 1), "EnterDate": _stamp(enr["entry_date"]),
            "LeaveDate": _stamp(enr["exit_date"]),
            "Grade": enr["student_id"].map(student["grade_level"]).map(GRADE_CODES),
            "EnrollmentStatusCode": enr["enrollment_status"],
            "ExcludeFromStateReporting": enr["excluded_from_state_reporting"].astype(bool),
        }), enr["school_id"].astype(str))

        # class schedules (SEC): DateEnded is the term's end while the student stays (as in Aeries' example)
        sen = t["section_enrollment"].merge(section[["section_id", "school_id", "section_number", "course_id",
                                                     "term_id"]], on="section_id", how="inner")
        sen = sen.sort_values(["school_id", "student_id", "section_id", "entry_date"], kind="stable")
        term_end = term.set_index("term_id")["end_date"]
        self._put("classes", pd.DataFrame({
            "StudentID": _number(sen["student_id"]), "SchoolCode": _number(sen["school_id"]),
            "SequenceNumber": sen.groupby(["school_id", "student_id"]).cumcount() + 1,
            "SectionNumber": _number(sen["section_number"]), "CourseID": sen["course_id"],
            "DateStarted": _stamp(sen["entry_date"]),
            "DateEnded": _stamp(sen["exit_date"].where(sen["exit_date"].notna(), sen["term_id"].map(term_end))),
        }), sen["school_id"].astype(str))

        # programs (PGM and the program tables GTE/FOF/CSE/FRE) other than English learners, served at each school
        # the student has a record at; SPED's disability and HOMELESS's dwelling type ride in ExtendedProperties
        pgm = program[program["program_code"] != "ELL"].merge(span[["student_id", "school_id"]], on="student_id",
                                                               how="inner")
        status_name = pgm["program_code"].map({"SPED": "DisabilityCode", "HOMELESS": "HomelessDwellingTypeCode"})
        has_status = status_name.notna() & pgm["status_code"].notna()
        properties = pd.Series([[] for _ in range(len(pgm))], index=pgm.index, dtype=object)
        properties[has_status] = [[{"Name": n, "Value": v}] for n, v in zip(status_name[has_status],
                                                                             pgm["status_code"][has_status])]
        self._put("programs", pd.DataFrame({
            "ExtendedProperties": properties, "StudentID": _number(pgm["student_id"]),
            "SchoolCode": _number(pgm["school_id"]),
            "ProgramCode": pgm["program_code"].map(PROGRAM_CODES).fillna(pgm["program_code"]),
            "ProgramDescription": pgm["program_code"], "EligibilityStartDate": _stamp(pgm["start_date"]),
            "EligibilityEndDate": _stamp(pgm["end_date"]), "ParticipationStartDate": _stamp(pgm["start_date"]),
            "ParticipationEndDate": _stamp(pgm["end_date"]),
        }), pgm["school_id"].astype(str))

        # student groups (SGD) with their members (SGM) and staff (SGS)
        group, member = t["student_group"], t["student_group_member"]
        students_of = member.groupby("student_group_id")["student_id"].agg(
            lambda ids: [{"StudentId": int(i) if str(i).isdigit() else i} for i in ids])
        self._put("groups", pd.DataFrame({
            "Students": group["student_group_id"].map(students_of).map(lambda m: m if isinstance(m, list) else []),
            "Staff": group["owner_staff_id"].map(lambda o: [] if o is None or o != o else
                                                 [{"StaffId": int(o) if str(o).isdigit() else o}]),
            "GroupId": group["student_group_id"], "Name": group["group_code"], "Description": group["name"],
            "ExpirationDate": None, "SchoolCode": _number(group["school_id"]), "IsCommunicationGroup": False,
        }), group["school_id"].astype(str))


# -- command line ------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    from rostering.sis.demo import generate_district

    parser = argparse.ArgumentParser(prog="python -m rostering.devservers.aeries_server",
                                     description="Serve a generated demo district through the Aeries API stand-in.")
    parser.add_argument("--students", type=int, required=True)
    parser.add_argument("--school-year", type=int, default=None)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args(argv)
    certificate = os.environ.get("ROSTERING_AERIES_CERT")
    if not certificate:
        parser.error("set ROSTERING_AERIES_CERT (the API certificate clients must send)")
    tables = generate_district(args.students, school_year=args.school_year)
    server = LocalAeriesServer(tables, certificate=certificate, latency_s=args.latency_ms / 1000,
                               port=args.port).start()
    serve_until_signalled(server, f"Aeries stand-in listening on {server.url} (school year {server.database_year})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
