"""Registering gold items and their answers."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlmodel import col

from router import audit
from router.auth.keys import Role
from router.auth.principal import Principal
from router.db.database import Database
from router.db.models import GoldAnswer, Item, new_id, utcnow
from router.errors import Conflict, InvalidInput
from router.items.ingest import ItemPrediction, committee_column, validate_predictions
from router.projects.service import get_project, label_schema_of
from router.queueing.assignments import AssignmentStore

__all__ = ["register_gold"]

log = logging.getLogger(__name__)
_MAX_GOLD_PER_REQUEST = 10_000


def register_gold(
    db: Database,
    store: AssignmentStore,
    actor: Principal,
    project_id: str,
    entries: list[dict[str, Any]],
) -> dict[str, Any]:
    """Store gold items (all or nothing); a repeat with a higher revision updates the answer."""
    actor.authorize(project_id, Role.OPS)
    if not entries:
        raise InvalidInput("send at least one gold item", extra=[])
    if len(entries) > _MAX_GOLD_PER_REQUEST:
        raise InvalidInput(f"at most {_MAX_GOLD_PER_REQUEST} gold items per request", extra=[])
    created: list[tuple[str, str]] = []
    updated = 0
    with db.session() as session:
        project = get_project(session, actor, project_id)
        schema = label_schema_of(project)
        problems: list[dict[str, Any]] = []
        seen: set[str] = set()
        predictions: dict[str, list[ItemPrediction]] = {}
        for index, entry in enumerate(entries):
            ext = entry["external_id"]
            if not ext.strip() or len(ext) > 200:
                problems.append(
                    {
                        "index": index,
                        "field": "external_id",
                        "message": "a non-empty string of at most 200 characters",
                    }
                )
            if ext in seen:
                problems.append(
                    {
                        "index": index,
                        "field": "external_id",
                        "message": "appears twice in this request",
                    }
                )
            seen.add(ext)

            def bad(field: str, message: str, index: int = index) -> None:
                problems.append({"index": index, "field": field, "message": message})

            predictions[ext] = validate_predictions(entry.get("predictions"), schema, bad)
            if schema.index_of(entry["answer"]) is None:
                problems.append(
                    {
                        "index": index,
                        "field": "answer",
                        "message": f"{entry['answer']!r} is not one of {', '.join(schema.labels)}",
                    }
                )
        if problems:
            raise InvalidInput("invalid gold items; nothing was stored", extra=problems)
        existing = {
            item.external_id: item
            for item in session.execute(
                select(Item).where(
                    col(Item.project_id) == project_id,
                    col(Item.external_id).in_(list(seen)),
                )
            ).scalars()
        }
        clash = [e for e, item in existing.items() if not item.is_gold]
        if clash:
            msg = (
                f"{len(clash)} external_id(s) already belong to ordinary items "
                f"(first: {clash[0]!r}); gold items need their own external_ids"
            )
            raise Conflict(msg)
        now = utcnow()
        batch_id = new_id()
        for entry in entries:
            ext = entry["external_id"]
            revision = int(entry.get("revision") or 1)
            item = existing.get(ext)
            if item is not None:
                answer = session.get(GoldAnswer, item.id)
                if answer is not None and revision > answer.revision:
                    answer.answer, answer.revision, answer.created_at = (
                        entry["answer"],
                        revision,
                        now,
                    )
                    session.add(answer)
                    if entry.get("predictions") is not None:  # the new revision's, if sent
                        item.committee = committee_column(predictions[ext])
                        session.add(item)
                    updated += 1
                created.append((ext, item.id))
                continue
            item = Item(
                id=new_id(),
                project_id=project_id,
                external_id=ext,
                batch_id=batch_id,
                payload=entry["payload"],
                committee=committee_column(predictions[ext]),
                is_gold=True,
                status="routed",
                tier=None,
                routing_reason="gold item: served blind to annotators to measure their accuracy",
                created_at=now,
                updated_at=now,
                routed_at=now,
            )
            session.add(item)
            session.flush()
            session.add(
                GoldAnswer(
                    item_id=item.id, answer=entry["answer"], revision=revision, created_at=now
                )
            )
            created.append((ext, item.id))
        new_ids = [iid for ext, iid in created if ext not in existing]
        audit.record(
            session,
            actor,
            "gold.registered",
            object_type="batch",
            object_id=batch_id,
            project_id=project_id,
            detail={"created": len(new_ids), "updated": updated},
        )
    store.add_gold(project_id, new_ids)
    return {
        "accepted": len(new_ids),
        "updated": updated,
        "items": [{"external_id": e, "id": i} for e, i in created],
    }
