"""Prometheus metrics: what the service counts, what it reads at scrape time, and `/metrics`.

Counters and histograms are module-level objects of the default `prometheus_client` registry;
the modules that own an event call `.inc()` / `.observe()` on them. Gauges that describe
state (queue depths, items by status, the RQ job registries) are not kept in the process:
`StateCollector` reads them from Redis and the database at each scrape, so they are right
however many processes run.

Several processes (`labelrouter serve --workers N`, gunicorn/uvicorn workers): set
`PROMETHEUS_MULTIPROC_DIR` to an empty directory, the same one for every process of the
deployment (API processes, and workers and the scheduler where they run on the same host),
*before* the processes start (prometheus_client reads it at import), and empty it at each
deployment start. Each process then writes its samples to files there and any process's
`/metrics` reports the sums (prometheus_client multiprocess mode; process-level metrics such
as CPU and memory are not reported in that mode). Without the variable, the process's own
default registry is reported (the embedded default, one process: correct as is). Counters of
worker processes that do not share the directory (another host or container) are not seen by
the API's `/metrics`; scrape those processes separately, or read the job registries gauge
(`labelrouter_jobs`), which comes from Redis and is always complete.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, cast

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector
from rq.registry import (
    DeferredJobRegistry,
    FailedJobRegistry,
    ScheduledJobRegistry,
    StartedJobRegistry,
)
from sqlalchemy import func, select
from sqlmodel import col

from router.db.models import Item, Project
from router.webhooks.outbox import EVENT_TYPES

if TYPE_CHECKING:
    from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send

    from router.runtime import Runtime

__all__ = [
    "GOLD_SERVED",
    "JOBS_FAILED",
    "JOBS_PROCESSED",
    "LABELS_SUBMITTED",
    "LEASES_EXPIRED",
    "REQUEST_LATENCY",
    "WEBHOOK_DELIVERIES",
    "StateCollector",
    "metrics_middleware",
    "multiprocess_dir",
    "render",
    "scrape_registry",
]

log = logging.getLogger(__name__)

_PREFIX = "labelrouter"

# No `<counter>_created` series: they double the output and nothing here reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]

REQUEST_LATENCY = Histogram(
    f"{_PREFIX}_http_request_duration_seconds",
    "HTTP request latency until the last byte of the response, by route template "
    "(e.g. /v1/projects/{pid}/items/{iid}, never the raw path) and status class (2xx...)",
    ["method", "route", "status_class"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0),
)

LABELS_SUBMITTED = Counter(
    f"{_PREFIX}_labels_submitted",
    "Labels stored (counted submissions; idempotent repeats and 409s excluded), by the "
    "assignment's tier: crowd, expert or gold",
    ["tier"],
)
LEASES_EXPIRED = Counter(
    f"{_PREFIX}_leases_expired",
    "Leases that lapsed and whose slot went back to the queue (by a claim or the reaper)",
)
GOLD_SERVED = Counter(
    f"{_PREFIX}_gold_served",
    "Gold items served by tasks/next, by the annotator's tier",
    ["annotator_tier"],
)
JOBS_PROCESSED = Counter(
    f"{_PREFIX}_jobs_processed",
    "RQ jobs that finished successfully, by job function",
    ["job"],
)
JOBS_FAILED = Counter(
    f"{_PREFIX}_jobs_failed",
    "RQ job runs that raised (each attempt; retries are counted again), by job function",
    ["job"],
)
WEBHOOK_DELIVERIES = Counter(
    f"{_PREFIX}_webhook_deliveries",
    "Webhook delivery attempts, by event type and outcome: delivered, failed (will retry), "
    "abandoned (no attempt left)",
    ["event", "outcome"],
)

# Known label values start at zero, so that rate() and absent-series alerts work from the
# first scrape instead of from the first event.
for _tier in ("crowd", "expert", "gold"):
    LABELS_SUBMITTED.labels(tier=_tier)
for _tier in ("crowd", "expert"):
    GOLD_SERVED.labels(annotator_tier=_tier)
for _job in (
    "score_batch",
    "update_consensus",
    "reconcile",
    "reap_leases",
    "promote_retries",
    "deliver_webhooks",
):
    JOBS_PROCESSED.labels(job=_job)
    JOBS_FAILED.labels(job=_job)
for _event in EVENT_TYPES:
    for _outcome in ("delivered", "failed", "abandoned"):
        WEBHOOK_DELIVERIES.labels(event=_event, outcome=_outcome)

_UNMATCHED = "unmatched"


def metrics_middleware(app: ASGIApp) -> ASGIApp:
    """Times every HTTP request of a route (Litestar route middleware: register it in
    `Litestar(middleware=[...])`). The route label is the route's path template; requests
    that match no route (404 on an unknown path, 405) never reach route middleware and are
    not counted, which keeps scanners' random paths out of the label set."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # type: ignore[comparison-overlap]  # (lifespan, websocket)
            await app(scope, receive, send)
            return
        method = cast("HTTPScope", scope)["method"]
        status = 0

        async def send_and_watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        start = time.perf_counter()
        try:
            await app(scope, receive, send_and_watch)
        finally:
            # An exception that escaped every handler, before any response: Litestar's
            # outermost handler answers 500.
            status_class = f"{status // 100}xx" if status else "5xx"
            route = scope.get("path_template") or _UNMATCHED
            REQUEST_LATENCY.labels(method, route, status_class).observe(time.perf_counter() - start)

    return middleware


class StateCollector:
    """Gauges read at scrape time: queue depths from Redis, item counts from the database,
    RQ's job registries from Redis. A source that is down is reported as
    `labelrouter_scrape_source_up{source=...} 0` and its gauges are left out; the scrape
    itself never fails because of it."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily(
            f"{_PREFIX}_scrape_source_up",
            "1 if the source answered during this scrape, else 0 (its gauges are missing)",
            labels=["source"],
        )
        project_ids: list[str] = []
        try:
            items, project_ids = self._database()
        except Exception as exc:
            log.warning("metrics: the database did not answer: %s", exc)
            up.add_metric(["database"], 0)
        else:
            up.add_metric(["database"], 1)
            yield items
        try:
            families = list(self._redis(project_ids))
        except Exception as exc:
            log.warning("metrics: Redis did not answer: %s", exc)
            up.add_metric(["redis"], 0)
        else:
            up.add_metric(["redis"], 1)
            yield from families
        yield up

    def _database(self) -> tuple[GaugeMetricFamily, list[str]]:
        family = GaugeMetricFamily(
            f"{_PREFIX}_items",
            "Items by project, status (queued, routed, done) and tier (auto, crowd, expert; "
            "'none' while queued and for gold items, which are routed without a tier)",
            labels=["project", "status", "tier"],
        )
        with self._runtime.db.read() as session:
            # One GROUP BY; (project_id, status, tier) is exactly ix_item_project_status_tier.
            rows = session.execute(
                select(col(Item.project_id), col(Item.status), col(Item.tier), func.count())
                .group_by(col(Item.project_id), col(Item.status), col(Item.tier))
                .order_by(col(Item.project_id), col(Item.status), col(Item.tier))
            ).all()
            project_ids = list(
                session.execute(select(col(Project.id)).order_by(col(Project.id))).scalars()
            )
        for project_id, status, tier, n in rows:
            family.add_metric([project_id, status, tier or "none"], float(n))
        return family, project_ids

    def _redis(self, project_ids: list[str]) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily(
            f"{_PREFIX}_queue_depth",
            "Items waiting with free label slots, by project and tier queue",
            labels=["project", "tier"],
        )
        for project_id in project_ids:
            for tier, n in self._runtime.assignments.depths(project_id).items():
                depth.add_metric([project_id, tier], float(n))
        yield depth
        queue = self._runtime.jobs.queue
        jobs = GaugeMetricFamily(
            f"{_PREFIX}_jobs",
            "RQ jobs by state, from the job registries in Redis (every process's jobs): "
            "queued, started, scheduled (retry back-off), deferred, failed (kept 7 days)",
            labels=["state"],
        )
        redis = self._runtime.redis
        pipe = redis.pipeline(transaction=False)
        pipe.llen(queue.key)
        registries = {
            "started": StartedJobRegistry(queue=queue),
            "scheduled": ScheduledJobRegistry(queue=queue),  # type: ignore[no-untyped-call]
            "deferred": DeferredJobRegistry(queue=queue),
            "failed": FailedJobRegistry(queue=queue),
        }
        # ZCARD, not registry.count: counting a registry also cleans it up, and a scrape
        # must not change anything.
        for registry in registries.values():
            pipe.zcard(registry.key)
        counts = pipe.execute()
        for state, n in zip(("queued", *registries), counts, strict=True):
            jobs.add_metric([state], float(n))
        yield jobs


class _Forward:
    """The process's default registry, seen from a per-scrape registry."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def scrape_registry(runtime: Runtime | None) -> CollectorRegistry:
    """A registry for one scrape: this process's metrics (or, in multiprocess mode, every
    process's) and, with a runtime, the state gauges read from Redis and the database."""
    registry = CollectorRegistry()
    if multiprocess_dir():
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_Forward())
    if runtime is not None:
        registry.register(StateCollector(runtime))
    return registry


def render(runtime: Runtime | None, accept: str | None = None) -> tuple[bytes, str]:
    """(body, content type) of one scrape, in the format the scraper's Accept header asks
    for (Prometheus text 0.0.4 by default, OpenMetrics when asked)."""
    encode, content_type = choose_encoder(accept or "")
    return encode(scrape_registry(runtime)), content_type
