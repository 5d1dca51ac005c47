"""The run report page (rostering.report_html): a Jinja2 template, the same content as before, the district's time.

tests/fixtures/report_html/cases/<case>/ hold value-free inputs (reports/*.json, build/orgs.csv, build/users.csv)
covering every section of the page; expected/<case>.html is what the hand-built HTML of the previous version rendered
for them (timezone UTC, generated 2026-11-03 11:05:30 UTC). The Jinja version must show the same elements, attributes
and text -- whitespace aside, and apart from the one intended change: times are written "2026-11-02 09:12 UTC" in the
district's timezone instead of "2026-11-02T09:12:45.123456+00:00".
"""
from __future__ import annotations

import datetime as dt
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "report_html"
CASES = sorted(p.name for p in (FIXTURES / "cases").iterdir())
GENERATED = dt.datetime(2026, 11, 3, 11, 5, 30, tzinfo=dt.timezone.utc)


class _Page(HTMLParser):
    """The page as a list of elements (tag, sorted attributes) and text nodes, whitespace-normalised."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tokens: list[tuple] = []
        self._style = False

    def handle_starttag(self, tag, attrs):
        self.tokens.append(("<", tag, tuple(sorted(attrs))))
        self._style = tag == "style"

    def handle_endtag(self, tag):
        self.tokens.append(("</", tag))
        self._style = False

    def handle_data(self, data):
        text = "".join(data.split()) if self._style else " ".join(data.split())
        if text:
            self.tokens.append(("text", text))

    def handle_decl(self, decl):
        self.tokens.append(("!", decl.lower()))


def page_tokens(html: str) -> list[tuple]:
    parser = _Page()
    parser.feed(html)
    parser.close()
    return parser.tokens


def visible_text(html: str) -> str:
    return " ".join(t[1] for t in page_tokens(html) if t[0] == "text")


def render_case(case: str, **options) -> tuple[str, Path]:
    from rostering.report_html import render

    root = FIXTURES / "cases" / case
    reports = root / "reports"
    build = root / "build"
    options.setdefault("generated_at", GENERATED)
    page = render(title="ST Math", dag_id="stmath_oneroster", run_id=f"manual__{case}", reports=reports,
                  build_dir=build if build.exists() else None, **options)
    return page, reports


@pytest.mark.parametrize("case", CASES)
def test_the_jinja_page_shows_what_the_hand_built_page_showed(case):
    expected = (FIXTURES / "expected" / f"{case}.html").read_text()
    # the intended change only: an offset time becomes minutes in the district's zone, with its abbreviation
    expected = re.sub(r"(?<![\w:.+-])(?<!run )(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})(?::\d{2}(?:\.\d+)?)?\+00:00",
                      r"\1 \2 UTC", expected)
    page, reports = render_case(case, timezone="UTC")
    assert page_tokens(page) == page_tokens(expected.replace("{reports}", str(reports)))


def test_the_page_is_the_package_template_autoescaped():
    from importlib import resources

    from rostering import report_html

    template = resources.files("rostering") / "templates" / "report.html.j2"
    assert template.is_file() and (resources.files("rostering") / "templates" / "report.css").is_file()
    env = report_html._environment()
    assert env.autoescape is True and env.get_template(report_html.TEMPLATE).filename == str(template)
    # hostile text from a report (a file name, a receiver's message, a school name) is text, never markup
    page = env.get_template(report_html.TEMPLATE).render(report_html.context(
        title="<script>alert(1)</script>", dag_id="d", run_id="r\"><img src=x>", reports=Path("/nowhere"),
        summary={"as_of_date": "2026-11-03", "school_year": 2027, "files": {"<b>x</b>.csv": 1}, "delivered": True,
                 "destination": "sftp://a/<i>"}, generated_at=GENERATED, timezone="UTC"))
    assert "<script>" not in page and "<img" not in page and "<b>x</b>" not in page and "<i>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;b&gt;x&lt;/b&gt;.csv" in page


def test_the_templates_are_shipped_with_the_package():
    """The image installs the package (not editable): the templates must be package data."""
    import tomllib

    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    data = pyproject["tool"]["setuptools"]["package-data"]["rostering"]
    assert "templates/*" in data


# -- the district's time -----------------------------------------------------------------------------------------------

def test_times_are_shown_in_the_district_timezone_with_its_abbreviation():
    from rostering.sis.config import load_sis_config

    assert load_sis_config().timezone == "America/Los_Angeles"  # config/sis.yaml: the one district setting
    page, _ = render_case("held")  # no timezone given: the district's
    text = visible_text(page)
    assert "generated 2026-11-03 03:05 PST" in text  # 11:05 UTC, after the November change
    assert "Compared with the delivery of 2026-11-02 01:12 PST (run scheduled__2026-11-02T09:00:00+00:00)" in text
    assert "more than the delivery of 2026-10-28 02:00 PDT" in text  # still summer time in October
    assert "UTC" not in text and "+00:00)" in text  # run ids are names: copied as they are
    summer, _ = render_case("approved", generated_at=dt.datetime(2026, 7, 1, 18, 0, tzinfo=dt.timezone.utc))
    assert "generated 2026-07-01 11:00 PDT" in visible_text(summer)


def test_a_district_elsewhere_sees_its_own_time(monkeypatch):
    from rostering import report_html
    from rostering.sis import config

    real = config.load_sis_config
    monkeypatch.setattr(config, "load_sis_config",
                        lambda *a, **k: __import__("dataclasses").replace(real(*a, **k), timezone="America/Chicago"))
    text = visible_text(render_case("held")[0])
    assert "generated 2026-11-03 05:05 CST" in text and "delivery of 2026-11-02 03:12 CST" in text
    monkeypatch.setattr(config, "load_sis_config", lambda *a, **k: (_ for _ in ()).throw(OSError("unreadable")))
    assert "generated 2026-11-03 11:05 UTC" in visible_text(render_case("held")[0])  # never fails the report
    naive = dt.datetime(2026, 11, 3, 11, 5)  # taken as UTC
    assert report_html.local_time(naive, report_html.ZoneInfo("UTC")) == "2026-11-03 11:05 UTC"


def test_the_operations_dag_runs_in_the_district_timezone(monkeypatch):
    from rostering.sis import config

    real = config.load_sis_config
    monkeypatch.setattr(config, "load_sis_config",
                        lambda *a, **k: __import__("dataclasses").replace(real(*a, **k), timezone="America/Denver"))
    from rostering.orchestration.operations_dag import build_operations_dag

    timetable = build_operations_dag().timetable
    assert str(timetable.timezone) == "America/Denver"  # not a hard-coded zone: config/sis.yaml's
