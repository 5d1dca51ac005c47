"""Per-column rules as Great Expectations suites, run on pandas DataFrames with GX 1.x core.

The suites are reviewable JSON in ``include/expectations/`` (``oneroster.<file>.json``), each expectation carrying
``meta.rule``, the short rule name used in findings. They are run in one ephemeral GX context per process (creating
one is slow); results become :class:`~rostering.validation.report.Finding` objects built from *unexpected indices
only* -- the unexpected values GX also returns are never read, so no data value reaches a report.

Not the Airflow GX provider (broken with Airflow 3.3): plain ``great_expectations``.

Every frame first goes through the columnar screen (``rostering.validation.columnar``): the same rules on every row,
in Arrow, pass/fail only. GX -- whose import costs 5-8 s per task -- runs a frame's suite only when a rule fails there
or cannot be judged, and then writes the findings as always. ``ROSTERING_VALIDATION_ENGINE=gx`` sends every frame
through GX.

Line numbers: the frame's index is taken as "data row number - 2", i.e. line = index + 2 with the header on line 1.
A caller whose file has line breaks inside quoted fields passes an index that accounts for them (see
``oneroster_checks``).
"""
from __future__ import annotations

import functools
import json
import logging
import threading
import time
from typing import Any

import pandas as pd

from rostering.paths import expectations_dir
from rostering.validation import columnar
from rostering.validation.report import Finding

log = logging.getLogger(__name__)
# GX announces hundreds of internal registrations at INFO on first use; keep task logs readable.
logging.getLogger("great_expectations").setLevel(logging.WARNING)

RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": 20}
BOOLEAN_ONLY = {"result_format": "BOOLEAN_ONLY"}
LINE_BREAK_REGEX = "[\\r\\n]"

# Generic, value-free messages per expectation type (the rule name says which column rule it is).
MESSAGES = {
    "expect_column_values_to_not_be_null": "required value is empty",
    "expect_column_values_to_be_null": "must be empty in a bulk file",
    "expect_column_values_to_be_unique": "value is not unique in this file",
    "expect_column_values_to_match_regex": "value does not have the required format",
    "expect_column_values_to_not_match_regex": "value contains a carriage return or line feed",
    "expect_column_values_to_be_in_set": "value is not in the OneRoster vocabulary",
}

_lock = threading.Lock()
_batch_definition: Any = None

# Where this process's suite checks spent their time (the benchmark reads it): the columnar screen, GX itself
# (its import and context on first use included), and how many frames each judged.
ENGINE_STATS = {"columnar_seconds": 0.0, "gx_seconds": 0.0, "columnar_frames": 0, "gx_frames": 0}


def _disable_batch_fingerprint() -> None:
    """GX fingerprints every pandas batch (``pd.util.hash_pandas_object`` of the whole frame, twice per
    ``batch.validate``) for batch markers this project never reads; at 3.5 million enrollments that hashing costs more
    than all expectations together. GX skips it above ``HASH_THRESHOLD`` bytes, so a threshold of 0 switches it off.
    If a later GX drops the constant, this is a no-op and validation is only slower."""
    from great_expectations.execution_engine import pandas_execution_engine

    if hasattr(pandas_execution_engine, "HASH_THRESHOLD"):
        pandas_execution_engine.HASH_THRESHOLD = 0


def batch_definition() -> Any:
    """The process-wide whole-dataframe batch definition of an ephemeral GX context (created on first use)."""
    global _batch_definition
    with _lock:
        if _batch_definition is None:
            import great_expectations as gx
            from great_expectations.data_context.types.base import ProgressBarsConfig

            _disable_batch_fingerprint()
            context = gx.get_context(mode="ephemeral")
            context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
            asset = context.data_sources.add_pandas("rostering_validation").add_dataframe_asset("frame")
            _batch_definition = asset.add_batch_definition_whole_dataframe("whole_frame")
        return _batch_definition


@functools.lru_cache(maxsize=None)
def suite_json(suite_name: str) -> dict[str, Any]:
    """The suite's JSON as stored in ``include/expectations/<suite_name>.json`` (cached; do not mutate)."""
    path = expectations_dir() / f"{suite_name}.json"
    return json.loads(path.read_text(encoding="utf-8"))


def load_suite(suite_name: str, extra_expectations: list[dict[str, Any]] | None = None,
               only_rules: set[str] | None = None) -> Any:
    """``gx.ExpectationSuite(**json)`` for the named suite, optionally with more expectations appended, optionally
    restricted to the expectations whose ``meta.rule`` is in ``only_rules``."""
    import great_expectations as gx

    data = json.loads(json.dumps(suite_json(suite_name)))  # deep copy: GX may annotate what it is given
    expectations = list(data.get("expectations", [])) + json.loads(json.dumps(extra_expectations or []))
    if only_rules is not None:
        expectations = [e for e in expectations if e.get("meta", {}).get("rule") in only_rules]
    data["expectations"] = expectations
    return gx.ExpectationSuite(**data)


def suite_columns(suite_name: str) -> set[str]:
    return {e["kwargs"]["column"] for e in suite_json(suite_name)["expectations"] if "column" in e.get("kwargs", {})}


def _extension_expectations(file_name: str, frame: pd.DataFrame, suite_name: str) -> list[dict[str, Any]]:
    """no_line_breaks for every frame column the suite does not know (vendor extension columns)."""
    stem = file_name.rsplit(".", 1)[0]
    known = suite_columns(suite_name)
    return [
        {"type": "expect_column_values_to_not_match_regex",
         "kwargs": {"column": column, "regex": LINE_BREAK_REGEX},
         "meta": {"rule": f"{stem}.{column}_no_line_breaks"}}
        for column in frame.columns if column not in known
    ]


def _raised(exception_info: Any) -> bool:
    if not isinstance(exception_info, dict):
        return False
    if exception_info.get("raised_exception"):
        return True
    return any(_raised(v) for v in exception_info.values() if isinstance(v, dict))


def _lines(indices: list[Any]) -> list[int]:
    lines = []
    for index in indices:
        if isinstance(index, dict):  # only when unexpected_index_column_names is set; never with our config
            continue
        lines.append(int(index) + 2)
    return lines


def _rule(outcome: Any) -> str:
    config = outcome.expectation_config
    return (config.meta or {}).get("rule") or config.type


def validate_frame(file_name: str, frame: pd.DataFrame, suite_name: str,
                   extra_expectations: list[dict[str, Any]] | None = None) -> list[Finding]:
    """Run suite ``suite_name`` on ``frame`` (one file's rows, all columns strings, empty = null).

    Returns one finding per failed (or unevaluable) expectation, with line numbers ``index + 2`` of the first 20
    offending rows and the total count. Columns of the frame the suite does not mention (vendor extension columns)
    are checked for CR/LF. ``extra_expectations`` (same JSON shape, each with ``meta.rule``) are rules built from
    configuration at run time, e.g. a subgroup column's allowed values.

    First the columnar screen (``rostering.validation.columnar``): every rule on every row, in Arrow; when all of
    them certainly hold there is nothing to report and GX is not started. Otherwise GX runs the suite in two passes:
    the whole suite with ``BOOLEAN_ONLY`` (GX then builds no unexpected-value metrics, about half the cost), then
    only the failed expectations again with ``SUMMARY`` for their counts and row indices.
    """
    extra = _extension_expectations(file_name, frame, suite_name) + list(extra_expectations or [])
    if columnar.enabled():
        started = time.perf_counter()
        passed = columnar.suite_passes(frame, list(suite_json(suite_name).get("expectations", [])) + extra)
        ENGINE_STATS["columnar_seconds"] += time.perf_counter() - started
        ENGINE_STATS["columnar_frames"] += 1
        if passed:
            return []
    started = time.perf_counter()
    try:
        return _validate_with_gx(file_name, frame, suite_name, extra)
    finally:
        ENGINE_STATS["gx_seconds"] += time.perf_counter() - started
        ENGINE_STATS["gx_frames"] += 1


def _validate_with_gx(file_name: str, frame: pd.DataFrame, suite_name: str,
                      extra: list[dict[str, Any]]) -> list[Finding]:
    batch = batch_definition().get_batch(batch_parameters={"dataframe": frame})
    first = batch.validate(load_suite(suite_name, extra), result_format=BOOLEAN_ONLY)
    failed = {_rule(outcome) for outcome in first.results if not outcome.success}
    if not failed:
        return []
    result = batch.validate(load_suite(suite_name, extra, only_rules=failed), result_format=RESULT_FORMAT)
    findings: list[Finding] = []
    for outcome in result.results:
        config = outcome.expectation_config
        rule = _rule(outcome)
        column = config.kwargs.get("column")
        if _raised(outcome.exception_info):
            # GX's exception text may quote data; only the fact is reported.
            findings.append(Finding(file_name, rule, column, (), 0, "rule could not be evaluated (e.g. column missing)"))
            continue
        if outcome.success:  # failed in the first pass: never let it pass silently
            findings.append(Finding(file_name, rule, column, (), 0, MESSAGES.get(config.type, "rule failed")))
            continue
        details = outcome.result or {}
        lines = _lines(details.get("partial_unexpected_index_list") or [])
        count = int(details.get("unexpected_count") or len(lines))
        findings.append(Finding(file_name, rule, column, tuple(lines), count,
                                MESSAGES.get(config.type, "rule failed")))
    order = {e["meta"]["rule"]: i for i, e in enumerate(suite_json(suite_name)["expectations"])}
    findings.sort(key=lambda f: (order.get(f.rule, len(order)), f.rule))
    return findings
