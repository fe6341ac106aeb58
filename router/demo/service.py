"""The demo's service: `labelrouter serve` on the embedded default, as a child process.

The demo then talks to it only over HTTP, like any tool. The child gets a var directory of its
own (emptied first, so every demo starts from nothing) and a fresh admin key; its output goes
to `server.log` there.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from router.client import LabelRouter, LabelRouterError

__all__ = ["DemoService", "free_port"]

_EMBEDDED_ENV = ("ROUTER_DATABASE_URL", "ROUTER_REDIS_URL", "PROMETHEUS_MULTIPROC_DIR")
_MARKER = ".labelrouter-demo"
"""Marks a directory the demo made, so that it only ever empties its own."""


def free_port(host: str, wanted: int) -> int:
    """`wanted` if it is free on `host` (0: any), else a free port the system picks."""
    for port in (wanted, 0):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise OSError(f"no free port on {host}")


class DemoService:
    """Start with `start()`, stop with `stop()` (also as a context manager)."""

    def __init__(self, var_dir: Path, host: str = "127.0.0.1", port: int = 8000) -> None:
        self.var_dir = var_dir
        self.host = host
        self.port = free_port(host, port)
        self.admin_key = "lr_admin_" + secrets.token_urlsafe(24)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 60.0) -> None:
        if self.var_dir.exists() and any(self.var_dir.iterdir()):
            if not (self.var_dir / _MARKER).exists():
                msg = (
                    f"{self.var_dir} is not empty and was not made by the demo; "
                    "pass another --var-dir (the demo empties its own at every start)"
                )
                raise RuntimeError(msg)
            shutil.rmtree(self.var_dir)
        self.var_dir.mkdir(parents=True, exist_ok=True)
        (self.var_dir / _MARKER).touch()
        env = {k: v for k, v in os.environ.items() if k not in _EMBEDDED_ENV}
        env.update(ROUTER_VAR_DIR=str(self.var_dir), ROUTER_ADMIN_KEY=self.admin_key)
        # A one-minute campaign wants the reconciler's repairs (a lease that raced its
        # annotator's suspension, say) within seconds, not the production 30 s.
        env.setdefault("ROUTER_RECONCILE_INTERVAL", "5")
        (self.var_dir / "admin-key").write_text(self.admin_key + "\n")
        log = (self.var_dir / "server.log").open("wb")
        cmd = [sys.executable, "-m", "router.cli", "--log-level", "warning", "serve"]
        cmd += ["--host", self.host, "--port", str(self.port)]
        self.process = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
        log.close()
        deadline = time.monotonic() + timeout_s
        with LabelRouter(self.url, retries=0, timeout=2.0) as probe:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(self._died())
                with contextlib.suppress(LabelRouterError):
                    probe.ready()
                    return
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"the service did not get ready in {timeout_s:.0f}s")
                time.sleep(0.1)

    def _died(self) -> str:
        tail = (self.var_dir / "server.log").read_text(errors="replace")[-2000:]
        return f"the service exited at start-up; its log ({self.var_dir}/server.log):\n{tail}"

    def wait(self) -> None:
        """Until the service ends (Ctrl-C ends it, with the demo)."""
        if self.process is not None:
            self.process.wait()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> DemoService:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
