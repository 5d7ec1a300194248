"""Simulated teams: credentials, authentication, credit balances and the rate limit.

Also the two account endpoints, getToken and the credit balance.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Callable
from typing import Any

from aiohttp import web

from ._clock import SimClock
from ._model import Account
from ._validation import ApiError, read_json_object

__all__ = ["AccountState", "Accounts"]

#: Valid AES key sizes: the client secret is the webhook key.
_AES_KEY_SIZES = (16, 24, 32)


class AccountState:
    """One team: its account, credit balance (with refunds due later) and rate bucket."""

    def __init__(self, account: Account, credit: int, bucket: float) -> None:
        self.account = account
        self.balance = credit
        self.refunds: list[tuple[float, int]] = []
        self.bucket = bucket
        self.bucket_at = 0.0

    def settle(self, now: float) -> None:
        """Add the refunds due by simulated time ``now`` to the balance."""
        while self.refunds and self.refunds[0][0] <= now:
            _, amount = heapq.heappop(self.refunds)
            self.balance += amount

    def charge(self, price: int, now: float) -> None:
        """Take ``price`` credits, or ApiError 1104 when the balance is short."""
        self.settle(now)
        if self.balance < price:
            raise ApiError(1104, "Insufficient credit balance")
        self.balance -= price

    def refund_at(self, when: float, amount: int) -> None:
        """Give ``amount`` credits back at simulated time ``when`` (a failed task)."""
        heapq.heappush(self.refunds, (when, amount))


class Accounts:
    """Every team of a simulator, found by API key, client id or bearer token."""

    def __init__(
        self, clock: SimClock, new_id: Callable[[], str], *, rate_limit: float | None, seed: int
    ) -> None:
        if rate_limit is not None and not rate_limit > 0:
            raise ValueError("rate_limit must be > 0 requests per second, or None")
        self._clock = clock
        self._new_id = new_id
        self._rate_limit = rate_limit
        self._seed = seed
        self._by_api_key: dict[str, AccountState] = {}
        self._by_client_id: dict[str, AccountState] = {}
        self._tokens: dict[str, AccountState] = {}
        self.rate_limited = 0

    def add(
        self, *, api_key: str, client_id: str, client_secret: str | None, credit: int
    ) -> Account:
        """Add a team (see ``AkoolSimulator.add_account``)."""
        secret = api_key if client_secret is None else client_secret
        if len(secret.encode()) not in _AES_KEY_SIZES:
            raise ValueError("client_secret (default: api_key) must be 16, 24 or 32 characters")
        if not api_key or api_key in self._by_api_key:
            raise ValueError("api_key must be non-empty and unique")
        if not client_id or client_id in self._by_client_id:
            raise ValueError("client_id must be non-empty and unique")
        account = Account(
            api_key=api_key,
            client_id=client_id,
            client_secret=secret,
            team_id=self._new_id(),
            uid=101400 + len(self._by_api_key),
        )
        state = AccountState(account, credit, bucket=self._rate_limit or 0.0)
        self._by_api_key[api_key] = state
        self._by_client_id[client_id] = state
        return account

    def get(self, api_key: str) -> AccountState:
        """The team of ``api_key`` (KeyError when unknown)."""
        return self._by_api_key[api_key]

    def authenticate(self, request: web.Request) -> AccountState:
        """The caller's team: ``Authorization: Bearer`` wins over ``x-api-key``."""
        auth = request.headers.get("Authorization", "").strip()
        if auth:
            scheme, _, token = auth.partition(" ")
            state = self._tokens.get(token.strip()) if scheme.lower() == "bearer" else None
            if state is None:
                raise ApiError(1101, "Invalid authorization or token expired")
            return state
        key = request.headers.get("x-api-key", "").strip()
        if not key:
            raise ApiError(1102, "Authorization cannot be empty")
        state = self._by_api_key.get(key)
        if state is None:
            raise ApiError(1101, "Invalid authorization or token expired")
        return state

    def check_rate(self, state: AccountState) -> None:
        """Take one request from the team's token bucket, or ApiError 1005."""
        rate = self._rate_limit
        if rate is None:
            return
        now = self._clock.now()
        burst = max(1.0, rate)
        state.bucket = min(burst, state.bucket + (now - state.bucket_at) * rate)
        state.bucket_at = now
        if state.bucket < 1.0:
            self.rate_limited += 1
            raise ApiError(1005, "Operation is too frequent")
        state.bucket -= 1.0

    async def get_token(self, request: web.Request) -> dict[str, Any]:
        """``POST /api/open/v3/getToken``: a bearer token for clientId + clientSecret."""
        body = await read_json_object(request)
        client_id = body.get("clientId")
        client_secret = body.get("clientSecret")
        if not client_id or not client_secret:
            raise ApiError(1102, "clientId and clientSecret cannot be empty")
        state = self._by_client_id.get(client_id) if isinstance(client_id, str) else None
        if state is None or state.account.client_secret != client_secret:
            raise ApiError(1101, "Invalid authorization or token expired")
        self.check_rate(state)
        digest = hashlib.sha256(f"{self._seed}/{client_id}/{self._new_id()}".encode())
        token = f"sim.{digest.hexdigest()}"
        self._tokens[token] = state
        return {"code": 1000, "token": token}

    async def credit(self, request: web.Request, state: AccountState) -> dict[str, Any]:
        """``GET /api/open/v3/faceswap/quota/info``: the team's balance."""
        state.settle(self._clock.now())
        return {"code": 1000, "msg": "OK", "data": {"credit": state.balance}}
