"""Telling a user error (data, parameters, setup) from a bug, and the block shown for one."""

from __future__ import annotations

import pytest
from kedro.io.core import DatasetError

from transfer_study.config import ParameterError
from transfer_study.errors import UserError, find_user_error, user_error_report
from transfer_study.photos.errors import DataLayoutError, SampleGroupingError, SplitError


def _raised(make: type[BaseException], message: str, cause: BaseException | None = None):
    try:
        raise make(message) from cause
    except BaseException as error:
        return error


@pytest.mark.parametrize(
    "error_type", [DataLayoutError, SampleGroupingError, SplitError, ParameterError]
)
def test_the_projects_user_errors_are_user_errors_and_still_value_errors(error_type):
    error = error_type("what is wrong; what to do")
    assert isinstance(error, ValueError)
    assert find_user_error(error) is error


def test_a_user_error_wrapped_by_kedro_is_found_under_its_wrapper():
    original = _raised(DataLayoutError, "Photo folder 'x' does not exist.")
    wrapped = _raised(DatasetError, "raw_images: Photo folder 'x' does not exist.", original)
    assert find_user_error(wrapped) is original


@pytest.mark.parametrize("error_type", [ValueError, KeyError, RuntimeError, DatasetError])
def test_any_other_exception_is_a_bug(error_type):
    assert find_user_error(_raised(error_type, "boom", _raised(TypeError, "deeper"))) is None


def test_an_error_raised_while_handling_a_user_error_is_a_bug():
    try:
        try:
            raise SplitError("too few samples")
        except SplitError:
            raise KeyError("a bug in the handler")  # noqa: B904 - the point of the test
    except KeyError as error:
        assert error.__context__ is not None
        assert find_user_error(error) is None


def test_the_report_is_the_message_and_where_the_traceback_went():
    report = user_error_report(UserError("Photo folder 'x' does not exist. Do this."), ["info.log"])
    first, second = report.splitlines()
    assert first == "Error: Photo folder 'x' does not exist. Do this."
    assert "not a bug" in second
    assert "info.log" in second
    assert "info.log" not in user_error_report(UserError("m"))
