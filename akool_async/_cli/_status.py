"""``akool-async status ID`` and ``akool-async credits``."""

from __future__ import annotations

import json
import sys
from typing import Any

from akool_async import AkoolClient, NotFoundError
from akool_async._converters import CHARACTER_SWAP_KIND, HEAD_SWAP_KIND

from ._common import EXIT_OK, CommandError
from ._env import client_from_env
from ._results import NO_PRICE

__all__ = ["TaskNotFoundError", "credits_command", "status_command"]

_KIND_NAMES = {CHARACTER_SWAP_KIND: "character swap", HEAD_SWAP_KIND: "head swap"}


class TaskNotFoundError(CommandError):
    """No endpoint tried knows the id; the message names every endpoint tried (exit 1)."""

    def __init__(self, task_id: str, misses: list[tuple[str, NotFoundError]]) -> None:
        tried = "; ".join(
            f"{_KIND_NAMES[kind]}: {exc.method} {exc.path}".rstrip(": ") for kind, exc in misses
        )
        super().__init__(f"NotFoundError: no task {task_id} (tried {tried})")


async def _find(client: AkoolClient, task_id: str, kinds: list[str]) -> tuple[str, Any]:
    misses: list[tuple[str, NotFoundError]] = []
    for kind in kinds:
        resource: Any = client.character_swap if kind == CHARACTER_SWAP_KIND else client.head_swap
        try:
            return kind, await resource.get(task_id)
        except NotFoundError as exc:
            misses.append((kind, exc))
    raise TaskNotFoundError(task_id, misses)


async def status_command(task_id: str, kind: str | None, as_json: bool) -> int:
    """Print one task's status (either kind unless ``kind`` is given)."""
    client = client_from_env(1.0)
    kinds = [kind] if kind else [CHARACTER_SWAP_KIND, HEAD_SWAP_KIND]
    async with client:
        found_kind, result = await _find(client, task_id, kinds)
    credits = NO_PRICE if found_kind == HEAD_SWAP_KIND else getattr(result, "credits", None)
    record = {
        "id": result.id,
        "kind": found_kind,
        "status": result.status.name.lower(),
        "output_url": result.output_url,
        "failure_reason": result.failure_reason,
        "credits": credits,
        "progress": getattr(result, "progress", None),
    }
    if as_json:
        sys.stdout.write(json.dumps(record) + "\n")
    else:
        for name, value in record.items():
            if value is not None:
                sys.stdout.write(f"{name:<15} {value}\n")
    sys.stdout.flush()
    return EXIT_OK


async def credits_command() -> int:
    """Print the account's credit balance."""
    client = client_from_env(1.0)
    async with client:
        balance = await client.get_credits()
    sys.stdout.write(f"{balance:,.0f} credits\n")
    sys.stdout.flush()
    return EXIT_OK
