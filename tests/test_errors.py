"""Only our own error texts reach alerts and reports; a library's message is named by its class."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from rostering.errors import ValueFreeError, raised_by_us, safe_text


def test_a_library_error_quoting_data_is_named_by_its_class_only():
    with pytest.raises(json.JSONDecodeError) as caught:
        json.loads('{"ssid": 1234567890, "name": "Maria Lopez"')  # e.g. a receiver's answer cut short
    text = safe_text(caught.value)
    assert text.startswith("JSONDecodeError") and "Maria" not in text and "1234567890" not in text


def test_our_own_errors_keep_their_text():
    from rostering.delivery.cers_api import CersAuthError
    from rostering.delivery.sftp import HostKeyPolicyError
    from rostering.run_options import RunOptions
    from rostering.sis.sources.base import IncompleteReadError

    for error in (CersAuthError("token refused: invalid_client"), HostKeyPolicyError("pin the host key"),
                  IncompleteReadError("students: page 3 repeated")):
        assert isinstance(error, ValueFreeError) and safe_text(error).endswith(str(error))
    with pytest.raises(ValueError) as caught:  # raised in this package: a message we wrote
        RunOptions.from_params({"as_of_date": "11/23/2026"}, run_after=dt.datetime.now(dt.timezone.utc), timezone="UTC")
    assert raised_by_us(caught.value) and "YYYY-MM-DD" in safe_text(caught.value)


def test_an_error_never_raised_has_no_origin_and_shows_no_text():
    assert safe_text(ValueError("Maria Lopez")) == "ValueError (its message may quote data: not shown)"
