"""The public surface: fixed names from DESIGN.md, nothing private, every name importable."""

from __future__ import annotations

import inspect

import akool_async
import akool_async.testing
import akool_async.webhooks
from akool_async import _errors

#: Names DESIGN.md section 2 fixes; users and docs depend on them.
DESIGN_NAMES = {
    "AkoolClient",
    "AkoolError",
    "CharacterSwap",
    "CharacterSwapResult",
    "CharacterSwapTask",
    "FaceMapping",
    "HeadSwap",
    "HeadSwapAnalysis",
    "HeadSwapResult",
    "HeadSwapTask",
    "Job",
    "Limits",
    "Outcome",
    "PollPolicy",
    "RetryPolicy",
    "SubmissionUncertainError",
    "TaskFailedError",
    "TaskStatus",
    "Timeouts",
    "ValidationError",
    "WaitTimeoutError",
}


def test_design_names_are_exported() -> None:
    """Every public name fixed by the design is in akool_async.__all__."""
    assert set(akool_async.__all__) >= DESIGN_NAMES


def test_every_exported_name_exists_and_is_public() -> None:
    """Each package's __all__ lists only existing, non-underscore names, sorted, no repeats."""
    for module in (akool_async, akool_async.testing, akool_async.webhooks):
        names = list(module.__all__)
        assert len(names) == len(set(names)), module.__name__
        for name in names:
            assert hasattr(module, name), f"{module.__name__}.{name}"
            assert not name.startswith("_") or name == "__version__", name


def test_exported_classes_come_from_the_package() -> None:
    """Exported classes and functions are defined inside akool_async, not re-exported deps."""
    for name in akool_async.__all__:
        member = getattr(akool_async, name)
        module = getattr(member, "__module__", None)
        if module is not None and (isinstance(member, type) or callable(member)):
            assert module.startswith("akool_async"), (name, module)


def test_errors_keep_builtin_timeout_semantics() -> None:
    """Timeout errors are also builtin TimeoutError, validation errors also ValueError."""
    assert issubclass(akool_async.RequestTimeoutError, TimeoutError)
    assert issubclass(akool_async.WaitTimeoutError, TimeoutError)
    assert issubclass(akool_async.ValidationError, ValueError)
    assert issubclass(akool_async.WaitTimeoutError, akool_async.AkoolError)
    assert issubclass(akool_async.BatchAbortedError, akool_async.AkoolError)


def _isort_key(name: str) -> tuple[int, str]:
    """The order of ruff's RUF022: CONSTANTS, then Classes, then everything else."""
    if name.isupper():
        return (0, name)
    return (1, name) if name[:1].isupper() else (2, name)


def test_all_is_sorted() -> None:
    """akool_async.__all__ is one sorted list (constants, classes, then functions)."""
    names = list(akool_async.__all__)
    assert names == sorted(names, key=_isort_key)


def test_exported_classes_and_functions_are_documented() -> None:
    """Every exported class and function has a docstring of its own."""
    for name in akool_async.__all__:
        member = getattr(akool_async, name)
        if inspect.isclass(member) or inspect.isfunction(member):
            assert inspect.getdoc(member), name
            assert member.__doc__, name


def _public_exceptions() -> set[str]:
    return {
        name
        for name, value in vars(_errors).items()
        if inspect.isclass(value)
        and issubclass(value, BaseException)
        and value.__module__ == _errors.__name__
        and not name.startswith("_")
    }


def test_every_public_exception_is_exported() -> None:
    """Each public exception class defined in _errors.py is in akool_async.__all__, and is
    the very class the package exports."""
    exceptions = _public_exceptions()
    assert len(exceptions) >= 35
    assert exceptions <= set(akool_async.__all__)
    for name in exceptions:
        assert getattr(akool_async, name) is getattr(_errors, name)


def test_every_exported_exception_lives_in_errors() -> None:
    """The other way round: every exception akool_async exports is defined in _errors.py."""
    exported = {
        name
        for name in akool_async.__all__
        if inspect.isclass(getattr(akool_async, name))
        and issubclass(getattr(akool_async, name), BaseException)
    }
    assert exported == _public_exceptions()


def test_errors_docstring_draws_every_exception() -> None:
    """The tree in the _errors module docstring names every public exception class."""
    doc = _errors.__doc__ or ""
    for name in _public_exceptions():
        assert f" {name} " in doc or f" {name}\n" in doc, name


def test_moved_exceptions_stay_importable_from_their_old_modules() -> None:
    """DownloadError, the journal errors and WebhookVerificationError keep their old paths."""
    from akool_async import _download, _journal  # noqa: PLC0415 - the point of the test

    assert _download.DownloadError is akool_async.DownloadError
    for name in ("JournalError", "JournalFormatError", "JournalConflictError", "JournalStateError"):
        assert getattr(_journal, name) is getattr(akool_async, name)
    assert akool_async.webhooks.WebhookVerificationError is akool_async.WebhookVerificationError


def test_job_store_names_are_exported() -> None:
    """The job store's read API (any replica reads any job by key) is public."""
    assert {"open_store", "JobStore", "JobRecord", "JobState"} <= set(akool_async.__all__)
    assert akool_async.JobState("completed") is akool_async.JobState.COMPLETED
    assert callable(akool_async.open_store)
