"""`LabelRouter`: a typed, synchronous client of the v1 HTTP API, for tools and scripts.

One instance holds one key (`with_key` makes another sharing the same connection pool, e.g. one
per annotator); it is safe to use from several threads. Errors come back as the exceptions of
`router.client.errors`. A call is retried (with backoff) when the request never reached the
service, and, for calls that are safe to repeat (reads, idempotent ingest, gold, label, release,
config), also on a dropped connection, 503 and 429; `tasks/next` and creations never are, since
a repeat could claim or create twice.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from itertools import islice
from typing import Any, TypeVar

import httpx
import msgspec

from router.client.errors import ApiError, RateLimited, TransportError, Unavailable, error_for
from router.client.types import (
    Annotator,
    AnnotatorQuality,
    AuditPage,
    GoldResult,
    IngestedItem,
    IngestResult,
    Item,
    ItemPage,
    LabelReceipt,
    NewAnnotator,
    Project,
    ProjectKey,
    ProjectMetrics,
    Release,
    RoutingConfig,
    RoutingConfigUpdate,
    Task,
)

__all__ = ["LabelRouter"]

T = TypeVar("T")

_NDJSON = "application/x-ndjson"
_encoder = msgspec.json.Encoder()


def _batches(items: Iterable[Mapping[str, Any]], size: int) -> Iterator[list[Mapping[str, Any]]]:
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch


def _error(resp: httpx.Response) -> ApiError:
    detail, extra = resp.reason_phrase or "error", None
    try:
        body = msgspec.json.decode(resp.content)
    except msgspec.DecodeError:
        body = None
    if isinstance(body, dict):
        detail = str(body.get("detail") or detail)
        extra = body.get("extra")
    elif resp.content:
        detail = resp.text[:500]
    retry_after: float | None = None
    if "retry-after" in resp.headers:
        try:
            retry_after = float(resp.headers["retry-after"])
        except ValueError:
            retry_after = None
    return error_for(resp.status_code, detail, extra, retry_after)


class LabelRouter:
    """The v1 API as methods.

    Args:
        base_url: e.g. `http://127.0.0.1:8000` (ignored when `http` is given: its own is used).
        key: The bearer key (admin, ops, producer, tool or annotator).
        annotator: With a tool key, the annotator's external_id sent as `X-Annotator` on the
            task endpoints (each call may name another).
        http: An httpx.Client to send through (tests pass the app's test client); the client
            builds, and closes, its own otherwise.
        timeout: Seconds per request.
        retries: Extra attempts for a retryable failure (see the module docstring).
        backoff: Seconds before the first retry, doubled after each.
    """

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        key: str | None = None,
        *,
        annotator: str | None = None,
        http: httpx.Client | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.2,
    ) -> None:
        self.key = key
        self.annotator = annotator
        self.retries = retries
        self.backoff = backoff
        self._owns_http = http is None
        self.http = http or httpx.Client(base_url=base_url, timeout=timeout)

    def with_key(self, key: str, *, annotator: str | None = None) -> LabelRouter:
        """A client acting with another key, over the same connections."""
        other = LabelRouter(key=key, annotator=annotator, http=self.http, retries=self.retries)
        other.backoff = self.backoff
        return other

    def close(self) -> None:
        if self._owns_http:
            self.http.close()

    def __enter__(self) -> LabelRouter:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ---------------------------------------------------------------------------------------
    # Transport

    def _headers(self, annotator: str | None = None, **extra: str) -> dict[str, str]:
        headers = dict(extra)
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        who = annotator or self.annotator
        if who:
            headers["X-Annotator"] = who
        return headers

    def _send(
        self,
        method: str,
        path: str,
        *,
        safe: bool,
        annotator: str | None = None,
        json: Any = None,
        content: bytes | None = None,
        content_type: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> httpx.Response:
        headers = self._headers(annotator)
        if json is not None:
            content, content_type = _encoder.encode(json), "application/json"
        if content_type:
            headers["Content-Type"] = content_type
        query = {k: v for k, v in (params or {}).items() if v is not None}
        delay = self.backoff
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                resp = self.http.request(
                    method, path, content=content, params=query, headers=headers
                )
            except httpx.ConnectError as exc:  # never reached the service: always safe
                if last:
                    raise TransportError(f"{method} {path}: {exc}") from exc
            except httpx.TransportError as exc:
                if last or not safe:
                    raise TransportError(f"{method} {path}: {exc}") from exc
            else:
                if resp.status_code < 400:
                    return resp
                error = _error(resp)
                if last or not safe or not isinstance(error, Unavailable | RateLimited):
                    raise error
                if isinstance(error, RateLimited) and error.retry_after is not None:
                    delay = max(delay, error.retry_after)
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _call(self, cls: type[T], method: str, path: str, *, safe: bool, **kw: Any) -> T:
        resp = self._send(method, path, safe=safe, **kw)
        return msgspec.json.decode(resp.content, type=cls)

    # ---------------------------------------------------------------------------------------
    # Projects and keys

    def create_project(
        self,
        name: str,
        label_schema: Mapping[str, Any],
        rubric_version: str = "v1",
        routing: Mapping[str, Any] | None = None,
    ) -> Project:
        """POST /v1/projects (admin)."""
        body: dict[str, Any] = {
            "name": name,
            "label_schema": dict(label_schema),
            "rubric_version": rubric_version,
        }
        if routing is not None:
            body["routing"] = dict(routing)
        return self._call(Project, "POST", "/v1/projects", safe=False, json=body)

    def project(self, pid: str) -> Project:
        return self._call(Project, "GET", f"/v1/projects/{pid}", safe=True)

    def create_key(self, pid: str, role: str, name: str) -> ProjectKey:
        """POST /v1/projects/{pid}/keys (admin): an ops, producer or tool key, shown once."""
        body = {"role": role, "name": name}
        return self._call(ProjectKey, "POST", f"/v1/projects/{pid}/keys", safe=False, json=body)

    # ---------------------------------------------------------------------------------------
    # Annotators

    def create_annotator(self, pid: str, external_id: str, tier: str = "crowd") -> NewAnnotator:
        body = {"external_id": external_id, "tier": tier}
        path = f"/v1/projects/{pid}/annotators"
        return self._call(NewAnnotator, "POST", path, safe=False, json=body)

    def annotators(self, pid: str) -> list[Annotator]:
        return self._call(list[Annotator], "GET", f"/v1/projects/{pid}/annotators", safe=True)

    def update_annotator(
        self,
        pid: str,
        aid: str,
        *,
        tier: str | None = None,
        status: str | None = None,
        reason: str | None = None,
    ) -> Annotator:
        body = {k: v for k, v in {"tier": tier, "status": status, "reason": reason}.items() if v}
        path = f"/v1/projects/{pid}/annotators/{aid}"
        return self._call(Annotator, "PATCH", path, safe=True, json=body)

    def quality(self, pid: str, aid: str) -> AnnotatorQuality:
        path = f"/v1/projects/{pid}/annotators/{aid}/quality"
        return self._call(AnnotatorQuality, "GET", path, safe=True)

    # ---------------------------------------------------------------------------------------
    # Items and gold

    def ingest(
        self,
        pid: str,
        items: Iterable[Mapping[str, Any]],
        *,
        batch_size: int = 1000,
        ndjson: bool = False,
    ) -> IngestResult:
        """Ingest items in requests of `batch_size`, as JSON or NDJSON; one result for all.

        `items` may be any iterable (a generator reading a file): one batch is held at a time.
        Each request is all-or-nothing and idempotent on external_id, so a retried or repeated
        batch is counted in `duplicates`, never stored twice; a 422 names the indices of its
        own batch.
        """
        path = f"/v1/projects/{pid}/items"
        accepted = duplicates = 0
        stored: list[IngestedItem] = []
        batch_id: str | None = None
        for batch in _batches(items, batch_size):
            if ndjson:
                body = b"".join(_encoder.encode(item) + b"\n" for item in batch)
                out = self._call(
                    IngestResult, "POST", path, safe=True, content=body, content_type=_NDJSON
                )
            else:
                out = self._call(IngestResult, "POST", path, safe=True, json={"items": batch})
            accepted += out.accepted
            duplicates += out.duplicates
            stored.extend(out.items)
            batch_id = out.batch_id
        return IngestResult(accepted, duplicates, stored, batch_id)

    def item(self, pid: str, iid: str) -> Item:
        return self._call(Item, "GET", f"/v1/projects/{pid}/items/{iid}", safe=True)

    def items(
        self,
        pid: str,
        *,
        status: str | None = None,
        tier: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> ItemPage:
        """One page of the item listing; `iter_items` follows the cursor for you."""
        params = {"status": status, "tier": tier, "cursor": cursor, "limit": limit}
        return self._call(ItemPage, "GET", f"/v1/projects/{pid}/items", safe=True, params=params)

    def iter_items(
        self, pid: str, *, status: str | None = None, tier: str | None = None, page: int = 500
    ) -> Iterator[Item]:
        cursor: str | None = None
        while True:
            out = self.items(pid, status=status, tier=tier, cursor=cursor, limit=page)
            yield from out.items
            if out.next_cursor is None:
                return
            cursor = out.next_cursor

    def add_gold(self, pid: str, items: Iterable[Mapping[str, Any]]) -> GoldResult:
        """POST gold items `{external_id, payload, answer, revision?}` (ops)."""
        body = {"items": [dict(i) for i in items]}
        return self._call(GoldResult, "POST", f"/v1/projects/{pid}/gold", safe=True, json=body)

    # ---------------------------------------------------------------------------------------
    # The annotator work loop

    def next_task(self, pid: str, *, annotator: str | None = None) -> Task | None:
        """Claim the next task under a lease; None when there is nothing to do now."""
        path = f"/v1/projects/{pid}/tasks/next"
        resp = self._send("POST", path, safe=False, annotator=annotator)
        if resp.status_code == 204:
            return None
        return msgspec.json.decode(resp.content, type=Task)

    def label(
        self,
        assignment_id: str,
        label: str,
        *,
        confidence: float | None = None,
        rationale: str | None = None,
        duration_ms: int | None = None,
        annotator: str | None = None,
    ) -> LabelReceipt:
        """Submit the label of an assignment; repeating the same submission is harmless."""
        body: dict[str, Any] = {"label": label}
        for name, value in (
            ("confidence", confidence),
            ("rationale", rationale),
            ("duration_ms", duration_ms),
        ):
            if value is not None:
                body[name] = value
        path = f"/v1/assignments/{assignment_id}/label"
        resp = self._send("POST", path, safe=True, annotator=annotator, json=body)
        receipt = msgspec.json.decode(resp.content, type=LabelReceipt)
        receipt.replayed = resp.status_code == 200
        return receipt

    def release(self, assignment_id: str, *, annotator: str | None = None) -> Release:
        """Give the item back to its queue."""
        path = f"/v1/assignments/{assignment_id}/release"
        return self._call(Release, "POST", path, safe=True, annotator=annotator)

    # ---------------------------------------------------------------------------------------
    # Routing config

    def routing_config(self, pid: str) -> RoutingConfig:
        return self._call(RoutingConfig, "GET", f"/v1/projects/{pid}/routing-config", safe=True)

    def put_routing_config(self, pid: str, config: Mapping[str, Any]) -> RoutingConfigUpdate:
        """A new config version (fields left out keep the version in force); 422 if invalid."""
        path = f"/v1/projects/{pid}/routing-config"
        body = {"config": dict(config)}
        return self._call(RoutingConfigUpdate, "PUT", path, safe=True, json=body)

    def preview_routing_config(self, pid: str, config: Mapping[str, Any]) -> dict[str, Any]:
        """What a candidate config would do to the open items; changes nothing."""
        path = f"/v1/projects/{pid}/routing-config/preview"
        body = {"config": dict(config)}
        return self._call(dict[str, Any], "POST", path, safe=True, json=body)

    # ---------------------------------------------------------------------------------------
    # Read-outs

    def metrics(self, pid: str) -> ProjectMetrics:
        return self._call(ProjectMetrics, "GET", f"/v1/projects/{pid}/metrics", safe=True)

    def export(
        self, pid: str, *, since: str | None = None, tier: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """The done items as they stream in, one dict per NDJSON line (constant memory)."""
        params = {"format": "jsonl", "since": since, "tier": tier}
        query = {k: v for k, v in params.items() if v is not None}
        path = f"/v1/projects/{pid}/export"
        try:
            with self.http.stream("GET", path, params=query, headers=self._headers()) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    raise _error(resp)
                for line in resp.iter_lines():
                    if line.strip():
                        yield msgspec.json.decode(line, type=dict[str, Any])
        except httpx.TransportError as exc:
            raise TransportError(f"GET {path}: {exc}") from exc

    def audit(
        self,
        pid: str | None = None,
        *,
        action: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> AuditPage:
        """One page of a project's audit log, or (admin, no pid) of the whole service."""
        path = f"/v1/projects/{pid}/audit" if pid else "/v1/audit"
        params = {"action": action, "cursor": cursor, "limit": limit}
        return self._call(AuditPage, "GET", path, safe=True, params=params)

    def ready(self) -> dict[str, Any]:
        """GET /ready: raises Unavailable while the database or Redis is unreachable."""
        return self._call(dict[str, Any], "GET", "/ready", safe=False)
