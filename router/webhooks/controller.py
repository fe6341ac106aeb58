"""HTTP: /v1/projects/{pid}/webhooks (ops of the project, admin)."""

from __future__ import annotations

import msgspec
from litestar import Controller, delete, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody, Parameter

from router.deps import PrincipalDep, RuntimeDep
from router.webhooks import service
from router.webhooks.schemas import (
    DeliveryOut,
    DeliveryPageOut,
    WebhookCreate,
    WebhookCreated,
    WebhookOut,
    WebhookPatch,
    WebhookSecretOut,
)

__all__ = ["WebhookController"]

_CREATE = (
    "Events: `item.settled`, `item.relabeled`, `item.escalated`, `annotator.suspended`, "
    "`annotator.flagged`. "
    "Each event is POSTed as JSON `{id, type, created_at, project_id, data}` with the headers "
    "`X-Labelrouter-Event`, `X-Labelrouter-Event-Id`, `X-Labelrouter-Delivery`, "
    "`X-Labelrouter-Timestamp` and `X-Labelrouter-Signature: t=<unix seconds>,v1=<hex>`, where "
    "`v1` is HMAC-SHA256 keyed with the hook's `secret` over `<t>.<raw body>`. Any 2xx answer "
    "within the timeout (5 s by default) is a delivery; anything else is retried with "
    "exponential back-off and jitter until the attempts run out (then `failed`). Delivery is "
    "at least once: drop repeats by event id. The `secret` is in this response only."
)


class WebhookController(Controller):
    path = "/v1/projects/{pid:str}/webhooks"
    tags = ("webhooks",)

    @post(
        "/",
        status_code=201,
        sync_to_thread=True,
        summary="Register a webhook (ops)",
        description=_CREATE,
    )
    def create(
        self,
        pid: FromPath[str],
        data: JSONBody[WebhookCreate],
        runtime: RuntimeDep,
        principal: PrincipalDep,
    ) -> WebhookCreated:
        view = service.create_webhook(
            runtime.db,
            principal,
            pid,
            url=data.url,
            events=data.events,
            description=data.description,
        )
        return msgspec.convert(view, WebhookCreated)

    @get("/", sync_to_thread=True, summary="The project's webhooks, without secrets (ops)")
    def list(
        self, pid: FromPath[str], runtime: RuntimeDep, principal: PrincipalDep
    ) -> list[WebhookOut]:
        return [
            msgspec.convert(v, WebhookOut)
            for v in service.list_webhooks(runtime.db, principal, pid)
        ]

    @get("/{hid:str}", sync_to_thread=True, summary="One webhook, without its secret (ops)")
    def read(
        self, pid: FromPath[str], hid: FromPath[str], runtime: RuntimeDep, principal: PrincipalDep
    ) -> WebhookOut:
        return msgspec.convert(service.get_webhook(runtime.db, principal, pid, hid), WebhookOut)

    @patch(
        "/{hid:str}",
        sync_to_thread=True,
        summary="Change a webhook's URL, events, description or active flag (ops)",
    )
    def update(
        self,
        pid: FromPath[str],
        hid: FromPath[str],
        data: JSONBody[WebhookPatch],
        runtime: RuntimeDep,
        principal: PrincipalDep,
    ) -> WebhookOut:
        view = service.update_webhook(
            runtime.db,
            principal,
            pid,
            hid,
            url=data.url,
            events=data.events,
            description=data.description,
            active=data.active,
        )
        return msgspec.convert(view, WebhookOut)

    @delete(
        "/{hid:str}",
        sync_to_thread=True,
        summary="Remove a webhook (ops)",
        description="It gets no more events; its pending deliveries are marked failed. Its "
        "delivery log stays readable.",
    )
    def remove(
        self, pid: FromPath[str], hid: FromPath[str], runtime: RuntimeDep, principal: PrincipalDep
    ) -> None:
        service.delete_webhook(runtime.db, principal, pid, hid)

    @post(
        "/{hid:str}/rotate-secret",
        status_code=200,
        sync_to_thread=True,
        summary="Replace a webhook's signing secret (ops)",
        description="The new secret is in this response only and signs every attempt from "
        "now on, retries of earlier events included.",
    )
    def rotate(
        self, pid: FromPath[str], hid: FromPath[str], runtime: RuntimeDep, principal: PrincipalDep
    ) -> WebhookSecretOut:
        return msgspec.convert(
            service.rotate_secret(runtime.db, principal, pid, hid), WebhookSecretOut
        )

    @get(
        "/{hid:str}/deliveries",
        sync_to_thread=True,
        summary="A webhook's delivery log (ops)",
        description="Newest first, `limit` a page (1 to 1000, default 100); pass `next_cursor` "
        "back as `cursor` for older ones; `status` keeps pending, delivered or failed only.",
    )
    def deliveries(
        self,
        pid: FromPath[str],
        hid: FromPath[str],
        runtime: RuntimeDep,
        principal: PrincipalDep,
        status: FromQuery[str | None] = None,
        cursor: FromQuery[str | None] = None,
        limit: int = Parameter(default=100, ge=1, le=service.MAX_LIMIT),
    ) -> DeliveryPageOut:
        rows, next_cursor = service.list_deliveries(
            runtime.db, principal, pid, hid, status=status, cursor=cursor, limit=limit
        )
        return DeliveryPageOut(
            deliveries=[msgspec.convert(r, DeliveryOut) for r in rows], next_cursor=next_cursor
        )
