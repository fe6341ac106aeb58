"""HTTP: /v1/projects/{pid}/items."""

from __future__ import annotations

from typing import Any

from anyio.to_thread import run_sync
from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery, Parameter

from router.auth.keys import Role
from router.auth.principal import Principal
from router.deps import PrincipalDep, RuntimeDep
from router.errors import UnsupportedMediaType
from router.items import service
from router.items.ingest import parse_items_body
from router.items.schemas import IngestedItem, IngestOut, ItemPageOut
from router.projects.service import get_project, label_schema_of
from router.runtime import Runtime

__all__ = ["ItemController"]

_NDJSON = ("application/x-ndjson", "application/ndjson", "application/jsonl")


class ItemController(Controller):
    path = "/v1/projects/{pid:str}/items"
    tags = ("items",)

    @post(
        "/",
        status_code=202,
        summary="Ingest items (producer, ops): JSON {items: [...]} or NDJSON",
        description=(
            'Body: `{"items": [ITEM, ...]}` as application/json, or one ITEM per line as '
            "application/x-ndjson. ITEM: `{external_id, payload, predictions?: [{model, "
            "model_version, probs}], provenance?}`. All-or-nothing: any invalid item gives 422 "
            "listing every problem and nothing is stored. Idempotent on external_id."
        ),
    )
    async def ingest(
        self,
        pid: FromPath[str],
        request: Request[Any, Any, State],
        runtime: RuntimeDep,
        principal: PrincipalDep,
    ) -> IngestOut:
        principal.authorize(pid, Role.PRODUCER, Role.OPS)
        content_type = request.headers.get("content-type", "application/json").split(";")[0]
        ndjson = content_type.strip().lower() in _NDJSON
        if not ndjson and content_type.strip().lower() not in ("application/json", ""):
            msg = (
                f"unsupported Content-Type {content_type!r}: send application/json or "
                "application/x-ndjson"
            )
            raise UnsupportedMediaType(msg)
        body = await request.body()
        result = await run_sync(_ingest, runtime, principal, pid, body, ndjson)
        return IngestOut(
            accepted=result.accepted,
            duplicates=result.duplicates,
            items=[IngestedItem(external_id=e, id=i) for e, i in result.ids],
            batch_id=result.batch_id,
        )

    @get("/{iid:str}", sync_to_thread=True, summary="Read an item (producer, ops)")
    def read(
        self, pid: FromPath[str], iid: FromPath[str], runtime: RuntimeDep, principal: PrincipalDep
    ) -> dict[str, Any]:
        return service.get_item(runtime.db, principal, pid, iid)

    @get("/", sync_to_thread=True, summary="List items by status and tier (producer, ops)")
    def list(
        self,
        pid: FromPath[str],
        runtime: RuntimeDep,
        principal: PrincipalDep,
        status: FromQuery[str | None] = None,
        tier: FromQuery[str | None] = None,
        cursor: FromQuery[str | None] = None,
        limit: int = Parameter(default=100, ge=1, le=1000),
    ) -> ItemPageOut:
        page = service.list_items(
            runtime.db, principal, pid, status=status, tier=tier, cursor=cursor, limit=limit
        )
        return ItemPageOut(items=page.items, next_cursor=page.next_cursor)


def _ingest(
    runtime: Runtime, principal: Principal, pid: FromPath[str], body: bytes, ndjson: bool
) -> service.IngestResult:
    with runtime.db.read() as session:
        schema = label_schema_of(get_project(session, principal, pid))
    limits = runtime.settings.limits
    items = parse_items_body(
        body,
        ndjson=ndjson,
        schema=schema,
        max_payload_bytes=limits.max_payload_bytes,
        max_items=limits.max_items_per_request,
    )
    return service.ingest_items(runtime.db, runtime.jobs, principal, pid, items)
