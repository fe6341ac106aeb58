"""Creating and reading projects, their routing config versions and their API keys."""

from __future__ import annotations

import threading
from typing import Any

from sqlmodel import Session, col, select

from router import audit
from router.auth.keys import Role, generate_key, hash_key
from router.auth.principal import Principal
from router.db.database import Database
from router.db.models import ApiKey, Project, RoutingConfigVersion, new_id, utcnow
from router.errors import InvalidInput, NotFound
from router.projects.label_schema import LabelSchema
from router.routing.config import (
    RoutingConfig,
    RoutingConfigInvalid,
    load_default_config,
    merge_overrides,
    parse_config,
)

__all__ = [
    "config_problems",
    "create_key",
    "create_project",
    "ensure_admin_key",
    "get_project",
    "label_schema_of",
    "list_projects",
    "lock_project",
    "routing_config",
    "routing_config_of",
]

_KEY_ROLES = (Role.OPS, Role.PRODUCER, Role.TOOL)
_config_cache: dict[tuple[str, int], RoutingConfig] = {}
_config_lock = threading.Lock()


def config_problems(exc: RoutingConfigInvalid, prefix: str) -> list[dict[str, str]]:
    return [
        {"field": f"{prefix}.{p.path}" if p.path else prefix, "message": p.message}
        for p in exc.problems
    ]


def create_project(
    db: Database,
    actor: Principal,
    *,
    name: str,
    label_schema: Any,
    rubric_version: str,
    routing: Any = None,
) -> Project:
    actor.require_admin()
    problems: list[dict[str, str]] = []
    if not name.strip():
        problems.append({"field": "name", "message": "must not be empty"})
    if not rubric_version.strip():
        problems.append({"field": "rubric_version", "message": "must not be empty"})
    schema: LabelSchema | None = None
    try:
        schema = LabelSchema.parse(label_schema)
    except InvalidInput as exc:
        problems.extend(exc.extra)
    config: RoutingConfig | None = None
    try:
        config = merge_overrides(load_default_config(), routing)
    except RoutingConfigInvalid as exc:
        problems.extend(config_problems(exc, "routing"))
    if problems or schema is None or config is None:
        raise InvalidInput("the project cannot be created as sent", extra=problems)
    now = utcnow()
    project = Project(
        id=new_id(),
        name=name.strip(),
        label_schema=schema.as_dict(),
        rubric_version=rubric_version.strip(),
        routing_version=1,
        created_at=now,
    )
    with db.session() as session:
        session.add(project)
        session.flush()
        session.add(
            RoutingConfigVersion(
                project_id=project.id,
                version=1,
                config=config.as_dict(),
                updated_by=actor.key_id,
                updated_at=now,
            )
        )
        audit.record(
            session,
            actor,
            "project.created",
            object_type="project",
            object_id=project.id,
            project_id=project.id,
            detail={"name": project.name, "routing_version": 1},
        )
    return project


def get_project(session: Session, actor: Principal | None, project_id: str) -> Project:
    """The project, or 404 for a missing one and for one the caller may not see."""
    if actor is not None:
        actor.require_project(project_id)
    project = session.get(Project, project_id)
    if project is None:
        raise NotFound(f"project {project_id!r} not found")
    return project


def lock_project(session: Session, project_id: str) -> Project | None:
    """The project, locked for the rest of the transaction: the jobs that decide for its items
    (scoring, consensus, re-routing, relabeling) run one at a time per project, so expert
    capacity is never overshot and no two runs decide for one item.

    FOR NO KEY UPDATE: serializes those runs all the same, without blocking the foreign-key
    checks (FOR KEY SHARE) of every label and assignment insert meanwhile.
    """
    stmt = select(Project).where(col(Project.id) == project_id).with_for_update(key_share=True)
    return session.execute(stmt).scalar_one_or_none()


def label_schema_of(project: Project) -> LabelSchema:
    return LabelSchema.parse(project.label_schema)


def routing_config(session: Session, project: Project) -> RoutingConfig:
    """The routing config in force for the project (its current version), parsed once."""
    cache_key = (project.id, project.routing_version)
    cached = _config_cache.get(cache_key)
    if cached is not None:
        return cached
    row = session.get(RoutingConfigVersion, (project.id, project.routing_version))
    if row is None:
        msg = f"project {project.id} has no routing config version {project.routing_version}"
        raise NotFound(msg)
    config = parse_config(row.config)
    with _config_lock:
        _config_cache[cache_key] = config
    return config


def routing_config_of(db: Database, project: Project) -> RoutingConfig:
    """`routing_config` outside a transaction: from the cache, else read in one."""
    cached = _config_cache.get((project.id, project.routing_version))
    if cached is not None:
        return cached
    with db.read() as session:
        return routing_config(session, project)


def create_key(
    db: Database, actor: Principal, project_id: str, *, role: str, name: str
) -> tuple[ApiKey, str]:
    """A new key for the project; the raw key is returned once and never stored."""
    actor.require_project(project_id)  # another project's: 404, as everywhere, before the role
    actor.require_admin()
    allowed = [r.value for r in _KEY_ROLES]
    problems = []
    if role not in allowed:
        problems.append({"field": "role", "message": f"must be one of {', '.join(allowed)}"})
    if not name.strip():
        problems.append({"field": "name", "message": "must not be empty"})
    if problems:
        raise InvalidInput("the key cannot be created as sent", extra=problems)
    raw = generate_key()
    with db.session() as session:
        get_project(session, actor, project_id)
        key = ApiKey(
            id=new_id(),
            key_hash=hash_key(raw),
            role=role,
            project_id=project_id,
            name=name.strip(),
            created_at=utcnow(),
        )
        session.add(key)
        audit.record(
            session,
            actor,
            "key.created",
            object_type="api_key",
            object_id=key.id,
            project_id=project_id,
            detail={"role": role, "name": key.name},
        )
    return key, raw


def ensure_admin_key(db: Database, raw_key: str | None) -> bool:
    """On first start, make `raw_key` the admin key if none exists. True if it was created."""
    with db.session() as session:
        exists = session.exec(
            select(ApiKey.id).where(ApiKey.role == Role.ADMIN.value).limit(1)
        ).first()
        if exists is not None or raw_key is None:
            return False
        key = ApiKey(
            id=new_id(),
            key_hash=hash_key(raw_key),
            role=Role.ADMIN.value,
            name="bootstrap admin (ROUTER_ADMIN_KEY)",
            created_at=utcnow(),
        )
        session.add(key)
        audit.record(
            session,
            None,
            "key.created",
            object_type="api_key",
            object_id=key.id,
            project_id=None,
            detail={"role": "admin", "name": key.name},
        )
    return True


def list_projects(db: Database, actor: Principal) -> list[Project]:
    """Every project for an admin key, the key's own project for any other, by name."""
    with db.read() as session:
        query = select(Project).order_by(Project.name, Project.id)
        if actor.role is not Role.ADMIN:
            query = query.where(Project.id == actor.project_id)
        return list(session.exec(query).all())
