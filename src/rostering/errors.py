"""Which error texts may reach an alert mail, a report or the UI: ours, never a library's.

Alerts and reports quote an error's message only when we wrote it, and we write messages without data values
(counts, file, line, column, rule, connection ids). A library's message may quote whatever it was handed -- a CSV
line, a database row, a receiver's answer -- so it is named by its class only.
"""
from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


class ValueFreeError(Exception):
    """An error whose message is composed by this package without data values: safe to show anywhere."""


def raised_by_us(error: BaseException) -> bool:
    """Whether the innermost frame that raised ``error`` is this package's code (its message is ours)."""
    tb = error.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return Path(tb.tb_frame.f_code.co_filename).resolve().is_relative_to(_PACKAGE)


def safe_text(error: BaseException) -> str:
    """``Class: message`` for our own errors, ``Class (details in the task log)`` for anything else."""
    if isinstance(error, ValueFreeError) or raised_by_us(error):
        return f"{type(error).__name__}: {error}"
    return f"{type(error).__name__} (its message may quote data: not shown)"
