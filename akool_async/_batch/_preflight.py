"""Preflight: will the account's credit balance cover a run? Checked before the first create.

:func:`balance_check` is the pure part (an estimate against a balance); :func:`check_balance`
reads the balance through the client. Requests without a public price (head swaps, character
swaps without ``duration``) are counted as ``unpriced``, never as 0 credits.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import attrs

from akool_async._models import CharacterSwap, HeadSwap
from akool_async._request_codec import estimate_credits

if TYPE_CHECKING:
    from akool_async._client import AkoolClient

__all__ = ["BalanceCheck", "balance_check", "check_balance"]


@attrs.frozen
class BalanceCheck:
    """An estimate against a balance.

    ``estimate``: credits of the priced requests; ``priced``/``unpriced``: how many requests
    have (no) estimate; ``balance``: credits on the account. ``enough`` is False only when
    the priced requests alone already exceed the balance (unpriced ones can only add).
    """

    estimate: int
    priced: int
    unpriced: int
    balance: float

    @property
    def enough(self) -> bool:
        """False when the estimate of the priced requests exceeds the balance."""
        return self.estimate <= self.balance

    @property
    def complete(self) -> bool:
        """True when every request has an estimate (none is unpriced)."""
        return self.unpriced == 0

    def message(self) -> str:
        """One line for people: the estimate, the balance, and what is not estimated."""
        text = (
            f"estimated {self.estimate} credits for {self.priced} job(s); "
            f"balance {self.balance:g}"
        )
        if self.unpriced:
            text += f"; {self.unpriced} job(s) have no estimate and may cost more"
        return text


def balance_check(requests: Iterable[CharacterSwap | HeadSwap], balance: float) -> BalanceCheck:
    """Sum :func:`estimate_credits` over ``requests`` and compare with ``balance`` (no I/O)."""
    estimate = priced = unpriced = 0
    for req in requests:
        credits = estimate_credits(req)
        if credits is None:
            unpriced += 1
        else:
            estimate += credits
            priced += 1
    return BalanceCheck(estimate=estimate, priced=priced, unpriced=unpriced, balance=balance)


async def check_balance(
    client: AkoolClient, requests: Iterable[CharacterSwap | HeadSwap]
) -> BalanceCheck:
    """Read the account's balance (``client.get_credits()``) and check ``requests`` against it."""
    return balance_check(requests, await client.get_credits())
