"""The compact JSON encoder gives exactly what json.dumps gives, with or without C."""

from __future__ import annotations

import json
import json.encoder
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from akool_async._json import compact_encoder

#: JSON-able trees: every scalar json handles (NaN and infinities included, which
#: json.dumps writes as NaN/Infinity), non-ASCII and control characters, nesting.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=20,
)

OPTIONS = [
    {"ensure_ascii": True, "sort_keys": False},
    {"ensure_ascii": False, "sort_keys": False},
    {"ensure_ascii": False, "sort_keys": True},
]


def _dumps(value: Any, options: dict[str, bool]) -> str:
    return json.dumps(value, separators=(",", ":"), **options)


@pytest.mark.parametrize("options", OPTIONS)
@given(value=json_values)
def test_compact_encoder_matches_json_dumps(options: dict[str, bool], value: Any) -> None:
    """The reusable C encoder writes the very string json.dumps writes."""
    assert compact_encoder(**options)(value) == _dumps(value, options)


@pytest.mark.parametrize("options", OPTIONS)
@given(value=json_values)
def test_compact_encoder_without_c_accelerator(options: dict[str, bool], value: Any) -> None:
    """Without CPython's C encoder, the standard JSONEncoder path gives the same string."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(json.encoder, "c_make_encoder", None)
        encode = compact_encoder(**options)
    assert compact_encoder(**options)(value) == encode(value) == _dumps(value, options)


def test_compact_encoder_is_reusable_after_an_error() -> None:
    """An unencodable value or key raises json's TypeError and leaves the encoder usable."""
    encode = compact_encoder()
    with pytest.raises(TypeError, match="not JSON serializable"):
        encode({"a": [1, object()]})
    with pytest.raises(TypeError, match="keys must be"):
        encode({(1, 2): "a tuple key is never skipped silently"})
    assert encode({"a": [1, 2]}) == '{"a":[1,2]}'
