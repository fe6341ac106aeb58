"""The history of a project's routing config: every version, who made it and when, and what
changed from the version before (the same leaf diff the PUT audits)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlmodel import col

from router.auth.keys import Role
from router.auth.principal import Principal
from router.db.database import Database, as_utc
from router.db.models import ApiKey, RoutingConfigVersion
from router.projects.service import get_project
from router.routing.versions import config_changes

__all__ = ["ConfigHistoryEntry", "config_history"]


@dataclass(frozen=True, slots=True)
class ConfigHistoryEntry:
    version: int
    updated_at: datetime
    updated_by: str | None
    """Key id of the author (None for the project's first version)."""
    author: str | None
    """The author key's name and role, e.g. "ops (ops)"; None when unknown."""
    in_force: bool
    changes: list[dict[str, Any]]
    """Every leaf that differs from the previous version, {path, old, new}; empty for v1."""


def config_history(
    db: Database, actor: Principal, project_id: str, *, limit: int = 50
) -> list[ConfigHistoryEntry]:
    """The project's latest `limit` routing config versions, newest first (ops, admin)."""
    actor.authorize(project_id, Role.OPS)
    with db.read() as session:
        project = get_project(session, actor, project_id)
        # One version more than shown: the oldest one shown is diffed against it.
        rows = list(
            session.execute(
                select(RoutingConfigVersion)
                .where(col(RoutingConfigVersion.project_id) == project_id)
                .order_by(col(RoutingConfigVersion.version).desc())
                .limit(limit + 1)
            ).scalars()
        )
        key_ids = {r.updated_by for r in rows if r.updated_by}
        authors = {
            key_id: f"{name} ({role})"
            for key_id, name, role in session.execute(
                select(col(ApiKey.id), col(ApiKey.name), col(ApiKey.role)).where(
                    col(ApiKey.id).in_(key_ids)
                )
            ).all()
        }
        in_force = project.routing_version
    out = []
    for row, previous in zip(rows[:limit], [*rows[1:], None], strict=False):
        out.append(
            ConfigHistoryEntry(
                version=row.version,
                updated_at=as_utc(row.updated_at),
                updated_by=row.updated_by,
                author=authors.get(row.updated_by) if row.updated_by else None,
                in_force=row.version == in_force,
                changes=config_changes(previous.config, row.config) if previous else [],
            )
        )
    return out
