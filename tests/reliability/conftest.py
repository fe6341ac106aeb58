"""Fault tests against the real services: PostgreSQL and Redis (skipped without them).

They start what they kill themselves: `labelrouter worker` processes, a redis-server of their
own (own port, own --dir under tmp_path), a TCP proxy in front of PostgreSQL. The machine's
Redis is touched only through this test process's own db number.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from litestar import Litestar

from router.runtime import Runtime
from tests.conftest import _REDIS_URL, _redis_db_url

REPO = Path(__file__).resolve().parents[2]

if not (os.environ.get("ROUTER_TEST_DATABASE_URL") and _REDIS_URL):
    pytest.skip(
        "fault tests need ROUTER_TEST_DATABASE_URL and ROUTER_TEST_REDIS_URL (real PostgreSQL "
        "and Redis); .ci/run sets both",
        allow_module_level=True,
    )


@pytest.fixture(name="backend")
def fx_backend() -> str:
    """Only the real services: the faults under test are theirs."""
    return "real"


def wait_for(
    what: str, check: Callable[[], Any], timeout: float = 60.0, interval: float = 0.1
) -> Any:
    """Poll `check` until it returns something truthy; fail saying `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ApiServer:
    """The app served by uvicorn on a loopback port, in a thread of the test process."""

    def __init__(self, app: Litestar) -> None:
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def __enter__(self) -> ApiServer:
        self._thread.start()
        wait_for("the API server to start", lambda: self._server.started, timeout=30)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(15)
        self._sock.close()


def service_env(runtime: Runtime, **extra: str) -> dict[str, str]:
    """Environment for `labelrouter` processes on the test's database and Redis db."""
    assert runtime.settings.redis.url is not None
    env = dict(os.environ)
    env.update(
        ROUTER_DATABASE_URL=runtime.settings.database.url,
        ROUTER_REDIS_URL=_redis_db_url(runtime.settings.redis.url),
        ROUTER_RECONCILE_GRACE="2",
        PYTHONUNBUFFERED="1",
    )
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(extra)
    return env


class Processes:
    """`labelrouter` subcommands started by a test; every one is stopped at the end."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen[bytes]] = []
        self._n = 0
        self._closed = False

    def start(self, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
        if self._closed:  # a thread still running after the test must not leave a process
            raise RuntimeError("the test has ended: no more processes")
        self._n += 1
        log = open(self.log_dir / f"{args[0]}-{self._n}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "router.cli", "--log-level", "warning", *args],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: RQ forks a scheduler child
        )
        log.close()
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        self._closed = True
        for proc in self.procs:
            kill_group(proc.pid)
        for proc in self.procs:
            proc.wait(10)


def kill_group(pid: int) -> None:
    """SIGKILL a started process and whatever it forked (its process group)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


@pytest.fixture(name="processes")
def fx_processes(tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(tmp_path)
    yield procs
    procs.stop_all()


class RedisServer:
    """A redis-server of the test's own, on a free port with its data under `dir`."""

    def __init__(self, dir: Path, *, appendonly: bool) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed")
        self.binary = binary
        self.dir = dir
        self.port = free_port()
        self.appendonly = appendonly
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.dir),
                "--save", "",
                "--appendonly", "yes" if self.appendonly else "no",
                "--appendfsync", "everysec",
                "--maxmemory-policy", "noeviction",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for("redis-server to accept connections", self._answers, timeout=20)

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.kill()


class TcpProxy:
    """A TCP proxy to `target` that the test can cut (refuse and drop everything) and mend."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        self._thread = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._thread.start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Refuse new connections and reset the open ones: the database is 'down'."""
        assert self._listener is not None
        with contextlib.suppress(OSError):  # wakes the thread blocked in accept() (Linux)
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._listener = None
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def mend(self) -> None:
        self.start()

    def stop(self) -> None:
        if self._listener is not None:
            self.cut()
