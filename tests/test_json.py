"""The compact JSON encoder: no spaces, and its two options honoured."""

from __future__ import annotations

import json

import pytest

from akool_async._json import compact_encoder


def test_compact_encoder_writes_no_spaces_and_escapes_non_ascii_by_default() -> None:
    """The default encoder writes compact JSON with non-ASCII text escaped."""
    assert compact_encoder()({"a": [1, 2], "é": None}) == '{"a":[1,2],"\\u00e9":null}'


def test_compact_encoder_honours_its_options() -> None:
    """ensure_ascii=False keeps non-ASCII text; sort_keys=True orders the keys."""
    encode = compact_encoder(ensure_ascii=False, sort_keys=True)
    text = encode({"b": "é", "a": 1})
    assert text == '{"a":1,"b":"é"}'
    assert json.loads(text) == {"a": 1, "b": "é"}


def test_compact_encoder_is_reusable_after_an_error() -> None:
    """An unencodable value or key raises json's TypeError and leaves the encoder usable."""
    encode = compact_encoder()
    with pytest.raises(TypeError, match="not JSON serializable"):
        encode({"a": [1, object()]})
    with pytest.raises(TypeError, match="keys must be"):
        encode({(1, 2): "a tuple key is never skipped silently"})
    assert encode({"a": [1, 2]}) == '{"a":[1,2]}'
