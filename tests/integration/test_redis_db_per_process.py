"""Two test processes on one machine never share a Redis db (each flushes its own)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import redis_db

_ROOT = Path(__file__).resolve().parents[2]


def test_another_test_process_gets_another_redis_db() -> None:
    mine = redis_db()
    assert redis_db() == mine  # held for the life of the process
    probe = "from tests.conftest import redis_db; print(redis_db())"
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=_ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    theirs = int(out.stdout.strip().splitlines()[-1])
    assert theirs != mine
    assert theirs not in (0, 7)
