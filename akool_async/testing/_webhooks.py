"""The simulator's webhook sender: public sealing helpers and the single delivery loop.

The crypto is :mod:`akool_async._webhook_crypto`, the same code the SDK's receiver uses.
``cryptography`` is imported only when a payload is encrypted, so the simulator works
without it as long as no task carries a webhook URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
import random
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import attrs

import akool_async._webhook_crypto as webhook_crypto
from akool_async._net import is_loopback_host

#: Webhook attempts per event (the first try plus retries on a non-200 answer).
DEFAULT_WEBHOOK_ATTEMPTS = 4
#: Simulated seconds before the first retry; doubles each retry.
DEFAULT_WEBHOOK_BACKOFF = 2.0
#: Real seconds a receiver has to answer one delivery.
WEBHOOK_TIMEOUT = 10.0
#: Due events delivered concurrently per batch.
_BATCH = 64


def encrypt_webhook_data(plaintext: str | bytes, *, client_id: str, client_secret: str) -> str:
    """Base64(AES-CBC-PKCS7(key=client_secret, iv=first 16 bytes of client_id)) of ``plaintext``.

    The key is the UTF-8 ``client_secret`` (16, 24 or 32 bytes: AES-128/192/256); a
    ``client_id`` shorter than 16 bytes is zero-padded (the documented Python sample's choice).
    """
    return webhook_crypto.encrypt_data(plaintext, client_id=client_id, client_secret=client_secret)


def sign_webhook(*, client_id: str, timestamp: int, nonce: str, data_encrypt: str) -> str:
    """SHA-1 hex of the sorted, separator-less concatenation of the four values (section 5.4)."""
    return webhook_crypto.signature(client_id, str(timestamp), str(nonce), data_encrypt)


def webhook_body(
    *, plaintext: str, client_id: str, client_secret: str, timestamp: int, nonce: str
) -> dict[str, Any]:
    """The JSON body POSTed to a webhook: signature, dataEncrypt, timestamp, nonce."""
    return webhook_crypto.seal(
        plaintext,
        client_id=client_id,
        client_secret=client_secret,
        timestamp_ms=timestamp,
        nonce=nonce,
    )


def is_loopback_url(url: str) -> bool:
    """True when ``url`` is http(s) to a loopback host (127.0.0.0/8, ``localhost``, ``::1``)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(host) and is_loopback_host(str(host))


@attrs.frozen(kw_only=True)
class WebhookDelivery:
    """One finished webhook event.

    ``outcome`` is ``"delivered"`` (a 200 answer), ``"failed"`` (every attempt got a non-200
    answer or a connection error) or ``"skipped"`` (not a loopback URL: never sent).
    ``time`` is the simulated epoch in seconds of the last attempt.
    """

    task_id: str
    status: int
    url: str
    outcome: str
    attempts: int
    time: float


@attrs.define
class _Event:
    due: float
    seq: int
    task_id: str
    status: int
    attempt: int = 0

    def __lt__(self, other: _Event) -> bool:
        return (self.due, self.seq) < (other.due, other.seq)


#: Called with (task_id, status) -> (url, client_id, client_secret, plaintext) or None to drop.
PayloadFn = Callable[[str, int], "tuple[str, str, str, str] | None"]


class WebhookDispatcher:
    """One background task draining a heap of due webhook events (never a task per job)."""

    def __init__(
        self,
        *,
        now: Callable[[], float],
        epoch: Callable[[], float],
        to_real: Callable[[float], float | None],
        payload: PayloadFn,
        seed: int,
        attempts: int = DEFAULT_WEBHOOK_ATTEMPTS,
        backoff: float = DEFAULT_WEBHOOK_BACKOFF,
    ) -> None:
        self._now = now
        self._epoch = epoch
        self._to_real = to_real
        self._payload = payload
        self._rng = random.Random(f"{seed}/webhook-nonce")
        self._attempts = attempts
        self._backoff = backoff
        self._heap: list[_Event] = []
        self._seq = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self.deliveries: list[WebhookDelivery] = []
        self.delivered = 0
        self.failed = 0
        self.skipped = 0
        self.attempts_made = 0
        self.in_progress = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def pending(self) -> int:
        """Events scheduled or being delivered."""
        return len(self._heap) + self.in_progress

    def schedule(self, due: float, task_id: str, status: int) -> None:
        """Deliver the ``status`` event of ``task_id`` at simulated time ``due``."""
        self._seq += 1
        heapq.heappush(self._heap, _Event(due, self._seq, task_id, status))
        self._idle.clear()
        self._wake.set()

    def wake(self) -> None:
        """Re-check the heap (the clock moved)."""
        self._wake.set()

    async def wait_idle(self) -> None:
        """Wait until no event is due now or being delivered (future events may remain)."""
        while True:
            self._wake.set()
            await self._idle.wait()
            if not (self._heap and self._heap[0].due <= self._now()) and not self.in_progress:
                return
            self._idle.clear()

    def start(self) -> None:
        """Start the delivery loop (call inside the running event loop)."""
        # Fresh events: the dispatcher may have been made, or last run, on another loop.
        self._wake = asyncio.Event()
        self._wake.set()
        self._idle = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Cancel the loop and close its HTTP session."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            now = self._now()
            batch: list[_Event] = []
            while self._heap and self._heap[0].due <= now and len(batch) < _BATCH:
                batch.append(heapq.heappop(self._heap))
            if batch:
                self.in_progress = len(batch)
                try:
                    await asyncio.gather(*(self._deliver(event) for event in batch))
                finally:
                    self.in_progress = 0
                continue
            if not (self._heap and self._heap[0].due <= self._now()):
                self._idle.set()
            timeout = self._to_real(self._heap[0].due - now) if self._heap else None
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _deliver(self, event: _Event) -> None:
        info = self._payload(event.task_id, event.status)
        if info is None:
            return
        url, client_id, client_secret, plaintext = info
        if not is_loopback_url(url):
            self.skipped += 1
            self._record(event, url, "skipped")
            return
        event.attempt += 1
        self.attempts_made += 1
        # Real wall time, not simulated: receivers check freshness against their own clock,
        # and compressed simulated time runs ahead of it.
        timestamp = round(time.time() * 1000)
        nonce = str(self._rng.randint(1000, 9999))
        body = webhook_body(
            plaintext=plaintext,
            client_id=client_id,
            client_secret=client_secret,
            timestamp=timestamp,
            nonce=nonce,
        )
        ok = False
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=WEBHOOK_TIMEOUT)
            )
        try:
            async with self._session.post(url, json=body, allow_redirects=False) as resp:
                await resp.read()
                ok = resp.status == 200
        except (aiohttp.ClientError, asyncio.TimeoutError):
            ok = False
        if ok:
            self.delivered += 1
            self._record(event, url, "delivered")
        elif event.attempt < self._attempts:
            event.due = self._now() + self._backoff * 2 ** (event.attempt - 1)
            self._seq += 1
            event.seq = self._seq
            heapq.heappush(self._heap, event)
        else:
            self.failed += 1
            self._record(event, url, "failed")

    def _record(self, event: _Event, url: str, outcome: str) -> None:
        self.deliveries.append(
            WebhookDelivery(
                task_id=event.task_id,
                status=event.status,
                url=url,
                outcome=outcome,
                attempts=event.attempt,
                time=self._epoch(),
            )
        )


def plaintext_json(task_id: str, status: int, kind: str, url: str) -> str:
    """The compact JSON plaintext ``{"_id","status","type","url"}`` in the documented order."""
    return json.dumps(
        {"_id": task_id, "status": status, "type": kind, "url": url}, separators=(",", ":")
    )
