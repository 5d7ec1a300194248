"""``akool_async.testing``: an offline Akool Open API simulator for tests, demos and benchmarks.

``AkoolSimulator`` is a real ``aiohttp.web`` server on 127.0.0.1 implementing the endpoints of
``akool-api.md`` (getToken, character swap create/result, head swap analyze/analysis detail/
create/detail, credit) with their envelopes and quirks, task lifecycles on a scalable or
manual clock, signed and encrypted webhooks, a seeded ``FaultPlan`` and counters
(``AkoolSimulator.stats``). Run it standalone with ``python -m akool_async.testing``.

Choices where the contract is silent:

- Errors are HTTP 200 ``{"code": N, "msg": "..."}`` without a ``data`` key; validation errors
  are code 1003 with a ``msg`` that names the field.
- Both ``webhookurl`` and ``webhookUrl`` are accepted on both create endpoints (lowercase wins
  if both are sent); responses echo ``webhookUrl`` (``""`` when none was given).
- getToken: missing ``clientId``/``clientSecret`` -> 1102, wrong -> 1101. Tokens never expire.
  An empty ``Authorization`` header counts as absent; a non-Bearer or unknown one is 1101 even
  when a valid ``x-api-key`` is also sent (Authorization wins).
- Head swap price: ``ceil(video_duration / 5) * {480p: 5, 720p: 10}``, reported as
  ``deduction_lock_duration`` at create and ``deduction_duration`` in detail (0 on failure).
  Analyses are free. Credits are charged at create and refunded when the task fails.
- Head swap create requires ``model_name`` (only ``akool-premium``) and ``resolution``
  (``480p``/``720p``), as the contract's table marks them required.
- Webhook ``type``: ``"character swap"`` / ``"head swap"``; ``url`` is ``""`` unless status 3.
  Sent on 3 and 4 (and 2 with ``webhook_on_processing``), only to loopback hosts.
- A completed character swap reports ``video_duration`` + 0.5 (fractional, like the example).
- Source-video test hooks (query parameters of the video URL): ``duration=N``, ``people=N``,
  ``fail=1``. Without them duration is 3-20 s and people 1-3, derived from a URL hash.

Layout: ``_server`` (the app and ``AkoolSimulator``), ``_accounts``, ``_tasks`` (lifecycles on
``_clock``), ``_endpoints_character``/``_endpoints_head``, ``_files`` (outputs, Range),
``_answers`` (envelopes, fault answers, request log), ``_faults``, ``_webhooks``, ``_media``.
"""

from __future__ import annotations

from ._faults import (
    API_ENDPOINTS,
    CREATE_ENDPOINTS,
    ENDPOINTS,
    FAULT_KINDS,
    PROFILES,
    Fault,
    FaultPlan,
    profile,
)
from ._media import people_in, video_seconds
from ._model import (
    CHARACTER_SWAP_RATES,
    DEFAULT_API_KEY,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_CREDIT,
    DEFAULT_DURATIONS,
    HEAD_SWAP_RATES,
    WEBHOOK_TYPES,
    Account,
    Duration,
    RequestLogEntry,
    SimulatorStats,
    TaskInfo,
)
from ._server import AkoolSimulator
from ._webhooks import WebhookDelivery, encrypt_webhook_data, sign_webhook, webhook_body

__all__ = [
    "API_ENDPOINTS",
    "CHARACTER_SWAP_RATES",
    "CREATE_ENDPOINTS",
    "DEFAULT_API_KEY",
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "DEFAULT_CREDIT",
    "DEFAULT_DURATIONS",
    "ENDPOINTS",
    "FAULT_KINDS",
    "HEAD_SWAP_RATES",
    "PROFILES",
    "WEBHOOK_TYPES",
    "Account",
    "AkoolSimulator",
    "Duration",
    "Fault",
    "FaultPlan",
    "RequestLogEntry",
    "SimulatorStats",
    "TaskInfo",
    "WebhookDelivery",
    "encrypt_webhook_data",
    "people_in",
    "profile",
    "sign_webhook",
    "video_seconds",
    "webhook_body",
]
