"""Validation of built vendor files before anything is delivered.

Receivers replace what they hold with what we send, so a malformed or semantically incomplete package must never leave
the building. This package checks a built OneRoster directory in three layers and returns one
:class:`~rostering.validation.report.ValidationReport`:

* ``oneroster_checks`` -- the bytes of each file (UTF-8 without BOM, exact header, RFC 4180, at least one row), the
  manifest, and cross-file rules (references resolve, case-insensitive uniqueness, enrollment/class/school
  consistency, primary teachers), vectorised with pyarrow;
* ``gx_suites`` -- per-column rules (required, formats, vocabularies, blank bulk columns, no line breaks) as Great
  Expectations suites kept as reviewable JSON in ``include/expectations/``; ``columnar`` checks the same rules on
  every row in Arrow first, and GX runs (and reports) only for a file where a rule fails;
* ``report`` -- findings that name file, line, column and rule and never carry a data value.
"""
