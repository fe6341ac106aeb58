"""The engine and transaction scopes, for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlmodel import Session

from router.errors import ServiceUnavailable

__all__ = ["Database", "as_utc"]


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _sqlite_engine(url: str, *, echo: bool, immediate: bool) -> Engine:
    parsed = make_url(url)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        echo=echo,
        connect_args={"check_same_thread": False, "timeout": 30},
        pool_size=8,
        max_overflow=16,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Autocommit at the driver level so that we emit BEGIN ourselves below.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Writers take the write lock up front: a deferred transaction that reads and then
        # writes can deadlock with another one and fail at once instead of waiting.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class Database:
    """Transaction scopes over one database. Thread-safe; one per process."""

    __slots__ = ("__weakref__", "_autocommit_engine", "_read_engine", "engine", "is_sqlite", "url")

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            self.engine = _sqlite_engine(url, echo=echo, immediate=True)
            self._read_engine = _sqlite_engine(url, echo=echo, immediate=False)
        else:
            # No pool_pre_ping: it costs a round trip on every checkout (two per tasks/next).
            # A connection the server dropped fails its first statement, is invalidated, and
            # the request gets 503 "retry shortly" (`_unavailable_on_outage`); connections are
            # recycled before PostgreSQL's or a proxy's idle timeouts would drop them.
            self.engine = create_engine(
                url,
                echo=echo,
                pool_pre_ping=False,
                pool_recycle=1800,
                pool_size=10,
                max_overflow=20,
            )
            self._read_engine = self.engine
        # Shares the engine's pool; its connections run each statement in its own transaction.
        self._autocommit_engine = (
            self.engine
            if self.is_sqlite
            else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        # A forked child must not use the parent's pooled connections (they belong to the
        # parent's sessions); it opens its own.
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _forget_pool(ref()))

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A write transaction: committed when the block ends, rolled back on any error."""
        with _unavailable_on_outage(), Session(self.engine, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction on a Core connection: `session()` without the ORM.

        Committed when the block ends, rolled back on any error, as `session()`; no identity
        map, unit of work or session events (the claimant cache's flush hook among them: a
        block that writes project or annotator rows must tell it). For the hot paths whose
        statements are all Core.
        """
        with _unavailable_on_outage(), _transaction(self.engine) as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only transaction (no write lock on SQLite).

        Closing the session (not rolling it back) ends the transaction while leaving loaded
        objects usable after the block.
        """
        with _unavailable_on_outage(), Session(self._read_engine, expire_on_commit=False) as s:
            yield s

    @contextmanager
    def statements(self, *, write: bool) -> Iterator[Connection]:
        """A Core connection for a few statements that need no transaction around them.

        On PostgreSQL each statement commits on its own (autocommit: no BEGIN and COMMIT round
        trips; the hot paths of the work loop use this where one statement is the unit of
        change). On SQLite it is one transaction (a write transaction when `write`), committed
        when the block ends and rolled back on any error.
        """
        if self.is_sqlite:
            engine = self.engine if write else self._read_engine
            with _unavailable_on_outage(), _transaction(engine) as conn:
                yield conn
            return
        with _unavailable_on_outage(), self._autocommit_engine.connect() as conn:
            yield conn

    def ping(self) -> None:
        with self.read() as s:
            s.connection().exec_driver_sql("SELECT 1")

    def dispose(self) -> None:
        self.engine.dispose()
        if self._read_engine is not self.engine:
            self._read_engine.dispose()


def _forget_pool(db: Database | None) -> None:
    if db is not None:
        db.engine.dispose(close=False)
        if db._read_engine is not db.engine:
            db._read_engine.dispose(close=False)


@contextmanager
def _transaction(engine: Engine) -> Iterator[Connection]:
    """One transaction of a connection (begun by its first statement): committed when the
    block ends, rolled back on any error."""
    with engine.connect() as conn:
        try:
            yield conn
            conn.commit()
        except BaseException:
            conn.rollback()
            raise


@contextmanager
def _unavailable_on_outage() -> Iterator[None]:
    try:
        yield
    except OperationalError as exc:
        if _is_outage(exc):
            msg = "the database is unreachable; nothing was changed, retry shortly"
            raise ServiceUnavailable(msg) from exc
        raise
    except DBAPIError as exc:
        if exc.connection_invalidated:
            msg = "the database connection was lost; nothing was changed, retry shortly"
            raise ServiceUnavailable(msg) from exc
        raise


def _is_outage(exc: OperationalError) -> bool:
    text = str(exc.orig).lower()
    if "database is locked" in text:
        return True
    return exc.connection_invalidated or any(
        s in text for s in ("connection", "could not connect", "server closed", "terminating")
    )
