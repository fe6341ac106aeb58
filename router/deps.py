"""Dependencies every controller shares: the runtime and the authenticated caller."""

from __future__ import annotations

from typing import TypeAlias

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency

from router.auth.principal import Principal
from router.runtime import Runtime

__all__ = ["PrincipalDep", "RuntimeDep", "provide_principal", "provide_runtime"]

RuntimeDep: TypeAlias = NamedDependency[Runtime]
PrincipalDep: TypeAlias = NamedDependency[Principal]


def provide_runtime(state: State) -> Runtime:
    runtime: Runtime = state.runtime
    return runtime


def provide_principal(request: Request[object, object, State], runtime: RuntimeDep) -> Principal:
    # Taking `runtime` as a dependency puts the two in sequence: Litestar resolves the
    # dependencies of one level concurrently, in a task group (two tasks per request).
    principal = runtime.keys.resolve(request.headers.get("authorization"))
    runtime.limiter.check(principal)
    return principal
