"""Envelope decoding: every HTTP/business-code combination maps to one result or error."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from akool_async._envelope import decode_response
from akool_async._errors import (
    CODE_TO_ERROR,
    AkoolError,
    APIError,
    AuthenticationError,
    HTTPStatusError,
    InvalidParameterError,
    RateLimitError,
    ResponseError,
    ServerError,
    error_for_code,
)

NOW = 1_700_000_000.0


def decode(
    status: int,
    body: object,
    headers: dict[str, str] | None = None,
    *,
    whole_body: bool = False,
    task_id: str | None = None,
) -> dict[str, Any]:
    """Decode ``body`` (JSON-encoded unless bytes) as an answer to GET /p."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return decode_response(
        status,
        headers or {},
        raw,
        method="GET",
        path="/p",
        now_wall=NOW,
        task_id=task_id,
        whole_body=whole_body,
    )


def test_success_returns_data() -> None:
    """code 1000 returns the data object as is."""
    assert decode(200, {"code": 1000, "msg": "OK", "data": {"_id": "a", "x": 1}}) == {
        "_id": "a",
        "x": 1,
    }


@pytest.mark.parametrize("body", [{"code": 1000}, {"code": 1000, "msg": "OK", "data": None}])
def test_success_without_data_is_empty(body: dict[str, Any]) -> None:
    """Missing or null data decodes to an empty dict."""
    assert decode(200, body) == {}


def test_get_token_shape_whole_body() -> None:
    """getToken's unwrapped token is available with whole_body=True."""
    assert decode(200, {"code": 1000, "token": "t"}, whole_body=True)["token"] == "t"


@pytest.mark.parametrize("body", [b"<html>oops</html>", b"", b'{"code": 1000, "data": {', b"[1]"])
def test_2xx_non_object_is_response_error(body: bytes) -> None:
    """A 2xx answer that is not a JSON object raises ResponseError."""
    with pytest.raises(ResponseError) as info:
        decode(200, body)
    assert info.value.http_status == 200
    assert info.value.method == "GET"
    assert info.value.path == "/p"


def test_data_not_object_is_response_error() -> None:
    """A non-object data field raises ResponseError."""
    with pytest.raises(ResponseError):
        decode(200, {"code": 1000, "data": [1, 2]})


@pytest.mark.parametrize("code", [None, "1000", True, 1.5])
def test_missing_or_bad_code_is_response_error(code: object) -> None:
    """An object without an integer code raises ResponseError."""
    with pytest.raises(ResponseError):
        decode(200, {"code": code, "data": {}})


@pytest.mark.parametrize("code", sorted(CODE_TO_ERROR))
def test_every_table_code_raises_its_class(code: int) -> None:
    """Each business code in the table raises exactly its mapped class with context."""
    with pytest.raises(AkoolError) as info:
        decode(200, {"code": code, "msg": f"message {code}"}, task_id="t1")
    err = info.value
    assert type(err) is CODE_TO_ERROR[code]
    assert err.code == code
    assert err.msg == f"message {code}"
    assert err.http_status == 200
    assert err.task_id == "t1"
    assert (err.method, err.path) == ("GET", "/p")
    assert str(code) in str(err)


@given(st.integers(min_value=-(10**9), max_value=10**9).filter(lambda c: c != 1000))
def test_unknown_codes_map_to_api_error(code: int) -> None:
    """Any non-success code raises error_for_code(code); unknown ones plain APIError."""
    with pytest.raises(APIError) as info:
        decode(200, {"code": code, "msg": "m"})
    assert type(info.value) is error_for_code(code)


def test_code_1005_reads_retry_after() -> None:
    """Code 1005 on HTTP 200 is a RateLimitError with the Retry-After hint."""
    with pytest.raises(RateLimitError) as info:
        decode(200, {"code": 1005, "msg": "Frequent operation"}, {"Retry-After": "2.5"})
    assert info.value.retry_after == 2.5
    assert info.value.code == 1005


def test_http_429_is_rate_limited() -> None:
    """HTTP 429 is a RateLimitError with retry_after, whatever the body."""
    with pytest.raises(RateLimitError) as info:
        decode(429, b"slow down", {"Retry-After": "3"})
    assert info.value.retry_after == 3.0
    assert info.value.http_status == 429
    assert info.value.code is None


def test_http_429_with_envelope_keeps_code() -> None:
    """HTTP 429 with an envelope carries its code."""
    with pytest.raises(RateLimitError) as info:
        decode(429, {"code": 1005, "msg": "x"})
    assert info.value.code == 1005
    assert info.value.retry_after is None


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_without_envelope_is_server_error_without_code(status: int) -> None:
    """A gateway 5xx (HTML body) is a ServerError with no code."""
    with pytest.raises(ServerError) as info:
        decode(status, b"<html>Bad Gateway</html>")
    assert type(info.value) is ServerError
    assert info.value.code is None
    assert info.value.http_status == status


def test_5xx_with_envelope_carries_code() -> None:
    """A 5xx with an Akool envelope is the code's class, carrying the code."""
    with pytest.raises(ServerError) as info:
        decode(503, {"code": 2001, "msg": "server error"})
    assert info.value.code == 2001
    with pytest.raises(InvalidParameterError):
        decode(500, {"code": 1003, "msg": "bad"})


def test_5xx_with_unknown_code_is_server_error() -> None:
    """A 5xx envelope with a code outside the table is a ServerError with that code."""
    with pytest.raises(ServerError) as info:
        decode(500, {"code": 4321, "msg": "?"})
    assert info.value.code == 4321


def test_5xx_with_success_code_proves_nothing() -> None:
    """A 5xx whose body claims success is a ServerError without code (not proof)."""
    with pytest.raises(ServerError) as info:
        decode(500, {"code": 1000, "data": {}})
    assert info.value.code is None


@pytest.mark.parametrize("status", [400, 401, 403, 404, 418])
def test_4xx_without_envelope_is_http_status_error(status: int) -> None:
    """Other non-2xx answers without an envelope raise HTTPStatusError."""
    with pytest.raises(HTTPStatusError) as info:
        decode(status, b"nope")
    assert info.value.http_status == status


def test_4xx_with_envelope_uses_code_class() -> None:
    """A 4xx carrying an Akool envelope raises the code's class."""
    with pytest.raises(AuthenticationError) as info:
        decode(401, {"code": 1101, "msg": "invalid token"})
    assert info.value.http_status == 401


def test_redirect_is_not_followed() -> None:
    """A 3xx answer is an HTTPStatusError naming the redirect target."""
    with pytest.raises(HTTPStatusError, match="redirect") as info:
        decode(302, b"", {"Location": "https://elsewhere.example/x"})
    assert "elsewhere.example" in str(info.value)


def test_long_msg_is_truncated_in_message() -> None:
    """A huge server msg is quoted shortly in the message but kept whole in .msg."""
    msg = "x" * 5000
    with pytest.raises(APIError) as info:
        decode(200, {"code": 1003, "msg": msg})
    assert len(str(info.value)) < 500
    assert info.value.msg == msg


@given(
    st.integers(min_value=100, max_value=599),
    st.one_of(st.binary(max_size=60), st.dictionaries(st.text(max_size=5), st.integers())),
)
def test_decoder_total(status: int, body: object) -> None:
    """Any status and body either decodes to a dict or raises an APIError."""
    try:
        result = decode(status, body)
    except APIError:
        return
    assert isinstance(result, dict)
    assert 200 <= status < 300


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
_ENVELOPES = st.fixed_dictionaries(
    {},
    optional={
        "code": st.sampled_from([1000, 1000.0, "1000", True, 1003, 1005, None]),
        "msg": st.text(max_size=5) | st.none(),
        "data": st.none() | _JSON_VALUES | st.dictionaries(st.text(), _JSON_VALUES),
    },
)


def _encoded(value: object, how: str) -> bytes:
    text = json.dumps(value)
    if how == "bom":
        return b"\xef\xbb\xbf" + text.encode()
    if how == "utf-16":
        return text.encode("utf-16")
    if how == "padded":
        return f" \n{text}\t ".encode()
    return text.encode()


# Success-shaped envelopes (2xx, code 1000) with every kind of ``data``, drawn often rather
# than by luck.
_SUCCESS_SHAPED = st.fixed_dictionaries(
    {
        "code": st.just(1000),
        "data": st.none() | _JSON_VALUES | st.dictionaries(st.text(), _JSON_VALUES),
    },
    optional={"msg": st.text(max_size=5)},
)


def _is_success(status: int, envelope: object) -> bool:
    if not (200 <= status < 300 and isinstance(envelope, dict)):
        return False
    code = envelope.get("code")
    data = envelope.get("data")
    return type(code) is int and code == 1000 and (data is None or isinstance(data, dict))


@settings(max_examples=300)
@given(
    st.sampled_from([200, 201, 204, 299, 301, 400, 429, 500]),
    _SUCCESS_SHAPED | _ENVELOPES | _JSON_VALUES,
    st.sampled_from(["utf-8", "bom", "utf-16", "padded"]),
)
@example(200, {"code": 1000, "data": [1]}, "utf-8")
@example(200, {"code": 1000, "data": "x"}, "utf-8")
@example(200, {"code": 1000.0, "data": {}}, "utf-8")
@example(200, {"code": 1000, "msg": "OK"}, "padded")
def test_decode_response_gives_the_data_of_a_success_or_an_akool_error(
    status: int, envelope: object, how: str
) -> None:
    """In any JSON encoding, a success envelope gives its data object ({} for none), anything
    else an AkoolError."""
    body = _encoded(envelope, how)
    if _is_success(status, envelope):
        assert isinstance(envelope, dict)
        assert decode(status, body) == (envelope.get("data") or {})
    else:
        with pytest.raises(AkoolError):
            decode(status, body)


@given(st.binary(max_size=40))
def test_decode_response_reads_garbage_as_an_error_or_data(body: bytes) -> None:
    """Arbitrary bytes give a dict (a success envelope by chance) or an AkoolError."""
    try:
        data = decode(200, body)
    except AkoolError:
        return
    assert isinstance(data, dict)
