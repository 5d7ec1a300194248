"""What the environment configures: credentials (stripped of stray whitespace), the client
for a time scale, and the ``akool_async`` logger (``--log-level`` / ``$AKOOL_LOG``)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from akool_async import DEFAULT_LIMITS, DEFAULT_POLL_POLICY, AkoolClient, ConfigurationError
from akool_async._client import ENV_API_KEY, ENV_BASE_URL, ENV_CLIENT_ID, ENV_CLIENT_SECRET

from ._common import UsageError

__all__ = [
    "ENV_LOG",
    "LOG_LEVELS",
    "client_from_env",
    "env_value",
    "log_level",
    "logging_to_stderr",
]

#: The environment variable that sets the log level when ``--log-level`` is not given.
ENV_LOG: Final = "AKOOL_LOG"
LOG_LEVELS: Final = ("debug", "info", "warning", "error")

NO_CREDENTIALS_HELP: Final = f"""\
akool-async: no Akool credentials found.

  To use your Akool account, set your API key (never pass it on the command line):
      export {ENV_API_KEY}=<your API key>
  (or the legacy pair {ENV_CLIENT_ID} and {ENV_CLIENT_SECRET}).

  To try everything offline instead:
      akool-async demo                      # embedded simulator, a few hundred jobs
      akool-async simulate --time-scale 0.01  # serve the simulator, then in another shell:
      export {ENV_BASE_URL}=http://127.0.0.1:8765 {ENV_API_KEY}=sim-akool-api-key-000001
      akool-async run jobs.jsonl --time-scale 0.01
"""


def env_value(name: str) -> str | None:
    """``$name`` without surrounding whitespace (a pasted ``\\r\\n``); None if unset or empty.

    A control character left inside the value is a UsageError naming the variable only.
    """
    value = os.environ.get(name, "").strip()
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise UsageError(f"akool-async: ${name} contains a control character; set it again")
    return value or None


def client_from_env(time_scale: float) -> AkoolClient:
    """A client configured by the environment; UsageError with guidance if it cannot be."""
    api_key = env_value(ENV_API_KEY)
    client_id, secret = env_value(ENV_CLIENT_ID), env_value(ENV_CLIENT_SECRET)
    if not api_key and not (client_id and secret):
        raise UsageError(NO_CREDENTIALS_HELP.rstrip())
    poll = DEFAULT_POLL_POLICY if time_scale == 1.0 else DEFAULT_POLL_POLICY.scaled(time_scale)
    limits = DEFAULT_LIMITS if time_scale == 1.0 else DEFAULT_LIMITS.scaled(time_scale)
    base_url = env_value(ENV_BASE_URL)
    try:
        if api_key:
            return AkoolClient(api_key, base_url=base_url, poll=poll, limits=limits)
        return AkoolClient(
            client_id=client_id, client_secret=secret, base_url=base_url, poll=poll, limits=limits
        )
    except ConfigurationError as exc:
        raise UsageError(f"akool-async: {exc.message}") from None


def log_level(flag: str | None) -> str | None:
    """The log level asked for: ``--log-level`` wins over ``$AKOOL_LOG``; None for neither."""
    if flag is not None:
        return flag
    value = os.environ.get(ENV_LOG, "").strip().lower()
    if not value:
        return None
    if value not in LOG_LEVELS:
        raise UsageError(
            f"akool-async: ${ENV_LOG} must be one of {', '.join(LOG_LEVELS)} (got {value!r})"
        )
    return value


@contextmanager
def logging_to_stderr(level: str | None) -> Iterator[None]:
    """Send the ``akool_async`` logger to stderr at ``level`` for the block (no-op for None)."""
    if level is None:
        yield
        return
    logger = logging.getLogger("akool_async")
    handler = logging.StreamHandler()  # sys.stderr as it is now (pytest may capture it)
    handler.setFormatter(logging.Formatter("akool-async %(levelname)s %(name)s: %(message)s"))
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
