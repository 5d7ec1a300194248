"""Fault injection for the simulator: seeded per-endpoint plans, scripts and named profiles.

A ``FaultPlan`` is a frozen description; each simulator turns it into its own runtime
injector, so one plan run twice against the same request sequence injects the same faults
(every endpoint draws from its own ``random.Random`` seeded with ``"{seed}/{endpoint}"``).

Fault kinds (``FAULT_KINDS``) and when they act relative to processing:

Before processing (nothing is created and nothing is charged):

- ``http_500``, ``http_502``, ``http_503``: gateway error, plain HTML body, no envelope.
  The client cannot tell whether the backend saw the request.
- ``http_500_envelope``, ``http_503_envelope``: 5xx whose body is an Akool envelope
  ``{"code": 2001, "msg": ...}``, i.e. a definite rejection.
- ``http_429``: status 429, header ``Retry-After`` = ``Fault.retry_after`` simulated seconds
  times the simulator's ``time_scale`` (may be fractional), body ``{"code": 1005, ...}``.
- ``code_1005``, ``code_1015``, ``code_2001``: HTTP 200 with that business code.
- ``code``: HTTP 200 with any business code, ``Fault("code", code=1200)`` (for testing how
  a client maps every documented code).
- ``drop_before``: the connection is closed without an answer; the request was not processed.

After processing (a create has created and charged its task):

- ``drop_after``: the connection is closed without an answer: the answer is lost.
- ``slow``: the answer is sent ``Fault.delay`` real seconds late (not scaled).
- ``malformed_json``: HTTP 200, ``Content-Type: application/json``, body cut mid-object.
- ``extra_fields``: unknown keys added to the envelope and to ``data``.

Files endpoint only: ``truncate``: ``Content-Length`` promises the whole file, the
connection closes after half of it.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Mapping, Sequence
from typing import TypeAlias

import attrs

#: Endpoint names used for faults, latency and the ``requests`` counter.
ENDPOINTS: tuple[str, ...] = (
    "character_swap.create",
    "character_swap.result",
    "credit",
    "files",
    "get_token",
    "head_swap.analysis_detail",
    "head_swap.analyze",
    "head_swap.create",
    "head_swap.detail",
)
#: Endpoints that create something (a task or an analysis) and charge for it.
CREATE_ENDPOINTS: tuple[str, ...] = (
    "character_swap.create",
    "head_swap.analyze",
    "head_swap.create",
)
#: Every endpoint except the output file server.
API_ENDPOINTS: tuple[str, ...] = tuple(e for e in ENDPOINTS if e != "files")

BEFORE_KINDS: frozenset[str] = frozenset(
    {
        "http_500",
        "http_502",
        "http_503",
        "http_500_envelope",
        "http_503_envelope",
        "http_429",
        "code_1005",
        "code_1015",
        "code_2001",
        "code",
        "drop_before",
    }
)
AFTER_KINDS: frozenset[str] = frozenset({"drop_after", "slow", "malformed_json", "extra_fields"})
FILE_KINDS: frozenset[str] = frozenset(
    {"truncate", "http_500", "http_502", "http_503", "drop_before", "slow"}
)
#: Every fault kind, sorted.
FAULT_KINDS: tuple[str, ...] = tuple(sorted(BEFORE_KINDS | AFTER_KINDS | {"truncate"}))

#: Default real seconds a ``slow`` fault delays its answer.
DEFAULT_SLOW_DELAY = 1.0
#: Default simulated seconds of ``Retry-After`` on ``http_429``.
DEFAULT_RETRY_AFTER = 1.0


def _check_kind(_inst: object, _attr: object, value: str) -> None:
    if value not in FAULT_KINDS:
        raise ValueError(f"unknown fault kind {value!r}; expected one of {FAULT_KINDS}")


@attrs.frozen(kw_only=True)
class Fault:
    """One injected fault.

    ``kind`` is one of ``FAULT_KINDS``; ``delay`` (real seconds, default 1.0) applies to
    ``slow``; ``retry_after`` (simulated seconds, default 1.0) applies to ``http_429``;
    ``code`` (default 1003) is the business code answered by kind ``code``.
    """

    kind: str = attrs.field(validator=_check_kind)
    delay: float = DEFAULT_SLOW_DELAY
    retry_after: float = DEFAULT_RETRY_AFTER
    #: The business code answered by kind ``code``.
    code: int = 1003


#: A scripted step: a ``Fault``, a fault kind name, or ``None`` for "answer normally".
FaultSpec: TypeAlias = Fault | str | None


def _freeze_rates(value: Mapping[str, Mapping[str, float]]) -> Mapping[str, Mapping[str, float]]:
    frozen: dict[str, Mapping[str, float]] = {}
    for endpoint, kinds in value.items():
        if endpoint != "*" and endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r}; expected '*' or one of {ENDPOINTS}")
        total = 0.0
        for kind, rate in kinds.items():
            _check_kind(None, None, kind)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"rate for {endpoint}/{kind} must be within [0, 1], got {rate}")
            total += rate
        if total > 1.0 + 1e-9:
            raise ValueError(f"fault rates for {endpoint!r} add up to {total} > 1")
        frozen[endpoint] = dict(kinds)
    return frozen


def _freeze_scripts(
    value: Mapping[str, Sequence[FaultSpec]],
) -> Mapping[str, tuple[FaultSpec, ...]]:
    frozen: dict[str, tuple[FaultSpec, ...]] = {}
    for endpoint, steps in value.items():
        if endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r}; expected one of {ENDPOINTS}")
        for step in steps:
            if isinstance(step, str):
                _check_kind(None, None, step)
        frozen[endpoint] = tuple(steps)
    return frozen


@attrs.frozen(kw_only=True)
class FaultPlan:
    """A reproducible fault schedule per endpoint.

    - ``seed`` (default 0): seeds one RNG per endpoint.
    - ``rates``: ``{endpoint or "*": {kind: probability}}``; ``"*"`` applies to every API
      endpoint (not ``files``) that has no entry of its own. Each request draws one number.
    - ``scripts``: ``{endpoint: [step, ...]}``: the first calls of that endpoint take these
      steps in order (``None`` = no fault), then ``rates`` apply.
    - ``slow_delay`` (real seconds, default 1.0) and ``retry_after`` (simulated seconds,
      default 1.0) are used for faults given by kind name.
    """

    seed: int = 0
    rates: Mapping[str, Mapping[str, float]] = attrs.field(factory=dict, converter=_freeze_rates)
    scripts: Mapping[str, tuple[FaultSpec, ...]] = attrs.field(
        factory=dict, converter=_freeze_scripts
    )
    slow_delay: float = DEFAULT_SLOW_DELAY
    retry_after: float = DEFAULT_RETRY_AFTER

    def fault(self, spec: FaultSpec) -> Fault | None:
        """Turn a script step or kind name into a ``Fault`` with this plan's parameters."""
        if spec is None or isinstance(spec, Fault):
            return spec
        return Fault(kind=spec, delay=self.slow_delay, retry_after=self.retry_after)

    def rates_for(self, endpoint: str) -> Mapping[str, float]:
        """The fault rates that apply to ``endpoint``."""
        if endpoint in self.rates:
            return self.rates[endpoint]
        if endpoint == "files":
            return {}
        return self.rates.get("*", {})


def _rates(**kinds: float) -> dict[str, float]:
    return dict(kinds)


def _flaky(seed: int) -> FaultPlan:
    api = _rates(http_503=0.02, http_429=0.02, code_1005=0.02, drop_before=0.01, slow=0.01)
    rates: dict[str, Mapping[str, float]] = dict.fromkeys(API_ENDPOINTS, api)
    for endpoint in CREATE_ENDPOINTS:
        rates[endpoint] = {**api, "code_1015": 0.01}
    rates["files"] = _rates(truncate=0.02)
    return FaultPlan(seed=seed, rates=rates, slow_delay=0.2, retry_after=1.0)


def _chaos(seed: int) -> FaultPlan:
    api = _rates(
        http_500=0.02,
        http_502=0.03,
        http_503_envelope=0.02,
        http_429=0.05,
        code_1005=0.05,
        code_2001=0.02,
        drop_before=0.03,
        slow=0.02,
        malformed_json=0.02,
        extra_fields=0.05,
    )
    rates: dict[str, Mapping[str, float]] = dict.fromkeys(API_ENDPOINTS, api)
    for endpoint in CREATE_ENDPOINTS:
        rates[endpoint] = {**api, "code_1015": 0.03, "drop_after": 0.03}
    rates["files"] = _rates(truncate=0.1, http_502=0.03)
    return FaultPlan(seed=seed, rates=rates, slow_delay=0.5, retry_after=2.0)


#: Named profiles. ``none``: no faults. ``flaky`` (about 8 % of API requests): 503 plain 2 %,
#: 429 2 %, code 1005 2 %, drop before 1 %, slow (0.2 s) 1 %, plus code 1015 1 % on creates and
#: truncated downloads 2 %. ``chaos`` (about 31 % of API requests): 500 plain 2 %, 502 plain
#: 3 %, 503 with envelope 2 %, 429 5 % (Retry-After 2 s), 1005 5 %, 2001 2 %, drop before 3 %,
#: slow (0.5 s) 2 %, malformed JSON 2 %, extra fields 5 %, plus on creates 1015 3 % and drop
#: after processing 3 %; downloads: truncate 10 %, 502 3 %.
PROFILES: tuple[str, ...] = ("chaos", "flaky", "none")


def profile(name: str, *, seed: int = 0) -> FaultPlan:
    """The ``FaultPlan`` of a named profile (``none``, ``flaky`` or ``chaos``)."""
    if name == "none":
        return FaultPlan(seed=seed)
    if name == "flaky":
        return _flaky(seed)
    if name == "chaos":
        return _chaos(seed)
    raise ValueError(f"unknown fault profile {name!r}; expected one of {PROFILES}")


class FaultInjector:
    """Runtime state of a plan: per-endpoint RNGs, script positions and ad-hoc injections."""

    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan
        self._rngs = {e: random.Random(f"{plan.seed}/{e}") for e in ENDPOINTS}
        self._scripts = {e: deque(steps) for e, steps in plan.scripts.items()}
        self._injected: dict[str, deque[FaultSpec]] = {e: deque() for e in ENDPOINTS}

    def inject(self, endpoint: str, steps: Sequence[FaultSpec]) -> None:
        """Queue steps that the next calls of ``endpoint`` take before the plan's own."""
        if endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r}; expected one of {ENDPOINTS}")
        for step in steps:
            if isinstance(step, str):
                _check_kind(None, None, step)
        self._injected[endpoint].extend(steps)

    def draw(self, endpoint: str) -> Fault | None:
        """The fault (or ``None``) for the next call of ``endpoint``."""
        injected = self._injected[endpoint]
        if injected:
            return self.plan.fault(injected.popleft())
        script = self._scripts.get(endpoint)
        if script:
            return self.plan.fault(script.popleft())
        rates = self.plan.rates_for(endpoint)
        if not rates:
            return None
        roll = self._rngs[endpoint].random()
        cumulative = 0.0
        for kind in sorted(rates):
            cumulative += rates[kind]
            if roll < cumulative:
                return self.plan.fault(kind)
        return None
