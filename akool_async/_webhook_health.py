"""How a webhook receiver is doing: delivery counts by outcome, and a warning said once.

A wrong client id makes every delivery fail its signature check, a wrong client secret every
decryption; both would otherwise pass unnoticed while jobs finish by slow polling. The first
rejection of each of those kinds is logged at WARNING with the likely cause, later ones at
DEBUG; :class:`WebhookStats` keeps the counts for summaries.
"""

from __future__ import annotations

import logging
from typing import Final

import attrs

__all__ = ["REJECTION_KINDS", "DeliveryTally", "WebhookStats"]

logger = logging.getLogger("akool_async.webhooks")

#: What each verification stage counts as: a rejection kind of :class:`WebhookStats`.
REJECTION_KINDS: Final = {
    "config": "malformed",
    "payload": "malformed",
    "event": "malformed",
    "timestamp": "stale",
    "signature": "signature",
    "decrypt": "decrypt",
}

#: The likely cause, said once at WARNING, for the kinds that point at a configuration.
_CAUSES: Final = {
    "signature": (
        "signature mismatch: check AKOOL_CLIENT_ID (the signature covers the client id) "
        "-- or the delivery was forged"
    ),
    "decrypt": (
        "the signature is valid but the payload does not decrypt: check AKOOL_CLIENT_SECRET "
        "(the AES key; Akool documents it as equal to the API key)"
    ),
}


@attrs.frozen
class WebhookStats:
    """Counts of a receiver's deliveries since it was created.

    ``accepted``: new events dispatched; ``duplicates``: verified repeats answered 200;
    ``rejected``: every delivery answered 400/413, which is the sum of
    ``rejected_signature`` (signature mismatch: wrong client id, or forged),
    ``rejected_decrypt`` (valid signature, undecryptable: wrong client secret),
    ``rejected_stale`` (timestamp outside ``max_age``: clock skew or a replay) and
    ``rejected_malformed`` (anything else wrong with the body); ``listener_errors``:
    deliveries answered 500 because a listener raised.
    """

    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    rejected_signature: int = 0
    rejected_decrypt: int = 0
    rejected_stale: int = 0
    rejected_malformed: int = 0
    listener_errors: int = 0


class DeliveryTally:
    """The mutable counts behind :class:`WebhookStats`, and the once-loudly rejection log."""

    def __init__(self) -> None:
        self.accepted = 0
        self.duplicates = 0
        self.listener_errors = 0
        self.rejections = dict.fromkeys(("signature", "decrypt", "stale", "malformed"), 0)

    @property
    def rejected(self) -> int:
        """Every rejected delivery."""
        return sum(self.rejections.values())

    def reject(self, stage: str, message: str) -> None:
        """Count a rejection at verification ``stage`` and log it (loudly the first time)."""
        kind = REJECTION_KINDS.get(stage, "malformed")
        self.rejections[kind] += 1
        cause = _CAUSES.get(kind)
        if cause is None:
            logger.info("Akool webhook rejected: %s", message)
        elif self.rejections[kind] == 1:
            logger.warning(
                "Akool webhook rejected: %s (%s). Jobs still finish by polling, but late; "
                "further rejections of this kind are logged at DEBUG.",
                cause,
                message,
            )
        else:
            logger.debug("Akool webhook rejected again (%s): %s", kind, message)

    def snapshot(self) -> WebhookStats:
        """The counts now, frozen."""
        return WebhookStats(
            accepted=self.accepted,
            duplicates=self.duplicates,
            rejected=self.rejected,
            rejected_signature=self.rejections["signature"],
            rejected_decrypt=self.rejections["decrypt"],
            rejected_stale=self.rejections["stale"],
            rejected_malformed=self.rejections["malformed"],
            listener_errors=self.listener_errors,
        )
