"""A local PowerSchool API on loopback: the stand-in the ``powerschool`` source is tested and demonstrated against.

It serves the model's tables turned INTO PowerSchool's shapes (``powerschool_records``: the inverse of
rostering.sis.sources.powerschool's mapping, vectorised), through the endpoints and envelopes that source uses:

    POST /oauth/access_token/                 HTTP Basic client_id:client_secret, grant_type=client_credentials
                                              -> {"access_token", "token_type": "Bearer", "expires_in"}
    GET  /ws/v1/metadata                      -> {"metadata": {"schema_table_query_max_page_size": N, ...}}
    POST /ws/schema/query/{name}/count        -> {"count": N}
    POST /ws/schema/query/{name}?page=&pagesize=
                                              -> {"name": name, "record": [{field: "text", ...}, ...]}

``{name}`` is one of the rostering plugin's named queries (include/sis/powerschool/plugin/); year-scoped queries
take the JSON body ``{"yearid": "36"}``. Values are text, as PowerSchool's JSON gives them; a missing value is null.
A request without a valid bearer token answers 401 with a JSON error; a page larger than ``max_page_size`` 400.

Faults, besides the base's latency / rate limit / ``fail_next`` / ``deny``::

    server.expire_all_tokens()                          # every issued token is refused (401) from now on
    server.corrupt_paging("students", times=1)          # a page repeats a row of the page before (and skips one)
    server.deny_query("cc")                             # 403: the query is not granted

Command line (foreground until SIGTERM/SIGINT; the secret from ROSTERING_POWERSCHOOL_CLIENT_SECRET)::

    python -m rostering.devservers.powerschool_server --students 5000 --port 8091 --client-id ID
"""
from __future__ import annotations

import argparse
import base64
import datetime as dt
import hmac
import logging
import os
import secrets
import sys
import threading
import time
from typing import Any
from urllib.parse import parse_qs

import pandas as pd

from rostering.devservers.api_standin import (
    StandinRequest, StandinResponse, StandinServer, error, serve_until_signalled,
)
from rostering.sis.sources.powerschool import (
    DEFAULT_GRADE_LEVELS, DEFAULT_PROGRAM_CODES, DEFAULT_SECTION_ROLES, DEFAULT_STAFF_ROLES, QUERIES, YEARID_OFFSET,
)

__all__ = ["LocalPowerSchoolServer", "powerschool_records", "main"]

log = logging.getLogger(__name__)

PORTIONS = {"schoolYear": 1, "semester": 2, "term": 3, "gradingPeriod": 4}
SECRET_ENV = "ROSTERING_POWERSCHOOL_CLIENT_SECRET"


def _inverse(mapping: dict) -> dict:
    return {v: k for k, v in mapping.items()}


def _text(values: Any, index: pd.Index | None = None) -> pd.Series:
    """Text as PowerSchool's JSON gives it (None stays None)."""
    series = values if isinstance(values, pd.Series) else pd.Series(values, index=index)
    if pd.api.types.is_float_dtype(series):  # whole numbers that met a missing value: "1", not "1.0"
        series = series.astype("Int64")
    out = series.astype("string")
    return out.astype("object").where(out.notna(), None)


def _shift(dates: pd.Series, days: int) -> pd.Series:
    parsed = pd.to_datetime(dates, format="%Y-%m-%d", errors="coerce") + pd.Timedelta(days=days)
    return parsed.dt.strftime("%Y-%m-%d").astype("object").where(parsed.notna(), None)


def powerschool_records(tables: dict[str, pd.DataFrame], *, school_year: int) -> dict[str, pd.DataFrame]:
    """The model's tables as the rows the rostering plugin's queries return (resource -> records frame)."""
    yearid = school_year - YEARID_OFFSET
    grade_number = {code: str(number) for number, code in DEFAULT_GRADE_LEVELS.items()}
    out: dict[str, pd.DataFrame] = {}

    district = tables["district"]
    out["district"] = pd.DataFrame({"district_number": _text(district["cds_district_code"]),
                                    "district_name": _text(district["name"]), "nces_id": _text(district["nces_id"])})

    school = tables["school"].reset_index(drop=True)
    cds = school["cds_code"].astype("string")
    out["schools"] = pd.DataFrame({
        "id": _text(pd.Series(range(1, len(school) + 1)) * 10), "school_number": _text(school["school_id"]),
        "alternate_school_number": _text(school["school_number"]), "name": _text(school["name"]),
        "low_grade": _text(school["low_grade"].map(grade_number)),
        "high_grade": _text(school["high_grade"].map(grade_number)),
        "state_school_number": _text(cds.str.slice(7, 14)), "nces_id": _text(school["nces_id"]),
        "school_level": _text(school["school_level"]), "classification": _text(school["classification"]),
        "inactive": _text(1 - school["is_active"].astype(int)),
        "state_excludefromreporting": _text(school["excluded_from_state_reporting"].astype(int)),
    })

    # TERMS: the year term is ID yearid*100, the others follow it; SCHOOLID 0 = the district office
    term = tables["term"].reset_index(drop=True)
    is_year = term["term_type"] == "schoolYear"
    order = pd.Series(range(len(term)))
    ps_term_id = (yearid * 100 + order.where(~is_year, 0).rank(method="first").astype(int)
                  .where(~is_year, 0)).astype(int).astype(str)
    prefix = f"{school_year}-"
    abbreviation = term["term_id"].astype("string")
    abbreviation = abbreviation.where(~abbreviation.str.startswith(prefix), abbreviation.str.slice(len(prefix)))
    ps_school_of_term = term["school_id"].astype("object").where(term["school_id"].notna(), "0")
    out["terms"] = pd.DataFrame({
        "id": ps_term_id, "dcid": _text(order + 9001), "yearid": str(yearid), "schoolid": _text(ps_school_of_term),
        "firstday": _text(term["start_date"]), "lastday": _text(term["end_date"]), "name": _text(term["title"]),
        "abbreviation": _text(abbreviation), "portion": _text(term["term_type"].map(PORTIONS)),
        "isyearrec": _text(is_year.astype(int)),
    })
    term_ps_id = pd.Series(ps_term_id.to_numpy(), index=term["term_id"].to_numpy())
    term_last = pd.Series(term["end_date"].to_numpy(), index=term["term_id"].to_numpy())
    year_terms = term[is_year]
    year_last = pd.Series(year_terms["end_date"].to_numpy(),
                          index=ps_school_of_term[is_year].astype(str).to_numpy())
    year_last = year_last[~year_last.index.duplicated()]

    def year_end(school_ids: pd.Series) -> pd.Series:
        own = school_ids.map(year_last)
        return own.fillna(year_last.get("0")) if "0" in year_last.index else own

    course = tables["course"]
    out["courses"] = pd.DataFrame({
        "id": _text(course["course_id"]), "course_number": _text(course["course_number"]),
        "course_name": _text(course["title"]), "sched_department": _text(course["department"]),
        "subject_area": _text(course["subject_area"]),
    })
    course_number = pd.Series(course["course_number"].to_numpy(), index=course["course_id"].to_numpy())

    section = tables["section"].reset_index(drop=True)
    out["sections"] = pd.DataFrame({
        "id": _text(section["section_id"]), "schoolid": _text(section["school_id"]),
        "course_number": _text(section["course_id"].map(course_number)),
        "section_number": _text(section["section_number"]), "termid": _text(section["term_id"].map(term_ps_id)),
        "expression": _text(section["class_expression"]), "room": _text(section["room"]),
        "caaspp_subject_area": _text(section["caaspp_subject"]), "class_type": _text(section["class_type"]),
        "inactive": _text(1 - section["is_active"].astype(int)),
    })
    section_school = pd.Series(section["school_id"].to_numpy(), index=section["section_id"].to_numpy())
    section_term_last = pd.Series(section["term_id"].map(term_last).to_numpy(), index=section["section_id"].to_numpy())

    # USERS x SCHOOLSTAFF: one row per staff member and school; staff at no school sit at the district office (0)
    staff = tables["staff"].reset_index(drop=True)
    links = tables["staff_school"][["staff_id", "school_id", "is_home"]]
    office = staff.loc[~staff["staff_id"].isin(links["staff_id"]), ["staff_id"]].assign(school_id="0", is_home=1)
    links = pd.concat([links, office], ignore_index=True).sort_values(["staff_id", "school_id"], kind="stable")
    links = links.reset_index(drop=True)
    links["schoolstaff_id"] = (links.index + 70001).astype(str)
    home = links[links["is_home"] == 1].drop_duplicates("staff_id").set_index("staff_id")["school_id"]
    people = links.merge(staff, on="staff_id", how="left", sort=False)
    out["staff"] = pd.DataFrame({
        "schoolstaff_id": people["schoolstaff_id"], "users_dcid": _text(people["staff_id"]),
        "schoolid": _text(people["school_id"]), "status": _text(people["is_active"].map({1: 1, 0: 2})),
        "homeschoolid": _text(people["staff_id"].map(home).fillna("0")),
        "first_name": _text(people["first_name"]), "middle_name": _text(people["middle_name"]),
        "last_name": _text(people["last_name"]), "email_addr": _text(people["email"]),
        "teacherloginid": _text(people["username"]),
        "title": _text(people["staff_role"].map(_inverse(DEFAULT_STAFF_ROLES)).fillna("Other")),
        "seid": _text(people["state_educator_id"]),
    })
    schoolstaff = pd.Series(links["schoolstaff_id"].to_numpy(),
                            index=pd.MultiIndex.from_frame(links[["staff_id", "school_id"]]))
    any_schoolstaff = links.drop_duplicates("staff_id").set_index("staff_id")["schoolstaff_id"]

    assignments = tables["section_staff"].reset_index(drop=True)
    at_school = pd.MultiIndex.from_arrays([assignments["staff_id"], assignments["section_id"].map(section_school)])
    teacher = pd.Series(schoolstaff.reindex(at_school).to_numpy(), index=assignments.index)
    teacher = teacher.fillna(assignments["staff_id"].map(any_schoolstaff))
    out["section_teachers"] = pd.DataFrame({
        "id": _text(assignments.index + 80001), "sectionid": _text(assignments["section_id"]),
        "teacherid": _text(teacher), "role_name": _text(assignments["staff_role"].map(_inverse(DEFAULT_SECTION_ROLES))),
        "start_date": _text(assignments["start_date"]),
        "end_date": _text(assignments["end_date"].fillna(assignments["section_id"].map(section_term_last))),
    })

    # STUDENTS carries the current enrollment (the latest entry); REENROLLMENTS the others
    student = tables["student"].reset_index(drop=True)
    ps_id = pd.Series((student.index + 1001).astype(str), index=student["student_id"].to_numpy())
    ps_dcid = pd.Series((student.index + 500001).astype(str), index=student["student_id"].to_numpy())
    enrollment = tables["school_enrollment"].copy()
    enrollment["exitdate"] = _shift(enrollment["exit_date"], 1).fillna(
        _shift(year_end(enrollment["school_id"]), 1))
    enrollment = enrollment.sort_values(["student_id", "entry_date", "enrollment_status"],
                                        ascending=[True, False, True], kind="stable")
    current = enrollment.drop_duplicates("student_id").set_index("student_id")
    history = enrollment[enrollment.duplicated("student_id")].reset_index(drop=True)
    sid = student["student_id"]
    out["students"] = pd.DataFrame({
        "id": _text(sid.map(ps_id)), "dcid": _text(sid.map(ps_dcid)), "student_number": _text(sid),
        "state_studentnumber": _text(student["ssid"]), "first_name": _text(student["first_name"]),
        "middle_name": _text(student["middle_name"]), "last_name": _text(student["last_name"]),
        "grade_level": _text(student["grade_level"].map(grade_number)), "dob": _text(student["birth_date"]),
        "schoolid": _text(sid.map(current["school_id"])), "entrydate": _text(sid.map(current["entry_date"])),
        "exitdate": _text(sid.map(current["exitdate"])),
        "enrollment_status": _text(sid.map(current["enrollment_status"])),
        "enrollment_excluded": _text(sid.map(current["excluded_from_state_reporting"])),
        "state_excludefromreporting": _text(student["excluded_from_state_reporting"]),
        "student_email": _text(student["email"]), "student_web_id": _text(student["username"]),
        "counselor_users_dcid": _text(student["counselor_staff_id"]),
        "home_language_code": _text(student["home_language_code"]), "reading_level": _text(student["reading_level"]),
        "reading_level_imputed": _text(student["reading_level_imputed"]),
    })
    out["reenrollments"] = pd.DataFrame({
        "id": _text(history.index + 30001), "studentid": _text(history["student_id"].map(ps_id)),
        "schoolid": _text(history["school_id"]), "entrydate": _text(history["entry_date"]),
        "exitdate": _text(history["exitdate"]), "enrollment_status": _text(history["enrollment_status"]),
        "enrollment_excluded": _text(history["excluded_from_state_reporting"]),
    })

    # CC: a class left before the term's end is a dropped row (negative SECTIONID); DATELEFT is exclusive
    cc = tables["section_enrollment"].reset_index(drop=True)
    dropped = cc["exit_date"].notna()
    cc_section = cc["section_id"].astype(str)
    out["cc"] = pd.DataFrame({
        "id": _text(cc.index + 1_000_001), "studentid": _text(cc["student_id"].map(ps_id)),
        "sectionid": ("-" + cc_section).where(dropped, cc_section),
        "termid": _text(cc["section_id"].map(pd.Series(section["term_id"].map(term_ps_id).to_numpy(),
                                                       index=section["section_id"].to_numpy()))),
        "schoolid": _text(cc["section_id"].map(section_school)), "dateenrolled": _text(cc["entry_date"]),
        "dateleft": _shift(cc["exit_date"].fillna(cc["section_id"].map(section_term_last)), 1),
    })

    program = tables["student_program"].reset_index(drop=True)
    ela = program["program_code"] == "ELL"
    other = program[~ela].reset_index(drop=True)
    out["programs"] = pd.DataFrame({
        "id": _text(other.index + 200001), "studentid": _text(other["student_id"].map(ps_id)),
        "program_name": _text(other["program_code"].map(_inverse(DEFAULT_PROGRAM_CODES))),
        "enter_date": _text(other["start_date"]), "exit_date": _shift(other["end_date"], 1),
        "status_code": _text(other["status_code"]),
    })
    spans = program[ela].reset_index(drop=True)
    out["ela_status"] = pd.DataFrame({
        "id": _text(spans.index + 300001), "studentsdcid": _text(spans["student_id"].map(ps_dcid)),
        "elastatus": _text(spans["status_code"]), "elastatusstartdate": _text(spans["start_date"]),
        "elastatusenddate": _text(spans["end_date"]),
    })

    group = tables["student_group"]
    out["student_groups"] = pd.DataFrame({
        "group_id": _text(group["student_group_id"]), "schoolid": _text(group["school_id"]),
        "group_code": _text(group["group_code"]), "group_name": _text(group["name"]),
        "owner_users_dcid": _text(group["owner_staff_id"]),
    })
    member = tables["student_group_member"]
    out["student_group_members"] = pd.DataFrame({"group_id": _text(member["student_group_id"]),
                                                 "student_number": _text(member["student_id"])})
    # every query orders by its key, as the plugin's SQL does (stable pages)
    return {name: frame.sort_values(list(QUERIES[name][1]), kind="stable").reset_index(drop=True)
            for name, frame in out.items()}


class LocalPowerSchoolServer(StandinServer):
    """The rostering plugin's endpoints over ``tables`` (module docstring)."""

    name = "powerschool-standin"

    def __init__(self, tables: dict[str, pd.DataFrame], *, client_id: str, client_secret: str,
                 school_year: int | None = None, latency_s: float = 0.0, rate_limit_per_s: float | None = None,
                 max_page_size: int = 1000, token_lifetime_s: float = 3600, port: int = 0,
                 records: dict[str, pd.DataFrame] | None = None):
        super().__init__(latency_s=latency_s, rate_limit_per_s=rate_limit_per_s, port=port)
        if school_year is None:
            school_year = int(tables["term"]["school_year"].max())
        self.school_year = school_year
        self.records = records if records is not None else powerschool_records(tables, school_year=school_year)
        self._client_id, self._client_secret = client_id, client_secret
        self.max_page_size = max_page_size
        self.token_lifetime_s = token_lifetime_s
        self._tokens: dict[str, float] = {}  # token -> expiry (monotonic)
        self._token_lock = threading.Lock()
        self._corrupt: dict[str, int] = {}
        # Each record serialised once, up front: a page is then a join of lines, as cheap as a real server's
        # cursor, so the bench's latency is what a client waits for, not this stand-in's JSON encoding.
        self._lines = {resource: _json_lines(frame) for resource, frame in self.records.items()}
        self.tokens_issued = 0
        self._by_query = {name: resource for resource, (name, _, _) in QUERIES.items()}
        self.route("POST", r"/oauth/access_token/?", self._token)
        self.route("GET", r"/ws/v1/metadata", self._metadata)
        self.route("POST", r"/ws/schema/query/(?P<name>[\w.]+)/count", self._count)
        self.route("POST", r"/ws/schema/query/(?P<name>[\w.]+)", self._page)

    # -- faults --------------------------------------------------------------------------------------------------
    def expire_all_tokens(self) -> None:
        with self._token_lock:
            self._tokens.clear()

    def corrupt_paging(self, resource: str, *, times: int = 1) -> None:
        """The next ``times`` reads of ``resource`` repeat a row of the page before on one page (and skip one)."""
        with self._token_lock:
            self._corrupt[resource] = times

    def deny_query(self, resource: str) -> None:
        self.deny(f"/ws/schema/query/{QUERIES[resource][0]}")

    # -- auth ----------------------------------------------------------------------------------------------------
    def authenticate(self, request: StandinRequest) -> StandinResponse | None:
        if request.path.startswith("/oauth/"):
            return None
        header = request.header("Authorization") or ""
        scheme, _, token = header.partition(" ")
        with self._token_lock:
            expiry = self._tokens.get(token) if scheme.lower() == "bearer" else None
        if expiry is None or expiry < time.monotonic():
            return StandinResponse(401, {"message": "Invalid or expired access token"},
                                   {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        return None

    def _token(self, request: StandinRequest) -> StandinResponse:
        scheme, _, encoded = (request.header("Authorization") or "").partition(" ")
        try:
            client_id, _, secret = base64.b64decode(encoded).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            client_id = secret = ""
        form = parse_qs(request.body.decode(errors="replace"))
        if form.get("grant_type") != ["client_credentials"]:
            return StandinResponse(400, {"error": "unsupported_grant_type"})
        if (scheme.lower() != "basic" or not hmac.compare_digest(client_id, self._client_id)
                or not hmac.compare_digest(secret, self._client_secret)):
            return StandinResponse(401, {"error": "invalid_client"})
        token = secrets.token_urlsafe(24)
        with self._token_lock:
            self._tokens[token] = time.monotonic() + self.token_lifetime_s
            self.tokens_issued += 1
        return StandinResponse(200, {"access_token": token, "token_type": "Bearer",
                                     "expires_in": str(int(self.token_lifetime_s))})

    # -- resources -----------------------------------------------------------------------------------------------
    def _metadata(self, request: StandinRequest) -> dict:
        # the keys PowerSchool's /ws/v1/metadata answers with (the adapter reads the schema/query maximum)
        return {"metadata": {
            "schema_table_query_max_page_size": self.max_page_size, "student_max_page_size": 100,
            "section_max_page_size": 100, "section_enrollment_max_page_size": 100, "staff_max_page_size": 100,
            "school_max_page_size": 100, "course_max_page_size": 100, "term_max_page_size": 100, "plugin_id": 1,
            "powerschool_version": "stand-in", "state": "CA",
        }}

    def _rows(self, request: StandinRequest,
              name: str) -> tuple[str | None, pd.DataFrame | None, StandinResponse | None]:
        resource = self._by_query.get(name)
        if resource is None:
            return None, None, error(404, f"Query {name} not found")
        frame = self.records.get(resource, pd.DataFrame())
        if QUERIES[resource][2]:
            try:
                args = request.json() or {}
            except ValueError:
                return None, None, error(400, "Body is not JSON")
            if "yearid" not in args:
                return None, None, error(400, "Validation Failed", errors=[{"field": "yearid", "code": "missing"}])
            if str(args["yearid"]) != str(self.school_year - YEARID_OFFSET):
                frame = frame.iloc[0:0]
        return resource, frame, None

    def _count(self, request: StandinRequest, name: str) -> Any:
        _, frame, refusal = self._rows(request, name)
        return refusal if refusal is not None else {"count": len(frame)}

    def _page(self, request: StandinRequest, name: str) -> Any:
        resource, frame, refusal = self._rows(request, name)
        if refusal is not None:
            return refusal
        try:
            page = int(request.query.get("page", "1"))
            size = int(request.query.get("pagesize", str(self.max_page_size)))
        except ValueError:
            return error(400, "page and pagesize must be numbers")
        if size < 1 or size > self.max_page_size:
            return error(400, f"pagesize must be between 1 and {self.max_page_size}")
        start = (max(page, 1) - 1) * size
        lines = self._lines.get(resource, []) if len(frame) else []
        rows = lines[start:start + size]
        if self._take_corruption(resource, page) and rows:
            # the page's last row replaced by a row of the previous page (or its own first): repeated + skipped
            rows = rows[:-1] + [lines[start - 1] if start > 0 else rows[0]] if len(rows) > 1 or start > 0 else rows
        body = ('{"name":"' + name + '","record":[' + ",".join(rows) + "]}").encode()
        return StandinResponse(200, body, {"Content-Type": "application/json"})

    def _take_corruption(self, resource: str, page: int) -> bool:
        pages = max(1, -(-len(self.records.get(resource, ())) // self.max_page_size))
        with self._token_lock:
            if self._corrupt.get(resource, 0) > 0 and page == min(2, pages):
                self._corrupt[resource] -= 1
                return True
        return False


def _json_lines(frame: pd.DataFrame) -> list[str]:
    """One JSON object per record (the page format's records), serialised in one vectorised call."""
    if frame.empty:
        return []
    return frame.to_json(orient="records", lines=True, force_ascii=False).splitlines()


def main(argv: list[str] | None = None) -> int:
    from rostering.sis.demo import generate_district

    parser = argparse.ArgumentParser(description="Serve a demo district through a local PowerSchool API stand-in.")
    parser.add_argument("--students", type=int, default=2000)
    parser.add_argument("--school-year", type=int, default=dt.date.today().year + (dt.date.today().month >= 7))
    parser.add_argument("--port", type=int, default=8091)
    parser.add_argument("--client-id", default="rostering-demo")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--rate-limit", type=float, default=None, help="requests per second (429 beyond)")
    parser.add_argument("--max-page-size", type=int, default=1000)
    args = parser.parse_args(argv)
    secret = os.environ.get(SECRET_ENV)
    if not secret:
        print(f"set {SECRET_ENV} to the client secret the pipeline will use", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    tables = generate_district(args.students, school_year=args.school_year)
    server = LocalPowerSchoolServer(tables, client_id=args.client_id, client_secret=secret,
                                    school_year=args.school_year, latency_s=args.latency_ms / 1000,
                                    rate_limit_per_s=args.rate_limit, max_page_size=args.max_page_size,
                                    port=args.port).start()
    serve_until_signalled(server, f"PowerSchool stand-in on {server.url} ({args.students} students, school year "
                                  f"{args.school_year})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
