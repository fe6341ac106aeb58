"""A started server or worker process settles its heap; a library user's process does not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from router.heap import YOUNG_THRESHOLD

_PROBE = """
import gc, json
before = {"frozen": gc.get_freeze_count(), "young": gc.get_threshold()[0]}
from router.app import create_app
create_app()
built = {"frozen": gc.get_freeze_count(), "young": gc.get_threshold()[0]}
from router.cli import production_app
production_app()
served = {"frozen": gc.get_freeze_count(), "young": gc.get_threshold()[0]}
print(json.dumps([before, built, served]))
"""


def test_the_server_factory_freezes_its_start_up_heap(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "ROUTER_VAR_DIR": str(tmp_path),
        "ROUTER_DATABASE_URL": f"sqlite:///{tmp_path / 'lr.db'}",
    }
    env.pop("ROUTER_REDIS_URL", None)
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    before, built, served = json.loads(out.stdout.strip().splitlines()[-1])
    # Building an app (as tests and library users do) leaves the collector alone.
    assert built == before
    assert before["frozen"] == 0
    # The process that will serve freezes what it built (the app: > 50,000 objects).
    assert served["frozen"] > 50_000
    assert served["young"] == YOUNG_THRESHOLD


def test_settle_heap_keeps_collecting_new_garbage() -> None:
    """Frozen objects are out of sight; cycles made afterwards are still collected."""
    probe = """
import gc, json, weakref
from router.heap import settle_heap
settle_heap()
class Node: pass
a, b = Node(), Node()
a.other, b.other = b, a
ref = weakref.ref(a)
del a, b
gc.collect()
print(json.dumps(ref() is None))
"""
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip()) is True
