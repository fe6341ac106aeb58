"""HTTP: GET /metrics, Prometheus text (no key: scrapers do not authenticate)."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.datastructures import State

from router.deps import RuntimeDep
from router.observability.metrics import render

__all__ = ["prometheus_metrics"]


@get(
    "/metrics",
    tags=["health"],
    sync_to_thread=True,
    summary="Prometheus metrics (text exposition format; no key)",
    description=(
        "Request latency per route template and status class; labels, leases, gold, jobs and "
        "webhook counters; queue depth per project and tier, items per project, status and "
        "tier, and RQ job registries, read at scrape time. Prometheus text 0.0.4 unless the "
        "Accept header asks for OpenMetrics. No identifiers other than project ids. With "
        "several processes set PROMETHEUS_MULTIPROC_DIR (see router/observability/metrics.py)."
    ),
    media_type="text/plain",
)
def prometheus_metrics(request: Request[Any, Any, State], runtime: RuntimeDep) -> Response[bytes]:
    body, content_type = render(runtime, request.headers.get("accept"))
    # An explicit header: Litestar would append a second charset to a text/* media type.
    return Response(body, headers={"Content-Type": content_type})
