"""HTTP: liveness and readiness."""

from __future__ import annotations

from typing import Any

from litestar import Response, get

from router.deps import RuntimeDep
from router.errors import ServiceUnavailable

__all__ = ["health", "ready"]


@get("/health", tags=["health"], summary="Liveness: the process answers")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@get(
    "/ready",
    tags=["health"],
    sync_to_thread=True,
    summary="Readiness: the database and Redis are reachable",
)
def ready(runtime: RuntimeDep) -> Response[dict[str, Any]]:
    checks: dict[str, str] = {}
    try:
        runtime.db.ping()
        checks["database"] = "ok"
    except ServiceUnavailable as exc:
        checks["database"] = exc.detail
    except Exception as exc:  # any failure means not ready; say which
        checks["database"] = f"unreachable: {type(exc).__name__}"
    try:
        runtime.redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"unreachable: {type(exc).__name__}: {exc}"
    ok = all(v == "ok" for v in checks.values())
    return Response(
        {"status": "ready" if ok else "not ready", "checks": checks}, status_code=200 if ok else 503
    )
