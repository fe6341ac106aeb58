"""The demo's campaign: every simulated annotator a thread, working over the real HTTP API.

Each thread loops tasks/next -> think -> label as its own annotator key, until the main thread
(which watches the project's metrics and draws the progress bar) says stop: every item settled,
the budget spent, or nothing moving any more. An annotator suspended by the router gets 403 on
their next claim and leaves.
"""

from __future__ import annotations

import contextlib
import random
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TextIO

from router.client import (
    Conflict,
    Forbidden,
    LabelRouter,
    LabelRouterError,
    NotFound,
)
from router.client.types import ProjectMetrics
from router.demo.crowd import Behaviour, answer
from router.demo.dataset import CLASSES, Dataset

__all__ = ["CampaignOutcome", "run_campaign"]

_POLL_S = 1.5
_GATE_RECHECK_S = 0.05
"""How often the main thread reads the project's metrics (not free: agreement is bootstrapped)."""
_IDLE_S = (0.1, 1.0)
"""An idle annotator's wait before asking again: doubling from the first to the second."""
_LOG_EVERY_S = 10.0
"""Without a terminal, a progress line this often instead of a redrawn bar."""


@dataclass
class CampaignOutcome:
    """What the run did, as the demo saw it (the router's own view comes from its API)."""

    seconds: float
    stopped_by: str
    """`settled`, `budget` or `stalled`."""
    labels: Counter[str] = field(default_factory=Counter)
    """Labels each annotator submitted (gold included)."""
    suspended_after: dict[str, int] = field(default_factory=dict)
    """Annotator -> labels they had submitted when the router refused them."""
    midpoint_s: float | None = None
    errors: list[str] = field(default_factory=list)


class _Shared:
    def __init__(self) -> None:
        self.stop = threading.Event()
        self.midpoint = threading.Event()
        self.lock = threading.Lock()
        self.outcome = CampaignOutcome(seconds=0.0, stopped_by="")
        # The budget gate. A label costs at most `max_price` (an expert's label; the demo
        # cannot tell an expert's crowd work from expert work, which the router prices apart),
        # so `cost_bound` bounds the router's cost from above. Once it reaches the budget, no
        # annotator claims a new task until the monitor has read the router's own cost: the
        # budget is then spent (stop), or the bound is reset to that cost (go on). So a run
        # ends at most one label per annotator past its budget, however fast the machine.
        self.labels_sent = 0
        self.cost_bound = 0.0
        self.max_price = 0.0
        self.budget: float | None = None
        self.gate = threading.Event()
        self.gate.set()
        self.check_now = threading.Event()

    def labeled(self, who: Behaviour) -> None:
        """Count a label the router stored."""
        with self.lock:
            self.outcome.labels[who.name] += 1
            self.labels_sent += 1
            self.cost_bound += self.max_price
            if self.budget is not None and self.cost_bound >= self.budget:
                self.gate.clear()
                self.check_now.set()


def _work(
    api: LabelRouter, pid: str, who: Behaviour, data: Dataset, seed: int, shared: _Shared
) -> None:
    rng = random.Random(f"{seed}:think:{who.name}")  # noqa: S311 (a simulation, not a secret)
    out = shared.outcome
    idle = _IDLE_S[0]
    while not shared.stop.is_set():
        shared.gate.wait()
        if shared.stop.is_set():
            return
        try:
            task = api.next_task(pid)
        except Forbidden:  # suspended by the router
            with shared.lock:
                out.suspended_after[who.name] = out.labels[who.name]
            return
        if task is None:
            shared.stop.wait(idle)
            idle = min(_IDLE_S[1], idle * 2)
            continue
        idle = _IDLE_S[0]
        ext = str(task.payload["external_id"])
        truth, kind = data.truth_of(ext)
        drifted = who.drifted_accuracy is not None and shared.midpoint.is_set()
        given, confidence = answer(who, truth, kind, ext, seed, drifted=drifted)
        think = rng.expovariate(1.0 / who.think_ms) / 1000.0
        if shared.stop.wait(think):
            with contextlib.suppress(LabelRouterError):  # else its lease lapses: no harm
                api.release(task.assignment_id)
            return
        try:
            api.label(
                task.assignment_id,
                CLASSES[given],
                confidence=confidence,
                duration_ms=int(think * 1000),
            )
        except (Conflict, NotFound):  # the lease lapsed and went to someone else
            continue
        except Forbidden:
            with shared.lock:
                out.suspended_after[who.name] = out.labels[who.name]
            return
        shared.labeled(who)


def _worker(
    api: LabelRouter, pid: str, who: Behaviour, data: Dataset, seed: int, shared: _Shared
) -> None:
    """One annotator's thread: an error ends the thread and is kept for the report."""
    try:
        _work(api, pid, who, data, seed, shared)
    except Exception as exc:  # shown in the report rather than lost in a thread
        with shared.lock:
            shared.outcome.errors.append(f"{who.name}: {exc}")


def _bar(m: ProjectMetrics, started: float, budget: float | None, width: int = 30) -> str:
    total = max(1, int(m.items["total"]))
    done = int(m.items["by_status"]["done"])
    filled = int(width * done / total)
    cost = float(m.labels["total_cost"])
    spent = f"cost {cost:,.0f}" + (f"/{budget:,.0f}" if budget else "")
    return (
        f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} settled  "
        f"labels {int(m.labels['total']):,}  {spent}  {time.monotonic() - started:5.1f}s "
    )


def run_campaign(
    admin: LabelRouter,
    pid: str,
    keys: dict[str, str],
    people: list[Behaviour],
    data: Dataset,
    seed: int,
    *,
    ops: LabelRouter,
    budget: float | None = None,
    stall_s: float = 20.0,
    progress: TextIO | None = sys.stderr,
) -> CampaignOutcome:
    """Run every annotator until the items settle, the budget is spent or nothing moves."""
    shared = _Shared()
    if budget is not None:
        m = ops.metrics(pid)
        shared.budget = budget
        shared.max_price = max(float(p) for p in m.labels["costs_per_label"].values())
        shared.cost_bound = float(m.labels["total_cost"])
    started = time.monotonic()
    threads = [
        threading.Thread(
            target=_worker,
            args=(admin.with_key(keys[p.name]), pid, p, data, seed, shared),
            name=f"demo-{p.name}",
            daemon=True,
        )
        for p in people
    ]
    for t in threads:
        t.start()
    last: tuple[int, int] | None = None
    last_change = last_line = started
    stopped_by = "stalled"
    tty = progress is not None and progress.isatty()
    while True:
        shared.check_now.clear()
        with shared.lock:
            sent_before = shared.labels_sent
        m = ops.metrics(pid)
        if progress is not None and (tty or time.monotonic() - last_line >= _LOG_EVERY_S):
            progress.write(
                "\r" + _bar(m, started, budget) if tty else _bar(m, started, budget) + "\n"
            )
            progress.flush()
            last_line = time.monotonic()
        done, total = int(m.items["by_status"]["done"]), int(m.items["total"])
        auto = int(m.items["by_tier"]["auto"])  # settled at once, by the models
        if (done - auto) * 2 >= total - auto and not shared.midpoint.is_set():
            shared.midpoint.set()
            shared.outcome.midpoint_s = time.monotonic() - started
        if done >= total:
            stopped_by = "settled"
            break
        if budget is not None:
            cost = float(m.labels["total_cost"])
            if cost >= budget:
                stopped_by = "budget"
                break
            if not shared.gate.is_set():
                with shared.lock:  # labels sent while the cost was read may be left out of it
                    shared.cost_bound = cost + shared.max_price * (shared.labels_sent - sent_before)
                    if shared.cost_bound < budget:
                        shared.gate.set()
                if not shared.gate.is_set():  # labels still landing: read again shortly
                    shared.check_now.wait(_GATE_RECHECK_S)
                    continue
        now = (done, int(m.labels["total"]))
        if now != last:
            last, last_change = now, time.monotonic()
        elif time.monotonic() - last_change > stall_s:
            break
        if all(not t.is_alive() for t in threads):
            break
        shared.check_now.wait(_POLL_S)
    shared.stop.set()
    shared.gate.set()  # let waiting annotators see the stop
    for t in threads:
        t.join(timeout=30)
    if progress is not None:
        progress.write(("\r" if tty else "") + _bar(ops.metrics(pid), started, budget) + "\n")
        progress.flush()
    out = shared.outcome
    out.seconds = time.monotonic() - started
    out.stopped_by = stopped_by
    return out
