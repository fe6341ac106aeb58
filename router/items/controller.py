"""HTTP: /v1/projects/{pid}/items."""

from __future__ import annotations

from typing import Any

import msgspec
from anyio.to_thread import run_sync
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery, Parameter

from router.auth.keys import Role
from router.auth.principal import Principal
from router.deps import PrincipalDep, RuntimeDep
from router.errors import UnsupportedMediaType
from router.idempotency.http import IdempotencyKeyHeader, replay_response
from router.idempotency.store import HEADER as IDEMPOTENCY_HEADER
from router.idempotency.store import IdempotentRequest, Recorder, StoredResponse, run_once
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
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[IngestOut]:
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
        idem = IdempotentRequest.from_header(
            principal,
            request.headers.get(IDEMPOTENCY_HEADER),
            runtime.settings.idempotency_ttl_s,
            "POST",
            request.url.path,
            "ndjson" if ndjson else "json",
            body,
        )
        stored, replayed = await run_sync(
            run_once,
            runtime.db,
            idem,
            lambda record: _ingest(runtime, principal, pid, body, ndjson, record),
        )
        return replay_response(stored, replayed)

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
    runtime: Runtime,
    principal: Principal,
    pid: str,
    body: bytes,
    ndjson: bool,
    record: Recorder | None,
) -> StoredResponse:
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
    result = service.ingest_items(
        runtime.db,
        runtime.jobs,
        principal,
        pid,
        items,
        before_commit=(lambda session, r: record(session, 202, _out(r))) if record else None,
    )
    return StoredResponse(202, _out(result))


def _out(result: service.IngestResult) -> dict[str, Any]:
    out = IngestOut(
        accepted=result.accepted,
        duplicates=result.duplicates,
        items=[IngestedItem(external_id=e, id=i) for e, i in result.ids],
        batch_id=result.batch_id,
    )
    body: dict[str, Any] = msgspec.to_builtins(out)
    return body
