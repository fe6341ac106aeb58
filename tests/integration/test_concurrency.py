"""Many annotators at once: claims, labels and releases from threads, straight on the services.

On the embedded backend this runs against SQLite and fakeredis; with ROUTER_TEST_DATABASE_URL
and ROUTER_TEST_REDIS_URL set it also runs against real PostgreSQL and Redis, where the
threads really do race (the Lua scripts are what keeps the counts right).
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlmodel import col

from router.db.models import Assignment, Item, Label
from router.errors import Conflict
from router.labels.service import LabelInput, submit_label
from router.tasks.service import next_task, release_task
from tests.integration.helpers import (
    annotator,
    by_external_id,
    claim,
    ingest,
    item,
    new_project,
    quiet,
)

N_CLAIMERS = 60
N_ITEMS = 25
LABELS_NEEDED = 3


@dataclass
class Outcome:
    claimed: list[tuple[str, str, str]] = field(default_factory=list)
    """(assignment_id, item_id, annotator_id) of every task handed out."""
    labeled: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _work(runtime, project_id, ann, barrier, outcome, seed):
    """Claim until nothing is left; label about half the tasks, release some, hold the rest."""
    rng = random.Random(seed)
    principal = runtime.keys.resolve(f"Bearer {ann['api_key']}")
    db, store = runtime.db, runtime.assignments
    barrier.wait()
    try:
        for _ in range(N_ITEMS + 1):
            task = next_task(db, store, principal, project_id, None)
            if task is None:
                return
            with outcome.lock:
                outcome.claimed.append((task.assignment_id, task.item_id, ann["id"]))
            draw = rng.random()
            if draw < 0.5:
                body = LabelInput(label=rng.choice(["cat", "dog"]), confidence=0.8)
                submit_label(db, store, runtime.jobs, principal, task.assignment_id, None, body)
                with outcome.lock:
                    outcome.labeled.append(task.assignment_id)
            elif draw < 0.7:
                release_task(db, store, principal, task.assignment_id, None)
                with outcome.lock:
                    outcome.released.append(task.assignment_id)
    except BaseException as exc:  # reported by the test, not lost in the thread
        with outcome.lock:
            outcome.errors.append(exc)


def test_simultaneous_claimers_never_overfill_an_item(client, admin, jobs, runtime):
    project = new_project(client, admin, routing=quiet(labels={"crowd_target": LABELS_NEEDED}))
    pid = project["id"]
    ids = by_external_id(ingest(client, project, [item(f"i{k}") for k in range(N_ITEMS)]))
    jobs()
    people = [annotator(client, project, f"w{k}") for k in range(N_CLAIMERS)]
    barrier = threading.Barrier(N_CLAIMERS)
    outcome = Outcome()
    with ThreadPoolExecutor(max_workers=N_CLAIMERS) as pool:
        for k, ann in enumerate(people):
            pool.submit(_work, runtime, pid, ann, barrier, outcome, k)
    assert not outcome.errors, outcome.errors[:3]

    # Every slot was handed out (a slot released after every other claimer had stopped may
    # stay free), and handed out again where released.
    slots = N_ITEMS * LABELS_NEEDED
    assert slots <= len(outcome.claimed) <= slots + len(outcome.released)
    pairs = Counter((item_id, ann) for _aid, item_id, ann in outcome.claimed)
    assert max(pairs.values()) == 1, "an annotator received an item twice"

    with runtime.db.read() as session:
        rows = list(
            session.execute(select(Assignment).where(col(Assignment.project_id) == pid)).scalars()
        )
        labels = dict(
            session.execute(
                select(col(Label.item_id), func.count())
                .where(col(Label.project_id) == pid)
                .group_by(col(Label.item_id))
            ).all()
        )
        n_labels = dict(
            session.execute(
                select(col(Item.id), col(Item.n_labels)).where(col(Item.project_id) == pid)
            ).all()
        )
    # No assignment lost or invented, each in the state its annotator left it in.
    assert {r.id for r in rows} == {aid for aid, _, _ in outcome.claimed}
    status = {r.id: r.status for r in rows}
    assert {a for a, s in status.items() if s == "labeled"} == set(outcome.labeled)
    assert {a for a, s in status.items() if s == "released"} == set(outcome.released)
    leased = Counter(r.item_id for r in rows if r.status == "leased")

    p = runtime.assignments.prefix(pid)
    free_total = 0
    for iid in ids.values():
        have = labels.get(iid, 0)
        assert n_labels[iid] == have
        assert have + leased[iid] <= LABELS_NEEDED, f"item {iid} overfilled"
        free_slots, live_leases = runtime.assignments.slots(pid, iid)
        free, live = free_slots or 0, live_leases or 0
        # Redis agrees with the database: every slot is labeled, held, or free to claim.
        assert live == leased[iid], f"live leases of {iid}: Redis {live}, database {leased[iid]}"
        assert have + live + free == LABELS_NEEDED, f"slots of {iid} lost or invented"
        in_queue = runtime.redis.zscore(p + "q:crowd", iid) is not None
        assert in_queue == (free > 0)
        free_total += free
    assert runtime.redis.zcard(p + "leases") == sum(leased.values())
    # Free slots are exactly those released too late for anyone who had not yet seen them.
    assert len(outcome.claimed) == slots + len(outcome.released) - free_total


def test_simultaneous_claims_of_the_last_slots(client, admin, jobs, runtime):
    """Many claimers, one item wanting three labels: exactly three leases."""
    project = new_project(client, admin, routing=quiet())
    pid = project["id"]
    [iid] = by_external_id(ingest(client, project, [item("only")])).values()
    jobs()
    people = [annotator(client, project, f"w{k}") for k in range(N_CLAIMERS)]
    principals = [runtime.keys.resolve(f"Bearer {a['api_key']}") for a in people]
    barrier = threading.Barrier(N_CLAIMERS)

    def one(principal):
        barrier.wait()
        return next_task(runtime.db, runtime.assignments, principal, pid, None)

    with ThreadPoolExecutor(max_workers=N_CLAIMERS) as pool:
        tasks = [t for t in pool.map(one, principals) if t is not None]
    assert len(tasks) == 3
    assert {t.item_id for t in tasks} == {iid}
    with runtime.db.read() as session:
        n = session.execute(select(func.count()).where(col(Assignment.item_id) == iid)).scalar_one()
    assert n == 3


def test_the_same_label_sent_many_times_at_once_is_stored_once(client, admin, jobs, runtime):
    """A tool retrying on timeouts: every response is the one label, or a conflict never."""
    project = new_project(client, admin, routing=quiet())
    ingest(client, project, [item("a")])
    jobs()
    ann = annotator(client, project, "w1")
    task = claim(client, project, ann)
    principal = runtime.keys.resolve(f"Bearer {ann['api_key']}")
    n = 12
    barrier = threading.Barrier(n)

    def send(_):
        barrier.wait()
        try:
            return submit_label(
                runtime.db,
                runtime.assignments,
                runtime.jobs,
                principal,
                task["assignment_id"],
                None,
                LabelInput(label="dog", confidence=0.5),
            )
        except Conflict as exc:
            return exc

    with ThreadPoolExecutor(max_workers=n) as pool:
        results = list(pool.map(send, range(n)))
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert sorted(created for _view, created in results) == [False] * (n - 1) + [True]
    assert len({view["id"] for view, _ in results}) == 1
    with runtime.db.read() as session:
        count = session.execute(
            select(func.count()).where(col(Label.assignment_id) == task["assignment_id"])
        ).scalar_one()
        row = session.get(Item, task["item_id"])
    assert count == 1
    assert row is not None
    assert row.n_labels == 1
    free, leased = runtime.assignments.slots(project["id"], task["item_id"])
    assert (free or 0, leased or 0) == (2, 0)
