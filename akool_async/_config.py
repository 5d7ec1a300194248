"""Frozen configuration values. Every duration is in seconds.

Defaults are named ``DEFAULT_*`` constants so users and docs can refer to them. All of them
can be overridden per client, and ``PollPolicy`` also per batch.
"""

from __future__ import annotations

import math

import attrs

__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_POLL_POLICY",
    "DEFAULT_RETRY_POLICY",
    "DEFAULT_TIMEOUTS",
    "Limits",
    "PollPolicy",
    "RetryPolicy",
    "Timeouts",
]


def _finite_non_negative(_inst: object, attr: attrs.Attribute[float], value: float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{attr.name} must be a number of seconds, got {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{attr.name} must be a finite number >= 0, got {value!r}")


def _positive(_inst: object, attr: attrs.Attribute[float], value: float) -> None:
    _finite_non_negative(_inst, attr, value)
    if value <= 0:
        raise ValueError(f"{attr.name} must be > 0, got {value!r}")


def _positive_int(_inst: object, attr: attrs.Attribute[int], value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{attr.name} must be an integer >= 1, got {value!r}")


@attrs.frozen(kw_only=True)
class Timeouts:
    """Per-request timeouts (seconds).

    - ``connect`` (10 s): waiting for a free pooled connection plus establishing a new
      TCP+TLS connection (aiohttp's ``ClientTimeout.connect``); past it nothing was sent.
    - ``read`` (30 s): how long to wait for an answer. An API answer is a few hundred
      bytes that arrive together, so an API call must end within ``connect + read`` of
      its start (and within ``total``). Downloads stream large files: for them ``read`` is
      the longest silence allowed between two chunks.
    - ``total`` (60 s): one API call from start to last byte. Akool answers creates within
      a few seconds; a minute means something is wrong and the retry policy should decide.
    """

    connect: float = attrs.field(default=10.0, validator=_positive)
    read: float = attrs.field(default=30.0, validator=_positive)
    total: float = attrs.field(default=60.0, validator=_positive)


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How failed requests are retried (never a create that may have created a task).

    - ``attempts`` (5): total tries, the first included. ``1`` disables retries.
    - ``timeout`` (60 s): total time budget across all tries of one call, backoff included.
    - ``initial`` (0.5 s) and ``max_delay`` (10 s): exponential backoff with full jitter:
      the n-th retry sleeps ``uniform(0, min(max_delay, initial * 2**n))``.
    - ``max_retry_after`` (60 s): a server's Retry-After is honoured up to this cap; a longer
      demand fails the call with the rate-limit error instead of stalling it.
    """

    attempts: int = attrs.field(default=5, validator=_positive_int)
    timeout: float = attrs.field(default=60.0, validator=_positive)
    initial: float = attrs.field(default=0.5, validator=_finite_non_negative)
    max_delay: float = attrs.field(default=10.0, validator=_finite_non_negative)
    max_retry_after: float = attrs.field(default=60.0, validator=_finite_non_negative)


@attrs.frozen(kw_only=True)
class PollPolicy:
    """How task status is polled.

    Akool swaps take minutes (a 10 s clip commonly 1-5 min), so:

    - ``initial`` (5 s): first poll after a create, when nothing has been learned yet.
    - ``factor`` (1.5) and ``max_interval`` (60 s): each further poll of one id waits
      ``factor`` times longer, up to ``max_interval``; a 3-minute job costs about 9 polls
      without adaptation, and a finished job is noticed at most a minute late.
    - ``jitter`` (0.2): each interval is multiplied by ``uniform(1 - jitter, 1 + jitter)`` so
      jobs created together do not poll in lock-step.
    - ``max_polls_per_second`` (20): one budget shared by every poll of a client or batch.
    - ``adaptive`` (True): once jobs of a kind and size have completed, a new job's first poll
      goes shortly before the fastest of them had finished and later ones every 7 % of its
      age, so a job is found a few percent of its duration after it finished. Before the
      first completion only the kind's first 40 jobs poll (the probes); the others wait
      for them, so a burst of thousands costs a few hundred polls until one has finished.
    - ``reconcile_interval`` (120 s): for jobs whose completion is expected by webhook, a slow
      safety poll in case the webhook never arrives.

    Tests and simulations may compress time by scaling every value here together with the
    simulator's ``time_scale``; nothing assumes a minimum interval.
    """

    initial: float = attrs.field(default=5.0, validator=_finite_non_negative)
    factor: float = attrs.field(default=1.5)
    max_interval: float = attrs.field(default=60.0, validator=_finite_non_negative)
    jitter: float = attrs.field(default=0.2)
    max_polls_per_second: float = attrs.field(default=20.0, validator=_positive)
    adaptive: bool = True
    reconcile_interval: float = attrs.field(default=120.0, validator=_positive)

    @factor.validator
    def _check_factor(self, attribute: attrs.Attribute[float], value: float) -> None:
        _finite_non_negative(self, attribute, value)
        if value < 1.0:
            raise ValueError(f"factor must be >= 1.0, got {value!r}")

    @jitter.validator
    def _check_jitter(self, attribute: attrs.Attribute[float], value: float) -> None:
        _finite_non_negative(self, attribute, value)
        if value >= 1.0:
            raise ValueError(f"jitter must be in [0, 1), got {value!r}")

    def scaled(self, factor: float) -> PollPolicy:
        """This policy with every duration multiplied by ``factor`` (and the rate divided)."""
        return attrs.evolve(
            self,
            initial=self.initial * factor,
            max_interval=self.max_interval * factor,
            reconcile_interval=self.reconcile_interval * factor,
            max_polls_per_second=self.max_polls_per_second / factor,
        )


@attrs.frozen(kw_only=True)
class Limits:
    """Resource bounds of one client.

    - ``max_connections`` (64): open HTTP connections in the pool (aiohttp's ``limit``).
    - ``max_connections_per_host`` (64): the same per host; Akool is one host. Neither
      applies to a session passed as ``AkoolClient(session=...)``: its own connector's do.
    - ``max_response_bytes`` (8 MiB): a larger API answer is refused (Akool's are < 10 kB).
    - ``keepalive_expiry`` (30 s): idle connections are closed after this.
    - ``max_creates_per_second`` (20): ceiling of the create budget. Akool documents no
      number; its throttling (1005/429) is per key, so the client paces every attempt and
      cuts this rate on throttling (AIMD). Polls have their own ceiling,
      ``PollPolicy.max_polls_per_second``.
    """

    max_connections: int = attrs.field(default=64, validator=_positive_int)
    max_connections_per_host: int = attrs.field(default=64, validator=_positive_int)
    max_response_bytes: int = attrs.field(default=8 * 1024 * 1024, validator=_positive_int)
    keepalive_expiry: float = attrs.field(default=30.0, validator=_positive)
    max_creates_per_second: float = attrs.field(default=20.0, validator=_positive)

    def scaled(self, factor: float) -> Limits:
        """These limits with time compressed by ``factor`` (rates divided by it)."""
        return attrs.evolve(self, max_creates_per_second=self.max_creates_per_second / factor)


DEFAULT_TIMEOUTS = Timeouts()
DEFAULT_RETRY_POLICY = RetryPolicy()
DEFAULT_POLL_POLICY = PollPolicy()
DEFAULT_LIMITS = Limits()
