"""The outbox: events are rows written in the transaction of the change that causes them.

A change that rolls back takes its events with it, and an event whose change committed is in
the database even if the process dies right after: the workers deliver it from there.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import bindparam, insert, select
from sqlmodel import Session

if TYPE_CHECKING:
    from sqlalchemy import Table

from router.db.database import as_utc
from router.db.models import Webhook, WebhookDelivery, WebhookEvent, new_id, utcnow

__all__ = ["EVENT_TYPES", "SUBSCRIBED_HOOKS", "Outbox", "emit", "forget_subscriptions", "iso"]

EVENT_TYPES = (
    "item.settled",
    "item.relabeled",
    "item.escalated",
    "annotator.suspended",
    "annotator.flagged",
)

SUBSCRIPTIONS_TTL_S = 1.0
"""How long a process trusts what it read of a project's subscriptions, for `Outbox.wanted`
(a hook registered on another process is seen within this; on this one at once)."""
_subscriptions: dict[str, tuple[float, frozenset[str]]] = {}
_WEBHOOK = cast("Table", Webhook.__table__)  # type: ignore[attr-defined]
SUBSCRIBED_HOOKS = select(_WEBHOOK.c.id, _WEBHOOK.c.events).where(
    _WEBHOOK.c.project_id == bindparam("project_id"),
    _WEBHOOK.c.active.is_(True),
    _WEBHOOK.c.deleted_at.is_(None),
)
"""A project's live hooks, (id, events): the rows `Outbox` sends events to."""
_subscriptions_lock = threading.Lock()


def forget_subscriptions(project_id: str) -> None:
    """Drop this process's cached subscriptions of the project (its hooks changed)."""
    with _subscriptions_lock:
        _subscriptions.pop(project_id, None)


def iso(value: datetime | None) -> str | None:
    """RFC 3339 UTC, as everywhere in the API."""
    return as_utc(value).isoformat().replace("+00:00", "Z") if value is not None else None


class Outbox:
    """Events of one project within one transaction; the subscribed hooks are read once."""

    __slots__ = ("_hooks", "_session", "project_id")

    def __init__(
        self,
        session: Session,
        project_id: str,
        hooks: list[tuple[str, list[str]]] | None = None,
    ) -> None:
        """`hooks`: the project's subscribed hooks as (id, events), when the caller read them
        in this transaction already (`SUBSCRIBED_HOOKS`); else they are read at the first
        event."""
        self._session = session
        self.project_id = project_id
        self._hooks = hooks

    def _subscribers(self, event_type: str) -> list[str]:
        if self._hooks is None:
            self._hooks = [
                (hook_id, list(events))
                for hook_id, events in self._session.connection().execute(
                    SUBSCRIBED_HOOKS, {"project_id": self.project_id}
                )
            ]
        return [hook_id for hook_id, events in self._hooks if event_type in events]

    def subscribed(self, event_type: str) -> bool:
        """Whether any hook wants the event (read as `emit` reads them, not from a cache)."""
        return bool(self._subscribers(event_type))

    def wanted(self, event_type: str) -> bool:
        """Whether any hook subscribes to the event (to skip building a costly payload).

        Read from a per-process cache of at most SUBSCRIPTIONS_TTL_S: a gold answer asks this
        on every label, and a database read there would make gold labels slower than routed
        ones (tests/security/test_gold_leak.py). `emit` itself always reads the hooks.
        """
        now = time.monotonic()
        with _subscriptions_lock:
            cached = _subscriptions.get(self.project_id)
        if cached is None or now - cached[0] > SUBSCRIPTIONS_TTL_S:
            events = frozenset(e for _hook, evs in self._hook_rows() for e in evs)
            with _subscriptions_lock:
                _subscriptions[self.project_id] = (now, events)
            return event_type in events
        return event_type in cached[1]

    def _hook_rows(self) -> list[tuple[str, list[str]]]:
        self._subscribers(EVENT_TYPES[0])
        assert self._hooks is not None
        return self._hooks

    def emit(self, event_type: str, data: dict[str, Any]) -> str | None:
        """Record the event and one pending delivery per subscribed hook; the event's id, or
        None when no hook wants it (then nothing is stored)."""
        ids = self.emit_many(event_type, [data])
        return ids[0] if ids else None

    def emit_many(self, event_type: str, datas: list[dict[str, Any]]) -> list[str]:
        """`emit` for many events of one type, in two multi-row inserts; their ids."""
        assert event_type in EVENT_TYPES, event_type
        hooks = self._subscribers(event_type)
        if not hooks or not datas:
            return []
        now = utcnow()
        events = [
            {
                "id": new_id(),
                "project_id": self.project_id,
                "type": event_type,
                "data": {"project_id": self.project_id, **data},
                "created_at": now,
            }
            for data in datas
        ]
        # Inserted at once, events first (the deliveries refer to them), rather than added to
        # the session: the tables have no ORM relationship to order a flush by.
        self._session.execute(insert(WebhookEvent), events)
        self._session.execute(
            insert(WebhookDelivery),
            [
                {
                    "id": new_id(),
                    "webhook_id": hook_id,
                    "event_id": event["id"],
                    "project_id": self.project_id,
                    "event_type": event_type,
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
                for event in events
                for hook_id in hooks
            ],
        )
        return [str(event["id"]) for event in events]


def emit(session: Session, project_id: str, event_type: str, data: dict[str, Any]) -> str | None:
    """One event (see `Outbox.emit`)."""
    return Outbox(session, project_id).emit(event_type, data)
