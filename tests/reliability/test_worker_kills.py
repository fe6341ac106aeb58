"""Workers killed with SIGKILL, again and again, while 10,000 items are ingested and labeled.

Real `labelrouter worker` processes (and a `labelrouter scheduler`) run on the test's
PostgreSQL database and Redis db; the API is served by uvicorn on loopback; producer and
annotators are threads speaking HTTP. A killer thread SIGKILLs a worker every one to two and a
half seconds, preferring one that is running a job, and starts a replacement. At the end:
every accepted item is routed or settled, every acknowledged label is stored, none is doubled
or counted twice, and Redis agrees with the database. Recovery times are measured, not
asserted (the machine is shared and noisy), and printed.
"""

from __future__ import annotations

import os
import random
import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry
from rq.serializers import JSONSerializer
from sqlalchemy import func, select
from sqlmodel import col

from router.db.models import Item
from router.runtime import Runtime
from tests.conftest import auth
from tests.reliability.conftest import ApiServer, Processes, kill_group, service_env, wait_for
from tests.reliability.helpers import (
    CLASSES,
    check_labels,
    committee,
    make_annotator,
    make_project,
    rq_idle,
    slot_mismatches,
)

N_ITEMS = int(os.environ.get("ROUTER_FAULT_ITEMS", "10000"))
BATCH = 250
N_WORKERS = 3
CROWD, EXPERTS = 6, 2
LABEL_SECONDS_AFTER_INGEST = 15.0
LABELS_WANTED = 800
"""Labeling goes on after the ingest until this many labels are in, or for the time above."""
ROUTING: dict[str, Any] = {
    "spot_check_fraction": 0.0,
    "gold": {"rate": {"crowd": 0.0, "expert": 0.0}, "new_annotator_rate": 0.0},
    "labels": {"crowd_target": 2},
    "experts": {"capacity": 2000},
}


@dataclass
class Run:
    accepted: dict[str, str] = field(default_factory=dict)
    """item id -> external id, from every 202."""
    truth: dict[str, int] = field(default_factory=dict)
    acknowledged: list[tuple[str, str, str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    kills: list[tuple[float, str | None]] = field(default_factory=list)
    """(monotonic time, job id the victim was running or None)."""
    rescued: list[float] = field(default_factory=list)
    """Seconds from each mid-job kill until its job was requeued."""
    ingest_done: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _kind(i: int) -> str:
    r = i % 100
    return "confident" if r < 85 else "ordinary" if r < 98 else "hard"


def _ingest(url: str, project: dict[str, Any], run: Run) -> None:
    with httpx.Client(base_url=url, timeout=120) as http:
        for start in range(0, N_ITEMS, BATCH):
            items = [
                {
                    "external_id": f"x{i}",
                    "payload": {"n": i},
                    "predictions": committee(_kind(i), i % 3),
                }
                for i in range(start, min(N_ITEMS, start + BATCH))
            ]
            resp = http.post(
                f"/v1/projects/{project['id']}/items",
                json={"items": items},
                headers=auth(project["producer_key"]),
            )
            if resp.status_code != 202:
                run.errors.append(f"ingest {resp.status_code}: {resp.text[:200]}")
                continue
            with run.lock:
                for it in resp.json()["items"]:
                    run.accepted[it["id"]] = it["external_id"]
                    run.truth[it["id"]] = int(it["external_id"][1:]) % 3
    run.ingest_done.set()


def _annotate(url: str, project: dict[str, Any], key: str, seed: int, run: Run) -> None:
    rng = random.Random(seed)
    headers = auth(key)
    with httpx.Client(base_url=url, timeout=120) as http:
        while not run.stop.is_set():
            resp = http.post(f"/v1/projects/{project['id']}/tasks/next", headers=headers)
            if resp.status_code == 204:
                time.sleep(0.05)
                continue
            if resp.status_code != 200:
                run.errors.append(f"claim {resp.status_code}: {resp.text[:200]}")
                time.sleep(0.1)
                continue
            task = resp.json()
            with run.lock:
                true = run.truth.get(task["item_id"], 0)
            value = CLASSES[true] if rng.random() < 0.85 else rng.choice(CLASSES)
            lab = http.post(
                f"/v1/assignments/{task['assignment_id']}/label",
                json={"label": value},
                headers=headers,
            )
            if lab.status_code != 201:
                run.errors.append(f"label {lab.status_code}: {lab.text[:200]}")
                continue
            body = lab.json()
            with run.lock:
                run.acknowledged.append((body["id"], task["assignment_id"], task["item_id"], value))


def _busy_victim(runtime: Runtime, pids: set[int]) -> tuple[int, str] | None:
    """A worker process of ours that is running a job now, and the job's id."""
    r = runtime.redis
    for entry in r.zrange(StartedJobRegistry(queue=runtime.jobs.queue).key, 0, -1):
        composite = entry.decode()
        worker = r.hget(f"rq:execution:{composite}", "worker_name")
        pid = r.hget(f"rq:worker:{worker.decode()}", "pid") if worker else None
        if pid is not None and int(pid) in pids:
            return int(pid), composite.split(":", 1)[0]
    return None


def _registered(runtime: Runtime, pids: set[int]) -> set[int]:
    """Our worker processes that are up: registered with RQ (start-up takes seconds)."""
    r = runtime.redis
    up = set()
    for key in r.smembers("rq:workers"):
        pid = r.hget(key.decode(), "pid")
        if pid is not None and int(pid) in pids:
            up.add(int(pid))
    return up


def _kill_workers(
    runtime: Runtime, processes: Processes, env: dict[str, str], workers: list[Any], run: Run
) -> None:
    """Kill a worker (one mid-job when possible) while another is up, and replace it."""
    rng = random.Random(7)
    while not run.stop.wait(rng.uniform(0.3, 1.0)):
        pids = {p.pid for p in workers if p.poll() is None}
        up = _registered(runtime, pids)
        if len(up) < 2:  # one other worker up to take over
            continue
        victim = None
        deadline = time.monotonic() + 3.0
        while victim is None and time.monotonic() < deadline and not run.stop.is_set():
            victim = _busy_victim(runtime, up)
            if victim is None:
                time.sleep(0.01)
        pid, job_id = victim if victim else (rng.choice(sorted(up)), None)
        kill_group(pid)
        run.kills.append((time.monotonic(), job_id))
        if job_id:
            threading.Thread(
                target=_time_rescue, args=(runtime, job_id, time.monotonic(), run), daemon=True
            ).start()
        for i, p in enumerate(workers):
            if p.pid == pid:
                p.wait(10)
                workers[i] = processes.start(env, "worker")


def _time_rescue(runtime: Runtime, job_id: str, t_kill: float, run: Run) -> None:
    """Seconds from the kill until the rescue pass took the job back (it left STARTED)."""
    while time.monotonic() - t_kill < 120:
        try:
            job = Job.fetch(job_id, connection=runtime.redis, serializer=JSONSerializer)
            if job.get_status() != JobStatus.STARTED:
                break
        except NoSuchJobError:
            break
        time.sleep(0.1)
    with run.lock:
        run.rescued.append(time.monotonic() - t_kill)


def _recovery_times(runtime: Runtime, run: Run, timeout: float) -> list[float]:
    """Seconds from each mid-job kill until the job it interrupted had finished."""
    pending = {job_id: t for t, job_id in run.kills if job_id}
    done: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for job_id, t in list(pending.items()):
            try:
                job = Job.fetch(job_id, connection=runtime.redis, serializer=JSONSerializer)
                finished = job.get_status() == JobStatus.FINISHED
            except NoSuchJobError:
                finished = True  # finished and its result expired
            if finished:
                done[job_id] = time.monotonic() - t
                del pending[job_id]
        time.sleep(0.1)
    assert not pending, f"interrupted jobs that never finished: {sorted(pending)[:5]}"
    return sorted(done.values())


def test_no_item_or_label_is_lost_when_workers_are_killed(runtime, app, processes, capsys):
    env = service_env(runtime)
    run = Run()
    with ApiServer(app) as api, httpx.Client(base_url=api.url, timeout=60) as http:
        project = make_project(http, ROUTING)
        keys = [make_annotator(http, project, f"c{i}", "crowd") for i in range(CROWD)]
        keys += [make_annotator(http, project, f"e{i}", "expert") for i in range(EXPERTS)]
        processes.start(env, "scheduler", "--interval", "5")
        workers = [processes.start(env, "worker") for _ in range(N_WORKERS)]
        wait_for(
            "the workers to start",
            lambda: len(_registered(runtime, {p.pid for p in workers})) == N_WORKERS,
            180,
            0.2,
        )
        t0 = time.monotonic()
        threads = [threading.Thread(target=_ingest, args=(api.url, project, run))]
        threads += [
            threading.Thread(target=_annotate, args=(api.url, project, key, n, run))
            for n, key in enumerate(keys)
        ]
        killer = threading.Thread(
            target=_kill_workers, args=(runtime, processes, env, workers, run)
        )
        for t in [*threads, killer]:
            t.start()
        run.ingest_done.wait(300)
        ingest_s = time.monotonic() - t0
        deadline = time.monotonic() + LABEL_SECONDS_AFTER_INGEST
        while time.monotonic() < deadline and len(run.acknowledged) < LABELS_WANTED:
            time.sleep(0.2)
        run.stop.set()
        for t in [*threads, killer]:
            t.join(120)
        last_kill = run.kills[-1][0] if run.kills else time.monotonic()

        state: list[str] = []

        def settled() -> bool:
            with runtime.db.read() as session:
                queued = session.execute(
                    select(func.count()).where(
                        col(Item.project_id) == project["id"], col(Item.status) == "queued"
                    )
                ).scalar_one()
            mismatches = slot_mismatches(runtime, project["id"], leases_expected=False)
            idle = rq_idle(runtime)
            state[:] = [f"queued items {queued}, jobs idle {idle}", *mismatches[:5]]
            return queued == 0 and idle and not mismatches

        try:
            wait_for("every item routed, Redis agreeing with the database", settled, 240, 0.25)
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {state}") from None
        recovered_s = time.monotonic() - last_kill
        per_kill = _recovery_times(runtime, run, 120)

    assert not run.errors, run.errors[:10]
    assert len(run.accepted) == N_ITEMS
    with runtime.db.read() as session:
        statuses = dict(
            session.execute(
                select(col(Item.id), col(Item.status)).where(col(Item.project_id) == project["id"])
            ).all()
        )
    assert set(statuses) == set(run.accepted)
    assert set(statuses.values()) <= {"routed", "done"}
    report = check_labels(runtime, project["id"], run.acknowledged)
    mid_job = sum(1 for _, job in run.kills if job)
    with capsys.disabled():
        print(
            f"\n[worker kills] {N_ITEMS} items ingested in {ingest_s:.1f}s; "
            f"{len(run.kills)} SIGKILLs ({mid_job} mid-job); {report['acknowledged']} labels "
            f"acknowledged, all stored; {report['settled_by_labels']} items settled by labels "
            f"({report['labels_after_settling']} got a label after settling); "
            f"statuses {sorted(set(statuses.values()))}.\n"
            f"[worker kills] recovery: last kill -> everything routed, queues idle, Redis = "
            f"database: {recovered_s:.1f}s; mid-job kill -> interrupted job requeued: "
            + (
                f"median {statistics.median(run.rescued):.1f}s, max {max(run.rescued):.1f}s; "
                f"-> finished: median {statistics.median(per_kill):.1f}s, max {max(per_kill):.1f}s"
                if per_kill and run.rescued
                else "no mid-job kill"
            )
        )
    assert mid_job >= 1, "the killer should have caught a worker mid-job"
