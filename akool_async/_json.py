"""Compact JSON encoding for request bodies and the simulator's answers."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

__all__ = ["compact_encoder"]


def compact_encoder(*, ensure_ascii: bool = True, sort_keys: bool = False) -> Callable[[Any], str]:
    """``json.dumps(obj, separators=(",", ":"), ensure_ascii=..., sort_keys=...)`` as one
    reusable function (it keeps no state, so concurrent tasks may share it)."""
    return functools.partial(
        json.dumps, separators=(",", ":"), ensure_ascii=ensure_ascii, sort_keys=sort_keys
    )
