"""The ceiling: bare Litestar endpoints shaped like tasks/next and label, doing no work.

Served by uvicorn exactly as `labelrouter serve` serves the API, and driven by the same load
generator as the annotator loop, they show how many loops/s the HTTP stack alone allows on this
machine. `sync` handlers hop to a thread, as every labelrouter handler that touches the database
does; the `async` ones run on the event loop.
"""

from __future__ import annotations

import secrets
from typing import Any

from litestar import Litestar, Request, get, post

_TASK = {
    "assignment_id": "",
    "item_id": "Xw3o8kP2sQ1LmN0a",
    "payload": {
        "text": "card declined invoice refund charged twice login fails app crashes on start "
        "upgrade plan pricing quote enterprise seats export data",
        "lang": "en",
        "channel": "email",
        "customer_tier": 2,
    },
    "label_schema": {
        "kind": "categorical",
        "classes": ["billing", "technical", "account", "sales", "other"],
    },
    "rubric_version": "r1",
    "lease_expires_at": "2026-01-01T00:30:00.000000Z",
}


def _task() -> dict[str, Any]:
    return {**_TASK, "assignment_id": secrets.token_urlsafe(12)}


def _label(aid: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": secrets.token_urlsafe(12),
        "assignment_id": aid,
        "item_id": _TASK["item_id"],
        "label": data.get("label"),
        "confidence": data.get("confidence"),
        "rationale": None,
        "duration_ms": None,
        "rubric_version": "r1",
        "created_at": "2026-01-01T00:00:00.000000Z",
    }


@post("/async/v1/projects/{pid:str}/tasks/next", status_code=200)
async def next_async(pid: str, request: Request[Any, Any, Any]) -> dict[str, Any]:
    return _task()


@post("/async/v1/assignments/{aid:str}/label", status_code=201)
async def label_async(aid: str, data: dict[str, Any]) -> dict[str, Any]:
    return _label(aid, data)


@post("/sync/v1/projects/{pid:str}/tasks/next", status_code=200, sync_to_thread=True)
def next_sync(pid: str, request: Request[Any, Any, Any]) -> dict[str, Any]:
    return _task()


@post("/sync/v1/assignments/{aid:str}/label", status_code=201, sync_to_thread=True)
def label_sync(aid: str, data: dict[str, Any]) -> dict[str, Any]:
    return _label(aid, data)


@get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


def create() -> Litestar:
    return Litestar(
        route_handlers=[next_async, label_async, next_sync, label_sync, health], debug=False
    )
