"""Dependencies every controller shares: the runtime and the authenticated caller."""

from __future__ import annotations

from typing import TypeAlias

from litestar import Request
from litestar.concurrency import sync_to_thread
from litestar.datastructures import State
from litestar.di import NamedDependency

from router.auth.principal import Principal
from router.runtime import Runtime

__all__ = [
    "RATE_COUNTED_BY_HANDLER",
    "PrincipalDep",
    "RuntimeDep",
    "provide_principal",
    "provide_runtime",
]

RuntimeDep: TypeAlias = NamedDependency[Runtime]
PrincipalDep: TypeAlias = NamedDependency[Principal]


def provide_runtime(state: State) -> Runtime:
    runtime: Runtime = state.runtime
    return runtime


RATE_COUNTED_BY_HANDLER = "rate_counted_by_handler"
"""Route `opt` flag: the handler counts the request against its key's rate limit itself, in
the Redis call its work makes anyway (`RateLimiter.counting`), instead of a call of its own."""


async def provide_principal(
    request: Request[object, object, State], runtime: RuntimeDep
) -> Principal:
    """The caller, counted against its key's rate limit (429 over it).

    Async, so that the work loop's requests resolve their key from the cache without a hop
    to a worker thread; a cache miss (a database read) and the limiter's own Redis call run
    in one.
    """
    # Taking `runtime` as a dependency puts the two in sequence: Litestar resolves the
    # dependencies of one level concurrently, in a task group (two tasks per request).
    authorization = request.headers.get("authorization")
    principal = runtime.keys.cached(authorization)
    counted_by_handler = request.route_handler.opt.get(RATE_COUNTED_BY_HANDLER, False)
    if principal is not None and counted_by_handler:
        return principal
    return await sync_to_thread(_resolve_and_count, runtime, authorization, counted_by_handler)


def _resolve_and_count(
    runtime: Runtime, authorization: str | None, counted_by_handler: bool
) -> Principal:
    principal = runtime.keys.resolve(authorization)
    if not counted_by_handler:
        runtime.limiter.check(principal)
    return principal
