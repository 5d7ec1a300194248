"""Resource namespaces of :class:`~akool_async.AkoolClient`.

``client.character_swap`` is a :class:`CharacterSwapResource`, ``client.head_swap`` a
:class:`HeadSwapResource`; both sit on :class:`~._base.APIResource`, which holds the
client's :class:`~akool_async._api.Api`.
"""

from __future__ import annotations

from ._base import APIResource
from ._polling import PollTiming, size_bucket
from .character_swap import CharacterSwapResource
from .head_swap import HeadSwapResource

__all__ = [
    "APIResource",
    "CharacterSwapResource",
    "HeadSwapResource",
    "PollTiming",
    "size_bucket",
]
