"""Gold answers are counted in the annotator's record by a job, exactly once, in order.

The label request stores a gold label exactly like a routed one; the consensus job (or, when its
mark was lost, the reconciler) counts it: counters, verdicts, flags, audit, webhook events, and
the slots a suspension gives back.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading

from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import select
from sqlmodel import col

from router.db.models import Annotator, Label
from router.gold import record as gold_record
from router.gold.record import record_gold_labels
from router.queueing.jobs import JobQueue
from tests.integration.helpers import (
    add_gold,
    annotator,
    annotators_by_external_id,
    audit_events,
    by_external_id,
    claim,
    get_item,
    ingest,
    item,
    label,
    new_project,
    quiet,
    redis_slots,
)
from workers import jobs as job_functions

GOLD = {"g1": "cat", "g2": "dog", "g3": "bird"}
WRONG = {"cat": "dog", "dog": "bird", "bird": "cat"}
ALWAYS = {"rate": {"crowd": 1.0, "expert": 1.0}, "new_annotator_rate": 1.0}


def _project(client, admin, jobs, n_items=0, **routing):
    project = new_project(client, admin, routing=quiet(gold=ALWAYS, **routing))
    ids = {}
    if n_items:
        ids = by_external_id(ingest(client, project, [item(f"i{k}") for k in range(n_items)]))
        jobs()
    truth = {v: GOLD[k] for k, v in add_gold(client, project, GOLD)["ids"].items()}
    return project, ids, truth


def _answer_all_gold(client, project, ann, truth, right):
    for n in range(len(truth)):
        task = claim(client, project, ann)
        assert task["item_id"] in truth
        value = truth[task["item_id"]]
        label(client, task, ann, value if right(n) else WRONG[value])


def _record(runtime, annotator_id):
    with runtime.db.read() as session:
        row = session.get(Annotator, annotator_id)
        stamps = list(
            session.execute(
                select(col(Label.gold_recorded_at)).where(col(Label.annotator_id) == annotator_id)
            ).scalars()
        )
    assert row is not None
    return row.n_gold, row.n_gold_correct, row.status, stamps


def test_a_gold_label_is_counted_once_however_often_the_job_runs(client, admin, jobs, runtime):
    project, _ids, truth = _project(client, admin, jobs)
    ann = annotator(client, project, "w1")
    _answer_all_gold(client, project, ann, truth, right=lambda n: n != 1)
    assert _record(runtime, ann["id"])[:2] == (0, 0)  # the requests left the record alone
    jobs()
    n_gold, n_correct, _status, stamps = _record(runtime, ann["id"])
    assert (n_gold, n_correct) == (3, 2)
    assert all(s is not None for s in stamps)
    # The same marks again (a job run twice, a duplicate, a rescue): nothing counts twice.
    for gold_id in truth:
        runtime.jobs.enqueue_consensus(project["id"], gold_id)
    jobs()
    assert record_gold_labels(runtime.db, runtime.assignments, item_ids=list(truth)) == {
        "gold_recorded": 0,
        "suspended": 0,
    }
    assert record_gold_labels(runtime.db, runtime.assignments) == {
        "gold_recorded": 0,
        "suspended": 0,
    }
    assert _record(runtime, ann["id"])[:2] == (3, 2)


def test_concurrent_runs_count_each_gold_label_once(client, admin, jobs, runtime):
    project, _ids, truth = _project(client, admin, jobs)
    workers = [annotator(client, project, f"w{k}") for k in range(4)]
    for ann in workers:
        _answer_all_gold(client, project, ann, truth, right=lambda n: n == 0)
    results: list[dict[str, int]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def run() -> None:
        try:
            start.wait()
            results.append(record_gold_labels(runtime.db, runtime.assignments))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert sum(r["gold_recorded"] for r in results) == 3 * len(workers)
    for ann in workers:
        assert _record(runtime, ann["id"])[:2] == (3, 1)


def test_a_run_that_dies_midway_counts_nothing_and_the_next_counts_all(
    client, admin, jobs, runtime, monkeypatch
):
    project, _ids, truth = _project(
        client, admin, jobs, quality={"min_gold": 3, "suspend_below": 0.9}
    )
    ann = annotator(client, project, "w1")
    _answer_all_gold(client, project, ann, truth, right=lambda n: False)
    real_flags = gold_record.flags_raised_by_gold
    calls = []

    def dies_at_the_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("worker died")
        return real_flags(*args, **kwargs)

    monkeypatch.setattr(gold_record, "flags_raised_by_gold", dies_at_the_second)
    try:
        record_gold_labels(runtime.db, runtime.assignments)
    except RuntimeError:
        pass
    else:
        raise AssertionError("the run should have failed")
    n_gold, n_correct, status, stamps = _record(runtime, ann["id"])
    assert (n_gold, n_correct, status) == (0, 0, "active")
    assert stamps == [None] * 3
    monkeypatch.setattr(gold_record, "flags_raised_by_gold", real_flags)
    jobs()
    assert _record(runtime, ann["id"])[:3] == (3, 0, "suspended")
    assert len(audit_events(runtime, project["id"], "annotator.suspended")) == 1


_KILLED_RUN = """
import os, signal, sys
import fakeredis
from router.db.database import Database
from router.gold import record
from router.queueing.assignments import AssignmentStore

calls = []
real = record.flags_raised_by_gold

def killed_at_the_second(*args, **kwargs):
    calls.append(1)
    if len(calls) == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*args, **kwargs)

record.flags_raised_by_gold = killed_at_the_second
record.record_gold_labels(Database(sys.argv[1]), AssignmentStore(fakeredis.FakeRedis()))
"""


def test_a_run_killed_midway_counts_nothing_and_the_next_counts_all(client, admin, jobs, runtime):
    """SIGKILL inside the record's transaction: it rolls back, the rerun counts each once."""
    project, _ids, truth = _project(client, admin, jobs)
    ann = annotator(client, project, "w1")
    _answer_all_gold(client, project, ann, truth, right=lambda n: n != 2)
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_KILLED_RUN), runtime.settings.database.url],
        env={**os.environ},
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()
    assert _record(runtime, ann["id"])[:2] == (0, 0)
    assert record_gold_labels(runtime.db, runtime.assignments)["gold_recorded"] == 3
    assert _record(runtime, ann["id"])[:2] == (3, 2)


def test_a_lost_mark_is_counted_by_the_reconciler_and_its_suspension_reopens_slots(
    client, admin, jobs, runtime, monkeypatch
):
    """Enqueueing fails after the label committed: the reconciler finds the gold label."""
    project, ids, truth = _project(
        client, admin, jobs, n_items=1, quality={"min_gold": 3, "suspend_below": 0.9}
    )
    real = ids["i0"]
    spammer = annotator(client, project, "spam")
    tasks = [claim(client, project, spammer) for _ in range(4)]
    assert {t["item_id"] for t in tasks[:3]} == set(truth)
    assert tasks[3]["item_id"] == real
    label(client, tasks[3], spammer, "cat")
    for task in tasks[:2]:
        label(client, task, spammer, WRONG[truth[task["item_id"]]])
    jobs()
    assert _record(runtime, spammer["id"])[:3] == (2, 0, "active")
    free_before = redis_slots(runtime, project["id"], real)[0]

    def lost(self, project_id, item_id):
        raise RedisConnectionError("Error 111 connecting to redis:6379. Connection refused.")

    monkeypatch.setattr(JobQueue, "enqueue_consensus", lost)
    label(client, tasks[2], spammer, WRONG[truth[tasks[2]["item_id"]]])  # still 201
    monkeypatch.undo()
    jobs()  # no mark: nothing to count
    assert _record(runtime, spammer["id"])[:3] == (2, 0, "active")
    assert job_functions.reconcile()["gold_recorded"] == 1
    n_gold, _n_correct, status, _ = _record(runtime, spammer["id"])
    assert (n_gold, status) == (3, "suspended")
    [event] = audit_events(runtime, project["id"], "annotator.suspended")
    assert event.object_id == spammer["id"]
    # The spammer's label on the real item stops counting: its slot is open again.
    assert redis_slots(runtime, project["id"], real)[0] == free_before + 1
    assert get_item(client, project, real)["status"] == "routed"
    assert job_functions.reconcile()["gold_recorded"] == 0
    listed = annotators_by_external_id(client, project)["spam"]
    assert "accuracy on gold too low: 0 of 3" in listed["status_reason"]


def test_a_suspension_by_the_job_releases_the_tasks_the_annotator_holds(
    client, admin, jobs, runtime
):
    """The annotator claimed more work before the job counted its last gold answer: that task
    goes back to the queue at once (it could not be labeled), not when its lease lapses."""
    project, ids, truth = _project(
        client, admin, jobs, n_items=1, quality={"min_gold": 3, "suspend_below": 0.9}
    )
    real = ids["i0"]
    spammer = annotator(client, project, "spam")
    for _ in range(3):
        task = claim(client, project, spammer)
        label(client, task, spammer, WRONG[truth[task["item_id"]]])
    free = redis_slots(runtime, project["id"], real)[0]
    held = claim(client, project, spammer)  # the job has not run: still active
    assert held["item_id"] == real
    assert redis_slots(runtime, project["id"], real) == (free - 1, 1)
    jobs()
    assert _record(runtime, spammer["id"])[:3] == (3, 0, "suspended")
    assert redis_slots(runtime, project["id"], real) == (free, 0)
    label(client, held, spammer, "cat", expect=403)
    other = annotator(client, project, "w1")
    assert real in {claim(client, project, other)["item_id"] for _ in range(4)}
