"""The public surface: fixed names from DESIGN.md, nothing private, every name importable."""

from __future__ import annotations

import akool_async
import akool_async.testing
import akool_async.webhooks

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
