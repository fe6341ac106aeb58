"""Managing keys after creation: listing them (never their secrets), revoking, rotating.

A revoked key stops working on the process that revoked it at once and on every other API
process within the key cache's lifetime (one second, `KeyResolver`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlmodel import col

from router import audit
from router.auth.keys import Role, generate_key, hash_key
from router.auth.principal import Principal
from router.db.database import Database, as_utc
from router.db.models import Annotator, ApiKey, new_id, utcnow
from router.errors import Forbidden, NotFound
from router.projects.service import get_project

__all__ = ["key_view", "list_keys", "revoke_key", "rotate_annotator_key"]

# Ops manage the keys of the people and pipelines of their project, not ops keys.
_OPS_REVOCABLE = (Role.PRODUCER.value, Role.TOOL.value, Role.ANNOTATOR.value)


def key_view(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "role": key.role,
        "name": key.name,
        "project_id": key.project_id,
        "annotator_id": key.annotator_id,
        "created_at": _iso(key.created_at),
        "revoked_at": _iso(key.revoked_at),
    }


def list_keys(db: Database, actor: Principal, project_id: str) -> list[dict[str, Any]]:
    """The project's keys, oldest first, without their secrets (only hashes are stored)."""
    actor.authorize(project_id, Role.OPS)
    with db.read() as session:
        get_project(session, actor, project_id)
        keys = session.execute(
            select(ApiKey)
            .where(col(ApiKey.project_id) == project_id)
            .order_by(col(ApiKey.created_at), col(ApiKey.id))
        ).scalars()
        return [key_view(k) for k in keys]


def revoke_key(db: Database, actor: Principal, project_id: str, key_id: str) -> ApiKey:
    """Revoke one key of the project (admin: any; ops: producer, tool and annotator keys).

    Revoking a revoked key changes nothing and answers the same.
    """
    actor.authorize(project_id, Role.OPS)
    with db.session() as session:
        get_project(session, actor, project_id)
        key = session.get(ApiKey, key_id, with_for_update=True)
        if key is None or key.project_id != project_id:
            raise NotFound(f"key {key_id!r} not found in project {project_id!r}")
        if actor.role is not Role.ADMIN and key.role not in _OPS_REVOCABLE:
            msg = f"an ops key may revoke producer, tool and annotator keys, not {key.role} keys"
            raise Forbidden(msg + "; ask an admin")
        if key.revoked_at is None:
            key.revoked_at = utcnow()
            session.add(key)
            audit.record(
                session,
                actor,
                "key.revoked",
                object_type="api_key",
                object_id=key.id,
                project_id=project_id,
                detail={"role": key.role, "name": key.name, "annotator_id": key.annotator_id},
            )
        return key


def rotate_annotator_key(
    db: Database, actor: Principal, project_id: str, annotator_id: str
) -> tuple[ApiKey, str, list[str]]:
    """(new key, its raw value shown once, hashes of the keys it replaced, now revoked)."""
    actor.authorize(project_id, Role.OPS)
    raw = generate_key()
    now = utcnow()
    with db.session() as session:
        get_project(session, actor, project_id)
        annotator = session.get(Annotator, annotator_id)
        if annotator is None or annotator.project_id != project_id:
            raise NotFound(f"annotator {annotator_id!r} not found in project {project_id!r}")
        old = list(
            session.execute(
                select(col(ApiKey.id), col(ApiKey.key_hash)).where(
                    col(ApiKey.annotator_id) == annotator_id, col(ApiKey.revoked_at).is_(None)
                )
            ).all()
        )
        old_ids = [kid for kid, _ in old]
        if old_ids:
            session.execute(
                update(ApiKey).where(col(ApiKey.id).in_(old_ids)).values(revoked_at=now)
            )
        key = ApiKey(
            id=new_id(),
            key_hash=hash_key(raw),
            role=Role.ANNOTATOR.value,
            project_id=project_id,
            annotator_id=annotator_id,
            name=f"annotator {annotator.external_id}",
            created_at=now,
        )
        session.add(key)
        audit.record(
            session,
            actor,
            "key.rotated",
            object_type="annotator",
            object_id=annotator_id,
            project_id=project_id,
            detail={"key_id": key.id, "revoked": old_ids},
        )
    return key, raw, [digest for _, digest in old]


def _iso(value: datetime | None) -> str | None:
    return as_utc(value).isoformat().replace("+00:00", "Z") if value is not None else None
