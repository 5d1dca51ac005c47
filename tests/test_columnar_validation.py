"""The columnar screen (rostering.validation.columnar) must never pass what Great Expectations would fail.

Every (type, kwargs) of the real suites in include/expectations/ is applied to generated columns -- line breaks,
spaces, non-ASCII, commas, near-miss dates and ids, missing values -- and the screen's verdict is compared with GX's
own ``success`` for the same expectation on the same column.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rostering.validation import columnar, gx_suites

EXPECTATIONS = Path(__file__).resolve().parents[1] / "include" / "expectations"


def _distinct_expectations() -> list[dict]:
    seen, out = set(), []
    for path in sorted(EXPECTATIONS.glob("*.json")):
        for expectation in json.loads(path.read_text())["expectations"]:
            kwargs = {k: v for k, v in expectation["kwargs"].items() if k != "column"}
            key = (expectation["type"], json.dumps(kwargs, sort_keys=True))
            if key not in seen:
                seen.add(key)
                out.append({"type": expectation["type"], "kwargs": {"column": "c", **kwargs},
                            "meta": {"rule": f"r{len(out)}"}})
    out.append({"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "c", "value_set": ["EL", "EO"]},
                "meta": {"rule": "set"}})
    return out


RULES = _distinct_expectations()
VOCABULARY = sorted({v for e in RULES for v in e["kwargs"].get("value_set") or []})
PIECES = ["a", "Z", "0", "9", "-", "_", ".", "/", "@", " ", "\n", "\r", "\r\n", ",", '"', "é", "李", "\u00a0", "\t",
          "2026", "-11-", "23", "true", "false", "sch-1", "e-cls-1-2", ""]
VALUE = st.one_of(
    st.none(),
    st.sampled_from(VOCABULARY + ["2026-11-23", "2026-13-01", "sch-7", "staff-12", "Grade 3", "12"]),
    st.lists(st.sampled_from(PIECES), min_size=1, max_size=5).map("".join),
)


def _gx_success(frame: pd.DataFrame) -> dict[str, bool]:
    import great_expectations as gx

    suite = gx.ExpectationSuite(name="columnar_differential", expectations=json.loads(json.dumps(RULES)))
    batch = gx_suites.batch_definition().get_batch(batch_parameters={"dataframe": frame})
    result = batch.validate(suite, result_format=gx_suites.BOOLEAN_ONLY)
    return {o.expectation_config.meta["rule"]: bool(o.success) for o in result.results}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(VALUE, min_size=0, max_size=12))
def test_screen_agrees_with_great_expectations(values):
    frame = pd.DataFrame({"c": pd.Series(values, dtype="string[pyarrow]")})
    expected = _gx_success(frame)
    for rule in RULES:
        verdict = columnar.expectation_passes(frame, rule)
        if verdict is not None:
            assert verdict == expected[rule["meta"]["rule"]], (rule, values)


def test_what_the_screen_cannot_judge_goes_to_gx():
    frame = pd.DataFrame({"c": pd.Series(["a"], dtype="string[pyarrow]"), "n": [1]})
    assert columnar.expectation_passes(frame, {"type": "expect_column_value_lengths_to_be_between",
                                               "kwargs": {"column": "c", "min_value": 1}}) is None
    assert columnar.expectation_passes(frame, {"type": "expect_column_values_to_not_be_null",
                                               "kwargs": {"column": "c", "mostly": 0.9}}) is None
    assert columnar.expectation_passes(frame, {"type": "expect_column_values_to_not_be_null",
                                               "kwargs": {"column": "missing"}}) is None
    assert columnar.expectation_passes(frame, {"type": "expect_column_values_to_not_be_null",
                                               "kwargs": {"column": "n"}}) is None  # not Arrow strings
    assert not columnar.suite_passes(frame, [{"type": "expect_column_values_to_be_null", "kwargs": {"column": "c"}}])


def _orgs(**columns) -> pd.DataFrame:
    from rostering.oneroster.spec import HEADERS

    rows = {"sourcedId": ["d-1", "sch-2"], "name": ["District", "School"], "type": ["district", "school"],
            "parentSourcedId": [None, "d-1"], **columns}
    return pd.DataFrame({c: pd.Series(rows.get(c, [None] * 2), dtype="string[pyarrow]") for c in HEADERS["orgs.csv"]})


def test_findings_are_the_same_with_or_without_the_screen(monkeypatch):
    bad = _orgs(sourcedId=["d-1", "d-1"], type=["district", "campus"], name=["District", "Two\nlines"])
    results = {}
    for engine in ("", "gx"):
        monkeypatch.setenv(columnar.ENGINE_ENV, engine)
        before = dict(gx_suites.ENGINE_STATS)
        assert gx_suites.validate_frame("orgs.csv", _orgs(), "oneroster.orgs") == []
        results[engine] = gx_suites.validate_frame("orgs.csv", bad, "oneroster.orgs")
        gx_frames = gx_suites.ENGINE_STATS["gx_frames"] - before["gx_frames"]
        assert gx_frames == (1 if engine == "" else 2)  # with the screen, GX only sees the failing frame
    assert results[""] == results["gx"]
    assert {"orgs.sourcedId_unique", "orgs.type_in_vocabulary", "orgs.name_no_line_breaks"} <= {f.rule for f in results[""]}
