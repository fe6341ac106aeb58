"""HTTP: the audit log, read-only (GET only: the log cannot be edited through the API)."""

from __future__ import annotations

import msgspec
from litestar import Controller, get
from litestar.params import FromPath, FromQuery, Parameter

from router.auditlog import service
from router.auditlog.schemas import AuditEventOut, AuditPageOut
from router.deps import PrincipalDep, RuntimeDep

__all__ = ["AuditController"]

_DESCRIPTION = (
    "Who did what, when, to which object: newest first, `limit` events a page (1 to 1000, "
    "default 100); pass `next_cursor` back as `cursor` for older ones. `action` keeps only "
    "events of that action (exact match, e.g. `export.started`). The log is append-only: it "
    "has no route that changes it."
)


def _out(page: service.AuditPage) -> AuditPageOut:
    return AuditPageOut(
        events=[msgspec.convert(e, AuditEventOut) for e in page.events],
        next_cursor=page.next_cursor,
    )


class AuditController(Controller):
    path = "/v1"
    tags = ("audit",)

    @get(
        "/projects/{pid:str}/audit",
        sync_to_thread=True,
        summary="The project's audit log (ops, admin)",
        description=_DESCRIPTION,
    )
    def project_audit(
        self,
        pid: FromPath[str],
        runtime: RuntimeDep,
        principal: PrincipalDep,
        action: FromQuery[str | None] = None,
        cursor: FromQuery[str | None] = None,
        limit: int = Parameter(default=100, ge=1, le=service.MAX_LIMIT),
    ) -> AuditPageOut:
        page = service.list_project_events(
            runtime.db, principal, pid, action=action, cursor=cursor, limit=limit
        )
        return _out(page)

    @get(
        "/audit",
        sync_to_thread=True,
        summary="The whole audit log, every project and none (admin)",
        description=_DESCRIPTION
        + " Includes events of no project (`project_id` null), such as admin key creation.",
    )
    def all_audit(
        self,
        runtime: RuntimeDep,
        principal: PrincipalDep,
        action: FromQuery[str | None] = None,
        cursor: FromQuery[str | None] = None,
        limit: int = Parameter(default=100, ge=1, le=service.MAX_LIMIT),
    ) -> AuditPageOut:
        page = service.list_all_events(
            runtime.db, principal, action=action, cursor=cursor, limit=limit
        )
        return _out(page)
