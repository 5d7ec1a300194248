"""Task lifecycles on the simulated clock: creation, status by time, lookup and counts.

A task's status is computed from its scheduled timestamps when asked (queueing until
``t_proc``, processing until ``t_done``, then completed or failed), so tens of thousands of
tasks cost no timers. Webhooks for a task are scheduled on the dispatcher when it is made.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from ._accounts import AccountState
from ._clock import SimClock
from ._media import forced_failure, people_in
from ._model import DEFAULT_DURATIONS, KINDS, STATUS_NAMES, Duration, TaskInfo
from ._validation import ApiError
from ._webhooks import WebhookDispatcher

__all__ = ["SimTask", "TaskBook"]


class SimTask:
    """One task or analysis: who made it, what it was asked, and when it changes state."""

    def __init__(
        self,
        *,
        id: str,
        internal_id: str,
        kind: str,
        owner: AccountState,
        create_s: float,
        create_ms: int,
        t_proc: float,
        t_done: float,
        will_fail: bool,
        price: int,
        video_duration: float,
        resolution: str,
        video_url: str,
        webhook_url: str | None,
        fields: Mapping[str, Any],
    ) -> None:
        self.id = id
        self.internal_id = internal_id
        self.kind = kind
        self.owner = owner
        self.create_s = create_s
        self.create_ms = create_ms
        self.t_proc = t_proc
        self.t_done = t_done
        self.will_fail = will_fail
        self.price = price
        self.video_duration = video_duration
        self.resolution = resolution
        self.video_url = video_url
        self.webhook_url = webhook_url
        self.fields = fields
        self.fingerprint: str | None = None  # set for swaps: the create body's fingerprint
        # Only analyses detect people.
        self.people = people_in(video_url) if kind == "analysis" else 0

    def identity_fields(self) -> dict[str, Any]:
        """The fields every answer about a task starts with: its id, creation time, owner."""
        account = self.owner.account
        return {
            "_id": self.id,
            "create_time": self.create_ms,
            "uid": account.uid,
            "team_id": account.team_id,
        }
    def status(self, now: float) -> int:
        """1 queueing, 2 processing, 3 completed or 4 failed at simulated time ``now``."""
        if now < self.t_proc:
            return 1
        if now < self.t_done:
            return 2
        return 4 if self.will_fail else 3

    def progress(self, now: float) -> int:
        """Percent done: 0 queueing or failed, 1-99 processing, 100 completed."""
        status = self.status(now)
        if status in {1, 4}:
            return 0
        if status == 3:
            return 100
        span = self.t_done - self.t_proc
        return min(99, max(1, int(100 * (now - self.t_proc) / span))) if span > 0 else 99


def _durations(overrides: Mapping[str, Duration | float] | None) -> dict[str, Duration]:
    durations = dict(DEFAULT_DURATIONS)
    for kind, spec in (overrides or {}).items():
        if kind not in KINDS:
            raise ValueError(f"unknown task kind {kind!r}; expected one of {KINDS}")
        durations[kind] = spec if isinstance(spec, Duration) else Duration.fixed(spec)
    return durations


def _failure_rates(failure_rate: float | Mapping[str, float]) -> dict[str, float]:
    if isinstance(failure_rate, Mapping):
        return {k: float(failure_rate.get(k, 0.0)) for k in KINDS}
    return {"character_swap": failure_rate, "head_swap": failure_rate, "analysis": 0.0}


class TaskBook:
    """Every task of a simulator, with the create and poll counters."""

    def __init__(
        self,
        clock: SimClock,
        new_id: Callable[[], str],
        *,
        seed: int,
        durations: Mapping[str, Duration | float] | None,
        failure_rate: float | Mapping[str, float],
        webhooks: WebhookDispatcher,
        webhook_on_processing: bool,
    ) -> None:
        self._clock = clock
        self._new_id = new_id
        self._rng = random.Random(seed)
        self._durations = _durations(durations)
        self._failure_rates = _failure_rates(failure_rate)
        self._webhooks = webhooks
        self._webhook_on_processing = webhook_on_processing
        self.tasks: dict[str, SimTask] = {}
        self._analyses: dict[tuple[str, str], list[SimTask]] = {}
        self.creates: Counter[str] = Counter()
        self.polls: Counter[str] = Counter()

    def _times(self, kind: str, seconds: float, resolution: str) -> tuple[float, float]:
        spec = self._durations[kind]
        queue = spec.queue
        factor = spec.resolution_factor.get(resolution, 1.0)
        process = (spec.process + spec.per_video_second * seconds) * factor
        if spec.sigma > 0:
            queue *= self._rng.lognormvariate(0.0, spec.sigma)
            process *= self._rng.lognormvariate(0.0, spec.sigma)
        return queue, process

    def new_task(
        self,
        *,
        kind: str,
        owner: AccountState,
        video_url: str,
        seconds: float,
        resolution: str,
        price: int,
        webhook_url: str | None,
        fields: Mapping[str, Any],
    ) -> SimTask:
        """Make a task now (its durations and failure drawn from the seeded generator)."""
        queue, process = self._times(kind, seconds, resolution)
        fails = self._rng.random() < self._failure_rates.get(kind, 0.0)
        now = self._clock.now()
        task = SimTask(
            id=self._new_id(),
            internal_id=self._new_id(),
            kind=kind,
            owner=owner,
            create_s=now,
            create_ms=self._clock.epoch_ms(now),
            t_proc=now + queue,
            t_done=now + queue + process,
            will_fail=fails or (kind != "analysis" and forced_failure(video_url)),
            price=price,
            video_duration=seconds,
            resolution=resolution,
            video_url=video_url,
            webhook_url=webhook_url,
            fields=fields,
        )
        if kind == "analysis":
            task.will_fail = task.will_fail or task.people == 0
            self._analyses.setdefault((owner.account.team_id, video_url), []).append(task)
        self.tasks[task.id] = task
        if task.will_fail and price:
            owner.refund_at(task.t_done, price)
        if webhook_url is not None:
            self._webhooks.schedule(task.t_done, task.id, 4 if task.will_fail else 3)
            if self._webhook_on_processing:
                self._webhooks.schedule(task.t_proc, task.id, 2)
        return task

    def start_swap(
        self,
        kind: str,
        state: AccountState,
        body: Mapping[str, Any],
        *,
        video_url: str,
        seconds: float,
        resolution: str,
        rate: int,
        webhook_url: str | None,
        fields: Mapping[str, Any],
    ) -> SimTask:
        """Charge ``ceil(seconds / 5) * rate`` credits (ApiError 1104 when short), start the
        task and count the create of ``body``."""
        price = math.ceil(seconds / 5) * rate
        state.charge(price, self._clock.now())
        task = self.new_task(
            kind=kind,
            owner=state,
            video_url=video_url,
            seconds=seconds,
            resolution=resolution,
            price=price,
            webhook_url=webhook_url,
            fields=fields,
        )
        task.fingerprint = self.fingerprint(body, state)
        self.creates[task.fingerprint] += 1
        return task

    def fingerprint(self, body: Mapping[str, Any], state: AccountState) -> str:
        """The ``stats.creates`` key of a create body sent by the team ``state``."""
        canonical = json.dumps(body, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
        digest = hashlib.sha256(f"{state.account.team_id}\n{canonical}".encode())
        return digest.hexdigest()[:32]

    def count_create(self, body: Mapping[str, Any], state: AccountState) -> None:
        """Count one processed create of ``body``."""
        self.creates[self.fingerprint(body, state)] += 1

    def find(self, state: AccountState, task_id: object, kind: str) -> SimTask | None:
        """The team's task of ``kind`` (counting a poll), or None: another team's is unseen."""
        task = self.tasks.get(task_id) if isinstance(task_id, str) else None
        if task is None or task.kind != kind or task.owner is not state:
            return None
        self.polls[task.id] += 1
        return task

    def require(
        self,
        state: AccountState,
        query: Mapping[str, str],
        param: str,
        kind: str,
        not_found: tuple[int, str],
    ) -> SimTask:
        """The team's task named by ``query[param]``: ApiError 1003 when the parameter is
        missing, ``not_found`` (code, msg) when there is no such task of ``kind``."""
        task_id = query.get(param, "")
        if not task_id:
            raise ApiError(1003, f"{param} cannot be empty")
        task = self.find(state, task_id, kind)
        if task is None:
            raise ApiError(*not_found)
        return task

    def detected_ids(self, state: AccountState, video_url: str) -> set[int] | None:
        """Person ids found by the team's completed analyses of ``video_url`` (None: none)."""
        now = self._clock.now()
        analyses = self._analyses.get((state.account.team_id, video_url), ())
        completed = [t for t in analyses if t.status(now) == 3]
        if not completed:
            return None
        return {i for t in completed for i in range(t.people)}

    def info(self, task_id: str) -> TaskInfo:
        """A snapshot of a task (any team); KeyError when unknown."""
        task = self.tasks[task_id]
        return TaskInfo(
            id=task.id,
            kind=task.kind,
            status=task.status(self._clock.now()),
            team_id=task.owner.account.team_id,
            create_time=self._clock.epoch(task.create_s),
            processing_at=self._clock.epoch(task.t_proc),
            finished_at=self._clock.epoch(task.t_done),
            will_fail=task.will_fail,
            price=task.price,
            webhook_url=task.webhook_url,
            fingerprint=task.fingerprint,
        )

    def counts(self) -> dict[str, dict[str, int]]:
        """Kind -> state name -> tasks in it now."""
        now = self._clock.now()
        counts: dict[str, Counter[str]] = {k: Counter() for k in KINDS}
        for task in self.tasks.values():
            counts[task.kind][STATUS_NAMES[task.status(now)]] += 1
        return {k: dict(v) for k, v in counts.items()}
