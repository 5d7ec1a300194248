"""Intake: jobs enter the batch lazily, each holding one in-flight slot.

A create worker asks for the next job only when it is free; the job first takes one of
``max_in_flight`` slots, freed when its outcome is consumed. So the input is never read
ahead of the workers, and a consumer that stops taking outcomes stops intake. Jobs come
from the caller's (async) iterable, or from ``submit()`` through an unbounded stream
(bounded in practice by the slot each submitted job takes first).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator

import anyio
import attrs

from akool_async._errors import ValidationError
from akool_async._models import CharacterSwap, HeadSwap, Job
from akool_async._request_codec import request_fingerprint

from ._outcomes import JobHandle

__all__ = ["KEY_FINGERPRINT_LENGTH", "Intake", "JobSource", "KeyMaker", "Todo"]

#: Hex digits of the request fingerprint in a default key (64 bits: collisions are moot).
KEY_FINGERPRINT_LENGTH = 16

Request = CharacterSwap | HeadSwap
JobSource = Iterable[Request | Job] | AsyncIterable[Request | Job]


class KeyMaker:
    """Default keys from request content: ``<fp16>``, then ``<fp16>#2``, ``<fp16>#3`` ...

    The n-th identical request of a batch always gets the same key, wherever it sits in the
    input: reordering, commenting out or inserting other jobs never changes a key.
    """

    def __init__(self) -> None:
        self._seen: Counter[str] = Counter()

    def key_for(self, request: Request) -> str:
        """The key of the next occurrence of ``request``."""
        fp = request_fingerprint(request)[:KEY_FINGERPRINT_LENGTH]
        self._seen[fp] += 1
        n = self._seen[fp]
        return fp if n == 1 else f"{fp}#{n}"


@attrs.frozen
class Todo:
    """One job taken in: its key, and its request or why it is not one."""

    key: str
    job: object
    request: Request | None
    error: ValidationError | None = None
    handle: JobHandle | None = None


class Intake:
    """The batch's input (iterable or submitted jobs) and its in-flight slots."""

    def __init__(self, jobs: JobSource | None, max_in_flight: int) -> None:
        self._slots = anyio.Semaphore(max_in_flight)
        self._lock = anyio.Lock()  # an async generator refuses two concurrent __anext__
        self._sync: Iterator[object] | None = None
        self._async: AsyncIterator[object] | None = None
        if isinstance(jobs, AsyncIterable):
            self._async = aiter(jobs)
        elif jobs is not None:
            self._sync = iter(jobs)
        self._submitted_send, self._submitted = anyio.create_memory_object_stream[Todo](
            math.inf
        )
        self._index = 0
        self._keys = KeyMaker()
        self.exhausted = False

    @property
    def from_iterable(self) -> bool:
        """True when jobs come from an iterable (``submit()`` is then refused)."""
        return self._sync is not None or self._async is not None

    def release_slot(self) -> None:
        """A job's outcome was consumed: one more job may enter."""
        self._slots.release()

    def unpack(self, job: object, key: str | None) -> tuple[Request, str]:
        """The request and key of ``job``; the key defaults to one derived from the request's
        content (:class:`KeyMaker`), never its position in the input."""
        self._index += 1  # a position names only an item that is not a job (creates nothing)
        if isinstance(job, Job):
            request, job_key = job.request, key or job.key
        elif isinstance(job, (CharacterSwap, HeadSwap)):
            request, job_key = job, key
        else:
            raise ValidationError(
                "batch job",
                f"must be a CharacterSwap, HeadSwap or Job (got {type(job).__name__})",
            )
        return request, self._keys.key_for(request) if job_key is None else job_key

    async def take_slot(self) -> None:
        """Wait for a free in-flight slot."""
        await self._slots.acquire()

    def queue(self, todo: Todo) -> None:
        """Hand a submitted job (its slot already taken) to the create workers."""
        self._submitted_send.send_nowait(todo)

    def close(self) -> None:
        """No more submitted jobs: workers end once the queued ones are taken."""
        self._submitted_send.close()

    def discard(self) -> None:
        """The batch is over: close the submission stream on both ends."""
        self._submitted_send.close()
        self._submitted.close()

    async def next_job(self) -> Todo | None:
        """The next job for a free create worker; None once the input is exhausted."""
        if not self.from_iterable:
            try:
                return await self._submitted.receive()
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                return None
        await self._slots.acquire()
        try:
            job = await self._next_item()
        except BaseException:
            self._slots.release()
            raise
        if job is _END:
            self._slots.release()
            return None
        try:
            request, key = self.unpack(job, None)
        except ValidationError as err:
            return Todo(key=str(self._index - 1), job=job, request=None, error=err)
        return Todo(key=key, job=job, request=request)

    async def _next_item(self) -> object:
        async with self._lock:
            if self.exhausted:
                return _END
            if self._sync is not None:
                item = next(self._sync, _END)
            else:
                assert self._async is not None
                try:
                    item = await self._async.__anext__()
                except StopAsyncIteration:
                    item = _END
            if item is _END:
                self.exhausted = True
            return item


#: What the input yields once exhausted.
_END = object()
