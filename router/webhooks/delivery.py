"""Delivering due webhook deliveries: claim with a lease, POST signed, record the outcome.

At least once, with any number of workers: a worker claims a batch of due deliveries in one
short transaction (FOR UPDATE SKIP LOCKED on PostgreSQL; SQLite serializes writers), which
moves their due time to the end of a lease and stamps them with a token; it sends them outside
any transaction, then records each outcome only if its token still holds. A worker that dies
mid-send leaves the lease to lapse, and the delivery is due again.
"""

from __future__ import annotations

import logging
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from time import monotonic

import httpx
import msgspec
from sqlalchemy import ColumnElement, select
from sqlmodel import col

from router.db.database import Database
from router.db.models import Webhook, WebhookDelivery, WebhookEvent, new_id
from router.observability import metrics
from router.settings import WebhookSettings
from router.webhooks.outbox import iso
from router.webhooks.signing import SIGNATURE_HEADER, backoff_s, sign

__all__ = [
    "Attempt",
    "Claimed",
    "claim_due",
    "deliver_due",
    "has_due",
    "record",
    "record_all",
    "send",
]

log = logging.getLogger(__name__)

_BATCH = 50
_ERROR_CHARS = 500
_BODY_PREVIEW_BYTES = 200
_USER_AGENT = "labelrouter-webhooks/1"
_rng = random.Random()  # noqa: S311  (jitter, not a secret)


def _now() -> datetime:
    # Through `time.time()` so that tests can move this clock without waiting for back-offs.
    return datetime.fromtimestamp(time.time(), UTC)


@dataclass(frozen=True, slots=True)
class Claimed:
    """One attempt a worker holds: everything needed to send it without the database."""

    delivery_id: str
    token: str
    attempt: int
    url: str
    secret: str
    event_id: str
    event_type: str
    body: bytes


@dataclass(frozen=True, slots=True)
class Attempt:
    """What the receiver did with an attempt."""

    ok: bool
    status_code: int | None
    error: str | None


def _due_conditions(now: datetime) -> list[ColumnElement[bool]]:
    return [
        col(WebhookDelivery.status) == "pending",
        col(WebhookDelivery.next_attempt_at) <= now,
        col(Webhook.active).is_(True),
        col(Webhook.deleted_at).is_(None),
    ]


def has_due(db: Database) -> bool:
    """Whether a delivery is due now (the scheduler's cheap check before enqueuing a job)."""
    with db.read() as session:
        row = session.execute(
            select(col(WebhookDelivery.id))
            .join(Webhook, col(Webhook.id) == col(WebhookDelivery.webhook_id))
            .where(*_due_conditions(_now()))
            .limit(1)
        ).first()
    return row is not None


def body_of(event: WebhookEvent) -> bytes:
    """The JSON body of an event: the same bytes at every attempt and to every hook."""
    return msgspec.json.encode(
        {
            "id": event.id,
            "type": event.type,
            "created_at": iso(event.created_at),
            "project_id": event.project_id,
            "data": event.data,
        }
    )


def claim_due(db: Database, settings: WebhookSettings, limit: int = _BATCH) -> list[Claimed]:
    """Take up to `limit` due deliveries, each under a lease of its own token."""
    now = _now()
    lease = timedelta(seconds=max(60.0, 4 * settings.timeout_s))
    query = (
        select(WebhookDelivery, Webhook, WebhookEvent)
        .join(Webhook, col(Webhook.id) == col(WebhookDelivery.webhook_id))
        .join(WebhookEvent, col(WebhookEvent.id) == col(WebhookDelivery.event_id))
        .where(*_due_conditions(now))
        .order_by(col(WebhookDelivery.next_attempt_at))
        .limit(limit)
    )
    if not db.is_sqlite:
        query = query.with_for_update(skip_locked=True, of=WebhookDelivery)
    claimed: list[Claimed] = []
    with db.session() as session:
        for delivery, hook, event in session.execute(query).all():
            delivery.attempts += 1
            delivery.lease_token = new_id()
            delivery.next_attempt_at = now + lease
            delivery.last_attempt_at = now
            session.add(delivery)
            claimed.append(
                Claimed(
                    delivery_id=delivery.id,
                    token=delivery.lease_token,
                    attempt=delivery.attempts,
                    url=hook.url,
                    secret=hook.secret,
                    event_id=event.id,
                    event_type=event.type,
                    body=body_of(event),
                )
            )
    return claimed


def send(client: httpx.Client, claimed: Claimed) -> Attempt:
    """POST one attempt; any 2xx answer is a delivery, anything else a failed attempt."""
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": _USER_AGENT,
        "X-Labelrouter-Event": claimed.event_type,
        "X-Labelrouter-Event-Id": claimed.event_id,
        "X-Labelrouter-Delivery": claimed.delivery_id,
        "X-Labelrouter-Attempt": str(claimed.attempt),
        "X-Labelrouter-Timestamp": str(timestamp),
        SIGNATURE_HEADER: sign(claimed.secret, timestamp, claimed.body),
    }
    try:
        with client.stream("POST", claimed.url, content=claimed.body, headers=headers) as resp:
            if 200 <= resp.status_code < 300:
                return Attempt(ok=True, status_code=resp.status_code, error=None)
            preview = b""
            for chunk in resp.iter_bytes():  # a little of the body says why; never all of it
                preview += chunk
                if len(preview) >= _BODY_PREVIEW_BYTES:
                    break
    except httpx.TimeoutException as exc:
        return Attempt(ok=False, status_code=None, error=f"timed out: {type(exc).__name__}")
    except httpx.HTTPError as exc:
        return Attempt(ok=False, status_code=None, error=f"{type(exc).__name__}: {exc}")
    text = preview[:_BODY_PREVIEW_BYTES].decode("utf-8", "replace").strip()
    note = " (redirects are not followed)" if 300 <= resp.status_code < 400 else ""
    error = f"HTTP {resp.status_code}{note}" + (f": {text}" if text else "")
    return Attempt(ok=False, status_code=resp.status_code, error=error)


def record(
    db: Database, claimed: Claimed, attempt: Attempt, settings: WebhookSettings
) -> str | None:
    """Store the outcome of an attempt this worker still holds; the metric's outcome
    (delivered, failed: will retry, abandoned: no attempt left), or None if the lease was lost."""
    return record_all(db, [(claimed, attempt)], settings)[0]


def record_all(
    db: Database, results: list[tuple[Claimed, Attempt]], settings: WebhookSettings
) -> list[str | None]:
    """`record` for a batch, in one transaction (one commit rather than one per delivery)."""
    now = _now()
    outcomes: list[str | None] = []
    with db.session() as session:
        held = {
            d.id: d
            for d in session.execute(
                select(WebhookDelivery)
                .where(
                    col(WebhookDelivery.id).in_([c.delivery_id for c, _ in results]),
                    col(WebhookDelivery.status) == "pending",
                )
                .with_for_update()
            ).scalars()
        }
        for claimed, attempt in results:
            delivery = held.get(claimed.delivery_id)
            if delivery is None or delivery.lease_token != claimed.token:
                outcomes.append(None)  # the lease lapsed and another worker took it over
                continue
            outcomes.append(_apply(delivery, attempt, settings, now))
            session.add(delivery)
    for (claimed, _), outcome in zip(results, outcomes, strict=True):
        if outcome is not None:
            metrics.WEBHOOK_DELIVERIES.labels(event=claimed.event_type, outcome=outcome).inc()
    return outcomes


def _apply(
    delivery: WebhookDelivery, attempt: Attempt, settings: WebhookSettings, now: datetime
) -> str:
    delivery.lease_token = None
    delivery.last_status_code = attempt.status_code
    delivery.last_error = attempt.error[:_ERROR_CHARS] if attempt.error else None
    if attempt.ok:
        delivery.status = "delivered"
        delivery.delivered_at = now
        delivery.next_attempt_at = None
        return "delivered"
    if delivery.attempts >= settings.max_attempts:
        delivery.status = "failed"
        delivery.next_attempt_at = None
        return "abandoned"
    wait = backoff_s(
        delivery.attempts, base_s=settings.backoff_s, max_s=settings.backoff_max_s, rng=_rng
    )
    delivery.next_attempt_at = now + timedelta(seconds=wait)
    return "failed"


def deliver_due(
    db: Database, settings: WebhookSettings, *, budget_s: float = 60.0
) -> dict[str, int]:
    """Send due deliveries, a batch at a time, until none is due or `budget_s` has passed."""
    totals = {"delivered": 0, "failed": 0, "abandoned": 0, "lost": 0}
    deadline = monotonic() + budget_s
    timeout = httpx.Timeout(settings.timeout_s)
    with (
        httpx.Client(timeout=timeout, follow_redirects=False) as client,
        ThreadPoolExecutor(max_workers=settings.concurrency) as pool,
    ):
        while monotonic() < deadline:
            batch = claim_due(db, settings)
            if not batch:
                break
            attempts = list(pool.map(lambda c: send(client, c), batch))
            outcomes = record_all(db, list(zip(batch, attempts, strict=True)), settings)
            for claimed, attempt, outcome in zip(batch, attempts, outcomes, strict=True):
                totals[outcome or "lost"] += 1
                if outcome != "delivered":
                    log.info(
                        "webhook delivery %s attempt %d: %s",
                        claimed.delivery_id,
                        claimed.attempt,
                        attempt.error,
                    )
    return totals
