"""The service under test, started as it runs for real: embedded default or production shape.

- embedded: `labelrouter serve` (SQLite + in-process Redis + the worker thread, one process).
- production: PostgreSQL and a real Redis (ROUTER_BENCH_DATABASE_URL, ROUTER_BENCH_REDIS_URL),
  `labelrouter migrate`, then `labelrouter serve --workers 2` (uvicorn, two API processes) and a
  separate `labelrouter worker`. The bench database and Redis db are wiped first: point these
  variables at a database and a Redis db number that hold nothing else.

Also CPU and RSS of a whole process tree from /proc, so that the server's share of the machine
can be compared with the load generator's.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx

SHAPES = ("production", "embedded")
DATABASE_ENV = "ROUTER_BENCH_DATABASE_URL"
REDIS_ENV = "ROUTER_BENCH_REDIS_URL"


def production_urls() -> tuple[str, str] | None:
    """(database URL, Redis URL) of the production shape, None when not configured."""
    db, redis = os.environ.get(DATABASE_ENV), os.environ.get(REDIS_ENV)
    return (db, redis) if db and redis else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def labelrouter_command() -> list[str]:
    script = Path(sys.executable).with_name("labelrouter")
    return [str(script)] if script.exists() else [sys.executable, "-m", "router.cli"]


# --------------------------------------------------------------------------------------------
# /proc: CPU and memory of a process tree
# --------------------------------------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def tree(pids: list[int]) -> list[int]:
    """The processes and all their live descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry))
    out, todo = [], list(pids)
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of the tree, including children it has reaped (RQ's work horses)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in tree(pids):
        fields = _stat(pid)
        if fields is not None:
            total += sum(int(fields[i]) for i in (11, 12, 13, 14))
    return total / tick


SERVICE_PROGRAMS = {"database": "postgres", "redis": "redis-server"}
"""The production shape's services, by the program name their processes run under."""


def service_cpu_seconds() -> dict[str, float]:
    """User + system CPU so far of every local process of each of `SERVICE_PROGRAMS`, with
    the children they reaped (PostgreSQL's exited backends are counted in its postmaster);
    a service with no process visible here is left out.

    Read on this machine's /proc, so it covers the services only when they run here; they
    may serve other clients too (take differences over a window in which only the bench runs).
    """
    tick = os.sysconf("SC_CLK_TCK")
    wanted = {program: name for name, program in SERVICE_PROGRAMS.items()}
    totals: dict[str, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            comm = Path(f"/proc/{entry}/comm").read_text().strip()
        except OSError:
            continue
        name = wanted.get(comm)
        fields = _stat(int(entry)) if name else None
        if name and fields is not None:
            ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))
            totals[name] = totals.get(name, 0.0) + ticks / tick
    return totals


def rss_bytes(pids: list[int]) -> dict[int, int]:
    out = {}
    for pid in tree(pids):
        with suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    out[pid] = int(line.split()[1]) * 1024
    return out


def cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    words = [w.decode(errors="replace") for w in raw if w]
    return " ".join(Path(words[0]).name if i == 0 else w for i, w in enumerate(words))[:80]


# --------------------------------------------------------------------------------------------
# Starting and stopping
# --------------------------------------------------------------------------------------------


@dataclass
class Stack:
    shape: str
    base_url: str
    admin_key: str
    var_dir: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    database_url: str = ""
    redis_url: str | None = None
    startup_s: float = 0.0
    settle_s: float = 0.0
    """From ready until the whole server tree was idle (`_wait_settled`)."""

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs.values()]

    def cpu(self) -> float:
        return cpu_seconds(self.pids)

    def service_cpu(self) -> dict[str, float]:
        """`service_cpu_seconds` in the production shape; {} on the embedded default, whose
        database and Redis run inside the server (its `cpu`)."""
        return service_cpu_seconds() if self.shape == "production" else {}

    def log_tail(self, n: int = 40) -> str:
        out = []
        for name in self.procs:
            with suppress(OSError):
                lines = (self.var_dir / f"{name}.log").read_text(errors="replace").splitlines()
                out.append(f"--- {name}.log\n" + "\n".join(lines[-n:]))
        return "\n".join(out)


def reset_production(database_url: str, redis_url: str) -> None:
    """Empty the bench database (schema `public`) and the bench Redis db."""
    import sqlalchemy as sa
    from redis import Redis

    engine = sa.create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()
    client = Redis.from_url(redis_url)
    client.flushdb()
    client.close()


def _spawn(
    name: str, cmd: list[str], env: dict[str, str], var_dir: Path
) -> subprocess.Popen[bytes]:
    log = (var_dir / f"{name}.log").open("wb")
    try:
        return subprocess.Popen(
            cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    finally:
        log.close()


@contextmanager
def running_stack(
    shape: str,
    *,
    api_workers: int = 2,
    app: str | None = None,
    keep_var: bool = False,
    startup_timeout_s: float = 120.0,
) -> Iterator[Stack]:
    """Start the service in `shape`; everything started here is stopped on the way out.

    `app` replaces the labelrouter API by another uvicorn factory (`module:function`) served the
    same way (the ceiling: a bare endpoint on the same server setup); no worker is started then.
    """
    var_dir = Path(tempfile.mkdtemp(prefix=f"labelrouter-bench-{shape}-"))
    port = free_port()
    admin_key = "lr_bench_admin_" + secrets.token_urlsafe(16)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTER_")}
    env.update(ROUTER_VAR_DIR=str(var_dir), ROUTER_ADMIN_KEY=admin_key, PYTHONUNBUFFERED="1")
    stack = Stack(shape, f"http://127.0.0.1:{port}", admin_key, var_dir)
    host = ["--host", "127.0.0.1", "--port", str(port)]
    lr = [*labelrouter_command(), "--log-level", "warning"]
    t0 = time.perf_counter()
    try:
        if shape == "production":
            urls = production_urls()
            if urls is None:
                msg = f"the production shape needs {DATABASE_ENV} and {REDIS_ENV}"
                raise RuntimeError(msg)
            stack.database_url, stack.redis_url = urls
            reset_production(*urls)
            prom = var_dir / "prometheus"
            prom.mkdir()
            env.update(
                ROUTER_DATABASE_URL=urls[0],
                ROUTER_REDIS_URL=urls[1],
                PROMETHEUS_MULTIPROC_DIR=str(prom),
            )
            if app is None:
                subprocess.run(
                    [*lr, "migrate"], env=env, check=True, capture_output=True, timeout=120
                )
                stack.procs["worker"] = _spawn("worker", [*lr, "worker"], env, var_dir)
                serve = [*lr, "serve", *host, "--workers", str(api_workers)]
            else:
                serve = _uvicorn(app, host, api_workers)
        elif shape == "embedded":
            stack.database_url = f"sqlite:///{var_dir / 'labelrouter.db'}"
            serve = [*lr, "serve", *host] if app is None else _uvicorn(app, host, 1)
        else:
            raise ValueError(f"unknown shape {shape!r}; choose from {SHAPES}")
        stack.procs["api"] = _spawn("api", serve, env, var_dir)
        _wait_ready(stack, "/ready" if app is None else "/health", startup_timeout_s)
        stack.startup_s = time.perf_counter() - t0
        stack.settle_s = _wait_settled(stack, startup_timeout_s)
        yield stack
    finally:
        for proc in stack.procs.values():
            terminate(proc)
        if not keep_var:
            shutil.rmtree(var_dir, ignore_errors=True)


def _uvicorn(app: str, host: list[str], workers: int) -> list[str]:
    # The same server settings as `labelrouter serve` (router/cli.py).
    cmd = [sys.executable, "-m", "uvicorn", app, "--factory", *host, "--log-level", "warning"]
    cmd += ["--no-access-log"]
    return [*cmd, "--workers", str(workers)] if workers > 1 else cmd


SETTLED_CORES = 0.05
"""Below this CPU use (in cores, over `_SETTLE_WINDOW_S`) the server has finished starting."""
_SETTLE_WINDOW_S = 0.3


def _wait_settled(stack: Stack, timeout_s: float) -> float:
    """Seconds until the whole server tree is idle: the first process to answer `/ready`
    may serve while its siblings (the second API process, the worker) are still importing,
    and their start-up would be measured as the benchmark's load."""
    t0 = time.perf_counter()
    deadline = time.monotonic() + timeout_s
    before = stack.cpu()
    while time.monotonic() < deadline:
        time.sleep(_SETTLE_WINDOW_S)
        now = stack.cpu()
        if now - before < SETTLED_CORES * _SETTLE_WINDOW_S:
            break
        before = now
    return time.perf_counter() - t0


def _wait_ready(stack: Stack, path: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    with httpx.Client(base_url=stack.base_url, timeout=5.0) as client:
        while True:
            for name, proc in stack.procs.items():
                if proc.poll() is not None:
                    msg = f"{name} exited with {proc.returncode}:\n{stack.log_tail()}"
                    raise RuntimeError(msg)
            with suppress(httpx.TransportError):
                if client.get(path).status_code == 200:
                    return
            if time.monotonic() > deadline:
                msg = f"not ready after {timeout_s:.0f}s:\n{stack.log_tail()}"
                raise RuntimeError(msg)
            time.sleep(0.1)


def terminate(proc: subprocess.Popen[bytes]) -> None:
    """Stop a process, then anything left in its session (RQ forks; uvicorn's workers)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        deadline = time.monotonic() + 3.0
        try:
            os.killpg(proc.pid, sig)
            while time.monotonic() < deadline:
                os.killpg(proc.pid, 0)
                time.sleep(0.05)
        except ProcessLookupError:
            return
