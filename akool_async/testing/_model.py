"""The simulator's public values: default credentials and prices, durations, snapshots."""

from __future__ import annotations

from collections.abc import Mapping

import attrs

#: Default API key (24 characters, so it is also a valid AES-192 webhook key).
DEFAULT_API_KEY = "sim-akool-api-key-000001"
#: Default client id (24 hex characters, like the documented example).
DEFAULT_CLIENT_ID = "64db241f6d9e5c4bd1000001"
#: Default client secret: the same value as the API key, as on the real platform.
DEFAULT_CLIENT_SECRET = DEFAULT_API_KEY
#: Default initial credit balance of an account.
DEFAULT_CREDIT = 10_000_000
#: Default size of the bounded request log.
DEFAULT_LOG_SIZE = 10_000

#: Character swap credits per started 5-second block, by resolution (akool-api.md 3.2).
CHARACTER_SWAP_RATES: Mapping[str, int] = {"480p": 5, "720p": 10, "1080p": 15}
#: Head swap credits per started 5-second block (undocumented: the simulator's choice).
HEAD_SWAP_RATES: Mapping[str, int] = {"480p": 5, "720p": 10}
CHARACTER_SWAP_MODEL = "wavespeed-ai/wan-2.2/animate"
HEAD_SWAP_MODELS: tuple[str, ...] = ("akool-premium",)
CHARACTER_SWAP_FAIL_REASON = "Failed to process the video. Please check your input resources."
HEAD_SWAP_FAIL_REASON = "Failed to process the video. Please check your input resources."
ANALYSIS_FAIL_REASON = "No person detected in the video."
#: Webhook ``type`` values (undocumented for these features: the simulator's choice).
WEBHOOK_TYPES: Mapping[str, str] = {"character_swap": "character swap", "head_swap": "head swap"}

STATUS_NAMES: Mapping[int, str] = {1: "queueing", 2: "processing", 3: "completed", 4: "failed"}
KINDS: tuple[str, ...] = ("analysis", "character_swap", "head_swap")


@attrs.frozen(kw_only=True)
class Duration:
    """Simulated seconds a task of one kind spends queueing (status 1) and processing (2).

    processing = (``process`` + ``per_video_second`` * source seconds) *
    ``resolution_factor.get(resolution, 1.0)``. With ``sigma`` > 0 queueing and processing
    are each multiplied by a seeded lognormal draw of median 1 and that sigma; 0 = fixed.
    """

    queue: float = 0.0
    process: float = 10.0
    per_video_second: float = 0.0
    resolution_factor: Mapping[str, float] = attrs.field(factory=dict)
    sigma: float = 0.0

    @classmethod
    def fixed(cls, total: float) -> Duration:
        """``total`` simulated seconds from create to the end: 20 % queueing, 80 % processing."""
        return cls(queue=0.2 * total, process=0.8 * total)


#: Default durations: swaps take minutes, analyses tens of seconds (simulated seconds).
DEFAULT_DURATIONS: Mapping[str, Duration] = {
    "character_swap": Duration(
        queue=5.0,
        process=30.0,
        per_video_second=6.0,
        resolution_factor={"480p": 0.7, "720p": 1.0, "1080p": 1.6},
        sigma=0.25,
    ),
    "head_swap": Duration(
        queue=5.0,
        process=30.0,
        per_video_second=8.0,
        resolution_factor={"480p": 0.8, "720p": 1.0},
        sigma=0.25,
    ),
    "analysis": Duration(queue=2.0, process=10.0, per_video_second=0.5, sigma=0.2),
}


@attrs.frozen(kw_only=True)
class Account:
    """Credentials and identity of one simulated team."""

    api_key: str
    client_id: str
    client_secret: str
    team_id: str
    uid: int


@attrs.frozen(kw_only=True)
class RequestLogEntry:
    """One answered request. ``code`` is the business code (None when there was no envelope);
    ``status`` is the HTTP status (0 when the connection was dropped); ``time`` is the
    simulated epoch in seconds. Never contains credentials."""

    method: str
    path: str
    endpoint: str
    status: int
    code: int | None
    time: float


@attrs.frozen(kw_only=True)
class TaskInfo:
    """A snapshot of one task or analysis, for tests (``kind`` is one of ``KINDS``)."""

    id: str
    kind: str
    status: int
    team_id: str
    create_time: float
    processing_at: float
    finished_at: float
    will_fail: bool
    price: int
    webhook_url: str | None
    #: The ``stats.creates`` key of the create that made this swap (None: an analysis).
    fingerprint: str | None = None


@attrs.frozen(kw_only=True)
class SimulatorStats:
    """A frozen snapshot of the simulator's counters.

    - ``requests``: endpoint name -> requests received (including faulted ones).
    - ``creates``: request fingerprint (see ``AkoolSimulator.fingerprint``) -> creates
      processed; ``duplicate_creates`` sums the excess over 1.
    - ``polls``: task or analysis id -> result/detail requests answered for it.
    - ``tasks``: kind -> state name (queueing/processing/completed/failed) -> count, now.
    - ``faults``: fault kind -> times injected.
    - ``max_concurrent_creates``: most create requests in flight at once (server side).
    """

    requests: Mapping[str, int]
    creates: Mapping[str, int]
    polls: Mapping[str, int]
    tasks: Mapping[str, Mapping[str, int]]
    faults: Mapping[str, int]
    webhooks_delivered: int
    webhooks_failed: int
    webhooks_skipped: int
    webhook_attempts: int
    max_concurrent_creates: int
    in_flight_creates: int
    rate_limited: int

    @property
    def total_requests(self) -> int:
        """All requests received."""
        return sum(self.requests.values())

    @property
    def duplicate_creates(self) -> int:
        """Creates whose fingerprint had already been created before."""
        return sum(n - 1 for n in self.creates.values() if n > 1)
