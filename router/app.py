"""The application factory: wiring of controllers, dependencies and the one error handler."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, MediaType, Request, Response
from litestar.di import Provide
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import OpenAPIConfig
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from router.annotators.controller import AnnotatorController
from router.auditlog.controller import AuditController
from router.auth.controller import KeyController
from router.deps import provide_principal, provide_runtime
from router.errors import RateLimited, RouterError
from router.export.controller import ExportController
from router.health import health, ready
from router.items.controller import ItemController
from router.observability.controller import prometheus_metrics
from router.observability.metrics import metrics_middleware
from router.openapi import document_errors
from router.projects.controller import ProjectController
from router.quality.controller import QualityController
from router.ratelimit.body_size import body_size_limit
from router.readouts.controller import ReadoutController
from router.routing.controller import RoutingConfigController
from router.runtime import Runtime, set_runtime
from router.settings import Settings, get_settings
from router.startup import prepare
from router.tasks.controller import AssignmentController, TaskController
from router.ui.controller import DashboardController
from router.ui.rendering import dashboard_static, dashboard_templates
from router.webhooks.controller import WebhookController

__all__ = ["create_app"]

log = logging.getLogger(__name__)


def _error(
    status: int, detail: str, extra: Any = None, headers: dict[str, str] | None = None
) -> Response[dict[str, Any]]:
    return Response(
        {"status_code": status, "detail": detail, "extra": extra},
        status_code=status,
        media_type=MediaType.JSON,
        headers=headers,
    )


def handle_error(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    """The one place where errors become HTTP responses."""
    # Dependencies are resolved in a task group, which wraps what they raise.
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        inner = exc.exceptions[0]
        if not isinstance(inner, Exception):
            break
        exc = inner
    if isinstance(exc, RateLimited):
        headers = {"Retry-After": str(exc.retry_after_s)}
        return _error(exc.status_code, exc.detail, exc.extra, headers)
    if isinstance(exc, RouterError):
        return _error(exc.status_code, exc.detail, exc.extra)
    if isinstance(exc, ValidationException):
        # Bodies that do not match a request schema (wrong types, unknown fields).
        return _error(422, f"invalid request: {exc.detail}", exc.extra)
    if isinstance(exc, HTTPException):
        if exc.status_code == 413:
            limit = request.app.state.runtime.settings.limits.max_body_bytes
            return _error(
                413,
                f"the request body is over the limit of {limit} bytes (ROUTER_MAX_BODY_BYTES); "
                "split it into smaller requests",
            )
        return _error(exc.status_code, exc.detail, exc.extra or None)
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        log.warning("Redis unreachable during %s %s: %s", request.method, request.url.path, exc)
        return _error(503, "the queue (Redis) is unreachable; nothing was changed, retry shortly")
    log.exception("unhandled error in %s %s", request.method, request.url.path)
    return _error(500, "internal error; it was logged on the server")


def create_app(
    settings: Settings | None = None,
    *,
    runtime: Runtime | None = None,
    background: Callable[[Runtime], Callable[[], None]] | None = None,
) -> Litestar:
    """Build the API.

    Args:
        settings: Defaults to the environment's.
        runtime: Resources to use (tests pass their own); built from settings when None.
        background: Starts in-process background work (the embedded worker thread and
            scheduler) and returns the function that stops it; the CLI passes it in, so that
            the API package never imports the workers package.
    """
    settings = settings or (runtime.settings if runtime else get_settings())

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        rt = runtime or Runtime.from_settings(settings)
        app.state.runtime = rt
        set_runtime(rt)
        prepare(rt)
        stop = background(rt) if background is not None else None
        try:
            yield
        finally:
            if stop is not None:
                stop()
            if runtime is None:
                rt.close()
                set_runtime(None)

    app = Litestar(
        route_handlers=[
            ProjectController,
            RoutingConfigController,
            AnnotatorController,
            ItemController,
            TaskController,
            AssignmentController,
            AuditController,
            ExportController,
            ReadoutController,
            QualityController,
            health,
            ready,
            prometheus_metrics,
            DashboardController,
            dashboard_static(),
            WebhookController,
            KeyController,
        ],
        middleware=[metrics_middleware, body_size_limit(settings.limits.max_body_bytes)],
        dependencies={
            "runtime": Provide(provide_runtime, sync_to_thread=False),
            "principal": Provide(provide_principal),
        },
        exception_handlers={Exception: handle_error},
        lifespan=[lifespan],
        openapi_config=OpenAPIConfig(
            title="labelrouter",
            version="1",
            description="Human-in-the-loop labeling router: the v1 HTTP contract.",
            path="/schema",
        ),
        request_max_body_size=settings.limits.max_body_bytes,
        template_config=dashboard_templates(),
        debug=False,
    )
    document_errors(app)
    return app
