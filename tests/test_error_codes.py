"""Every business code in the error table raises its class, over real HTTP to the simulator."""

from __future__ import annotations

import pytest

import akool_async as akool
from akool_async._errors import CODE_TO_ERROR
from akool_async.testing import AkoolSimulator, Fault

pytestmark = pytest.mark.anyio

NO_RETRY = akool.RetryPolicy(attempts=1)


@pytest.mark.parametrize("code", sorted([*CODE_TO_ERROR, 4242]))
async def test_business_code_raises_its_class_with_full_context(code: int) -> None:
    """An envelope with the code raises exactly the mapped class, carrying where and what."""
    expected = CODE_TO_ERROR.get(code, akool.APIError)
    async with AkoolSimulator(manual_clock=True) as sim, akool.AkoolClient(
        sim.api_key, base_url=sim.base_url, retry=NO_RETRY
    ) as client:
        sim.inject("credit", Fault(kind="code", code=code))
        with pytest.raises(akool.APIError) as info:
            await client.get_credits()
    err = info.value
    assert type(err) is expected
    assert err.code == code
    assert err.msg == f"Simulated error {code}"
    assert err.method == "GET"
    assert err.path == "/api/open/v3/faceswap/quota/info"
    assert err.http_status == 200
    assert sim.api_key not in str(err)
    assert err.retryable == (code in (1005, 1015, 2001))


@pytest.mark.parametrize("code", sorted(c for c, cls in CODE_TO_ERROR.items() if not cls.retryable))
async def test_definite_rejection_of_a_create_is_not_uncertain_and_not_resent(code: int) -> None:
    """A create answered with a non-retryable code raises that error once; nothing is resent."""
    async with AkoolSimulator(manual_clock=True) as sim, akool.AkoolClient(
        sim.api_key, base_url=sim.base_url
    ) as client:
        sim.inject("character_swap.create", Fault(kind="code", code=code))
        with pytest.raises(akool.APIError) as info:
            await client.character_swap.create(
                akool.CharacterSwap("https://example.com/i.png", "https://example.com/v.mp4")
            )
        sent = sim.stats.requests["character_swap.create"]
    assert type(info.value) is CODE_TO_ERROR[code]
    assert sent == 1
