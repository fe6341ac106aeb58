"""What a process does before serving: schema, admin key, Redis checks, background threads."""

from __future__ import annotations

import logging

from router.db.migrate import is_up_to_date, upgrade
from router.projects.service import ensure_admin_key
from router.queueing.connection import check_eviction_policy
from router.runtime import Runtime

__all__ = ["SchemaOutdated", "prepare"]

log = logging.getLogger(__name__)


class SchemaOutdated(RuntimeError):
    """The database schema is behind the code; `labelrouter migrate` brings it up to date."""


def prepare(rt: Runtime) -> None:
    """Make the process safe to serve, or refuse with a message saying how to fix it."""
    if rt.db.is_sqlite:
        upgrade(rt.db)  # the embedded default migrates itself
    elif not is_up_to_date(rt.db):
        msg = "the database schema is not up to date: run `labelrouter migrate` first"
        raise SchemaOutdated(msg)
    if not rt.settings.redis.embedded:
        check_eviction_policy(rt.redis)
    if ensure_admin_key(rt.db, rt.settings.admin_key):
        log.info("created the admin key from ROUTER_ADMIN_KEY")
