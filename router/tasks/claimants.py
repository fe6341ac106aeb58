"""Who claims: the project and annotator rows `tasks/next` reads, cached for a second.

Every `tasks/next` needs the project (its routing version, label schema, rubric version) and
the annotator (status, tier, gold counts, onboarding). They change rarely, and reading them
was one of the claim's two PostgreSQL statements. A process keeps what it read for `ttl_s`
(one second, as the API key cache, :class:`router.auth.principal.KeyResolver`), so:

- a change committed by this process (ops suspending an annotator, a new routing config, a
  gold job onboarding or suspending someone in the embedded worker thread) empties the cache
  at commit: its next claim reads the rows again;
- a change committed by another process (the RQ worker's gold job, another API worker)
  reaches this one's claims within `ttl_s`.

What a second's delay can do: a suspended annotator may claim for up to a second more (the
claim is refused once the rows are read again; labels already leased stay leased anyway, as
on suspension everywhere), and a claim may record the routing version it was read with a
second after a newer one was committed. Onboarding, gold warm-up and the gold-exhausted flag
only choose how much gold to serve.

Changes are noticed on ORM flushes of a Project or Annotator (the sessions' ``after_flush``)
and wherever a Core statement writes those rows (:func:`note_change`); both take effect at
the session's commit, so a claim cannot cache the rows as they were just before it.
"""

from __future__ import annotations

import threading
import time
import weakref
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session as OrmSession

from router.db.models import Annotator, Project

__all__ = ["ClaimantCache", "claimants", "note_change"]

_FLAG = "claimants_changed"
CacheKey = tuple[str, str, str | None]
"""(project id, how the annotator is named: "id", "external_id" or "none", that name)."""


class ClaimantCache:
    """Project and annotator rows per database, each kept `ttl_s`, all dropped on a change.

    Entries are plain holders of the rows' values (never attached to a session); callers
    must not change them.
    """

    __slots__ = ("__weakref__", "_by_db", "_generation", "_lock", "max_entries", "ttl_s")

    def __init__(self, ttl_s: float = 1.0, max_entries: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._by_db: weakref.WeakKeyDictionary[
            Any, dict[CacheKey, tuple[float, int, Project, Annotator | None]]
        ] = weakref.WeakKeyDictionary()
        self._generation = 0
        self._lock = threading.Lock()

    def get(self, db: object, key: CacheKey) -> tuple[Project, Annotator | None] | None:
        """The rows read for ``key`` in the last `ttl_s` and since the last change, else None."""
        entries = self._by_db.get(db)
        hit = entries.get(key) if entries is not None else None
        if hit is None:
            return None
        stamp, generation, project, annotator = hit
        if generation != self._generation or time.monotonic() - stamp >= self.ttl_s:
            return None
        return project, annotator

    def generation(self) -> int:
        """Read before reading the rows, passed to :meth:`put`: a change in between wins."""
        return self._generation

    def put(
        self,
        db: object,
        key: CacheKey,
        generation: int,
        project: Project,
        annotator: Annotator | None,
    ) -> None:
        with self._lock:
            entries = self._by_db.setdefault(db, {})
            if len(entries) >= self.max_entries:
                entries.clear()
            entries[key] = (time.monotonic(), generation, project, annotator)

    def changed(self) -> None:
        """A project or annotator row changed: every entry is stale."""
        with self._lock:
            self._generation += 1


claimants = ClaimantCache()
"""The process's cache (API processes, and the embedded service's worker thread)."""


def note_change(session: OrmSession) -> None:
    """A Core statement of ``session`` wrote project or annotator rows: drop the cache at
    its commit (ORM changes to those rows are noticed without this)."""
    session.info[_FLAG] = True


@event.listens_for(OrmSession, "after_flush")
def _after_flush(session: OrmSession, _context: Any) -> None:
    if any(
        isinstance(obj, Project | Annotator)
        for obj in (*session.new, *session.dirty, *session.deleted)
    ):
        session.info[_FLAG] = True


@event.listens_for(OrmSession, "after_commit")
def _after_commit(session: OrmSession) -> None:
    if session.info.pop(_FLAG, False):
        claimants.changed()


@event.listens_for(OrmSession, "after_rollback")
def _after_rollback(session: OrmSession) -> None:
    session.info.pop(_FLAG, None)
