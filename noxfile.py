"""Development sessions. `nox` runs tests, lint and typecheck; `nox -s bench` and `nox -s soak`
are opt-in because they take minutes."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """Run the test suite (the same command as the README and CI)."""
    session.install("-e", ".[test]")
    session.run("pytest", "-q", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the package, tests, benchmarks and this file."""
    session.install("ruff")
    session.run("ruff", "check", "akool_async", "tests", "benchmarks", "noxfile.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the package."""
    session.install("-e", ".[test]", "mypy")
    session.run("mypy", "--strict", "akool_async")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks B1-B5 side by side with their baselines; prints ratios (minutes)."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "benchmarks", *session.posargs)


@nox.session
def soak(session: nox.Session) -> None:
    """The long reliability suite (chaos profile, repeated SIGKILL + resume)."""
    session.install("-e", ".[test]")
    session.run("pytest", "-q", "-m", "soak", "--timeout=1800", *session.posargs)
