"""The Python client against the real app: every method, and every error as its own exception.

The client sends through the app's test client (an httpx.Client), so these run the same HTTP
stack as a tool would, on both backends.
"""

from __future__ import annotations

import httpx
import pytest

from router.client import (
    Conflict,
    Forbidden,
    LabelRouter,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    TransportError,
    Unauthorized,
    Unavailable,
    UnsupportedMediaType,
    ValidationFailed,
)
from tests.conftest import ADMIN_KEY, CATEGORICAL

pytestmark = pytest.mark.integration

QUIET = {
    "spot_check_fraction": 0.0,
    "gold": {"rate": {"crowd": 0.0, "expert": 0.0}, "new_annotator_rate": 0.0},
}


def _item(ext: str, probs: list[float] | None = None) -> dict[str, object]:
    out: dict[str, object] = {"external_id": ext, "payload": {"text": ext}}
    if probs is not None:
        out["predictions"] = [{"model": "m", "model_version": "1", "probs": probs}]
    return out


@pytest.fixture(name="api")
def fx_api(client):
    return LabelRouter(key=ADMIN_KEY, http=client, retries=0)


@pytest.fixture(name="setup")
def fx_setup(api):
    project = api.create_project("pets", CATEGORICAL, "r1", routing=QUIET)
    keys = {
        role: api.create_key(project.id, role, role).key for role in ("ops", "producer", "tool")
    }
    return project, keys


def test_projects_and_keys(api, setup):
    project, keys = setup
    assert project.label_schema == CATEGORICAL
    assert project.routing_version >= 1
    assert api.project(project.id) == project
    assert api.with_key(keys["producer"]).project(project.id).id == project.id
    key = api.create_key(project.id, "ops", "second ops")
    assert key.role == "ops"
    assert key.key.startswith("lr_")


def test_items_gold_work_loop_and_readouts(api, setup, jobs):
    project, keys = setup
    pid = project.id
    producer, ops = api.with_key(keys["producer"]), api.with_key(keys["ops"])

    # Ingest from a generator, in batches of 2, JSON and NDJSON; a repeat counts as duplicate.
    first = producer.ingest(pid, (_item(f"i{n}", [0.5, 0.3, 0.2]) for n in range(5)), batch_size=2)
    assert (first.accepted, first.duplicates, len(first.items)) == (5, 0, 5)
    second = producer.ingest(pid, [_item("i4"), _item("i5")], ndjson=True)
    assert (second.accepted, second.duplicates) == (1, 1)
    ids = {i.external_id: i.id for i in first.items + second.items}
    jobs()
    assert producer.item(pid, ids["i0"]).status == "routed"
    page = producer.items(pid, status="routed", limit=4)
    assert len(page.items) == 4
    assert page.next_cursor is not None
    listed = list(producer.iter_items(pid, page=4))
    assert {i.external_id for i in listed} == set(ids)

    gold = ops.add_gold(pid, [{"external_id": "g1", "payload": {"text": "g1"}, "answer": "dog"}])
    assert gold.accepted == 1

    # Annotators: create, list, patch.
    alice = ops.create_annotator(pid, "alice")
    bob = ops.create_annotator(pid, "bob", tier="expert")
    assert (alice.tier, alice.status, bob.tier) == ("crowd", "active", "expert")
    listing = {a.external_id: a for a in ops.annotators(pid)}
    assert set(listing) == {"alice", "bob"}
    assert listing["alice"].quality is not None
    assert listing["alice"].quality.n_gold == 0
    moved = ops.update_annotator(pid, bob.id, tier="crowd")
    assert moved.tier == "crowd"

    # The work loop as the annotator itself: claim, label (then the same again), release.
    me = api.with_key(alice.api_key)
    task = me.next_task(pid)
    assert task is not None
    assert task.label_schema == CATEGORICAL
    receipt = me.label(task.assignment_id, "dog", confidence=0.8, duration_ms=1200)
    assert (receipt.label, receipt.confidence, receipt.replayed) == ("dog", 0.8, False)
    again = me.label(task.assignment_id, "dog", confidence=0.8, duration_ms=1200)
    assert again.replayed
    assert again.id == receipt.id
    other = me.next_task(pid)
    assert other is not None
    assert other.item_id != task.item_id
    released = me.release(other.assignment_id)
    assert released.assignment_id == other.assignment_id

    # As a tool acting for bob, by X-Annotator (client default, then per call).
    tool = api.with_key(keys["tool"], annotator="bob")
    claimed = tool.next_task(pid)
    assert claimed is not None
    assert tool.with_key(keys["tool"]).label(claimed.assignment_id, "cat", annotator="bob")
    # Nothing left for a lone annotator once every item is leased or labeled by them: None.
    drained = list(iter(lambda: me.next_task(pid), None))
    assert all(t.item_id != task.item_id for t in drained)
    assert me.next_task(pid) is None

    jobs()
    quality = ops.quality(pid, alice.id)
    assert quality.n_labels >= 1
    assert quality.status == "active"
    assert isinstance(quality.flags, list)

    # Routing config: read, preview, put.
    config = ops.routing_config(pid)
    assert config.version == project.routing_version
    preview = ops.preview_routing_config(pid, {"thresholds": {"expert_min_priority": 0.1}})
    assert preview["current_version"] == config.version
    update = ops.put_routing_config(pid, {"labels": {"crowd_target": 2}})
    assert update.changed
    assert update.version == config.version + 1
    assert ops.routing_config(pid).config["labels"]["crowd_target"] == 2

    # Read-outs.
    metrics = ops.metrics(pid)
    assert metrics.items["total"] == 6
    assert metrics.labels["by_tier"]["crowd"] >= 2
    audit = ops.audit(pid, limit=5)
    assert 0 < len(audit.events) <= 5
    assert audit.next_cursor is not None
    assert api.audit(action="project.created").events[0].object_id == pid


def test_export_streams_done_items(api, setup, jobs):
    project, keys = setup
    producer = api.with_key(keys["producer"])
    confident = [0.98, 0.01, 0.01]
    producer.ingest(project.id, [_item(f"e{n}", confident) for n in range(3)])
    jobs()
    lines = list(producer.export(project.id))
    assert sorted(line["external_id"] for line in lines) == ["e0", "e1", "e2"]
    assert all(line["label"] == "cat" for line in lines)
    assert list(producer.export(project.id, tier="expert")) == []


def test_each_error_is_its_own_exception(api, setup, client):
    project, keys = setup
    pid = project.id
    ops = api.with_key(keys["ops"])

    with pytest.raises(Unauthorized) as unauthorized:
        api.with_key("lr_nobody").project(pid)
    assert unauthorized.value.status_code == 401
    with pytest.raises(Forbidden):
        api.with_key(keys["producer"]).create_annotator(pid, "x")
    with pytest.raises(NotFound):
        ops.item(pid, "no-such-item")
    ops.create_annotator(pid, "dup")
    with pytest.raises(Conflict):
        ops.create_annotator(pid, "dup")
    with pytest.raises(ValidationFailed) as invalid:
        api.with_key(keys["producer"]).ingest(
            pid, [_item("ok"), _item("bad", [0.5, 0.5]), {"payload": {}}]
        )
    problems = invalid.value.problems
    assert {p["index"] for p in problems} == {1, 2}
    assert all(p["message"] for p in problems)
    with pytest.raises(ValidationFailed):
        ops.put_routing_config(pid, {"no_such_section": 1})
    with pytest.raises(PayloadTooLarge):  # the test settings allow 16 KiB per payload
        api.with_key(keys["producer"]).ingest(
            pid, [{"external_id": "big", "payload": {"blob": "x" * 20_000}}]
        )
    resp = client.post(
        f"/v1/projects/{pid}/items",
        content=b"<items/>",
        headers={"Authorization": f"Bearer {keys['producer']}", "Content-Type": "text/xml"},
    )
    assert resp.status_code == 415  # what the client maps below, from the real service
    with pytest.raises(UnsupportedMediaType):
        api.with_key(keys["producer"])._send(
            "POST", f"/v1/projects/{pid}/items", safe=False, content=b"x", content_type="text/xml"
        )
    # Suspended annotators are refused the work loop.
    ann = ops.create_annotator(pid, "gone")
    ops.update_annotator(pid, ann.id, status="suspended", reason="test")
    with pytest.raises(Forbidden):
        api.with_key(ann.api_key).next_task(pid)


def _scripted(responses: list[httpx.Response | Exception]) -> tuple[httpx.Client, list[str]]:
    """An httpx client whose transport answers from a script, recording each request."""
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        answer = responses.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return httpx.Client(base_url="http://lr.test", transport=httpx.MockTransport(handler)), seen


def _problem(status: int, detail: str = "down", **headers: str) -> httpx.Response:
    body = {"status_code": status, "detail": detail, "extra": None}
    return httpx.Response(status, json=body, headers=headers)


def _ok() -> httpx.Response:
    return httpx.Response(200, json={"assignment_id": "a", "status": "released"})


def test_safe_calls_retry_on_503_429_and_dropped_connections():
    http, seen = _scripted(
        [
            _problem(503),
            _problem(429, "slow down", **{"Retry-After": "0"}),
            httpx.ReadError("x"),
            _ok(),
        ]
    )
    api = LabelRouter(key="k", http=http, retries=3, backoff=0.0)
    assert api.release("a").status == "released"
    assert seen == ["POST /v1/assignments/a/release"] * 4


def test_unsafe_calls_retry_only_when_the_request_never_left():
    http, seen = _scripted([httpx.ConnectError("refused"), httpx.Response(204)])
    api = LabelRouter(key="k", http=http, retries=3, backoff=0.0)
    assert api.next_task("p") is None  # a refused connection claimed nothing: retried
    assert len(seen) == 2

    http, seen = _scripted([_problem(503)])
    with pytest.raises(Unavailable) as down:
        LabelRouter(key="k", http=http, retries=3, backoff=0.0).next_task("p")
    assert (down.value.status_code, down.value.detail) == (503, "down")
    assert len(seen) == 1  # a claim may have been taken: never repeated

    http, seen = _scripted([httpx.ReadError("reset")])
    with pytest.raises(TransportError):
        LabelRouter(key="k", http=http, retries=3, backoff=0.0).next_task("p")
    assert len(seen) == 1


def test_rate_limited_carries_retry_after_when_retries_run_out():
    http, _ = _scripted([_problem(429, "slow down", **{"Retry-After": "7"})])
    with pytest.raises(RateLimited) as limited:
        LabelRouter(key="k", http=http, retries=0).metrics("p")
    assert limited.value.retry_after == 7.0
    assert limited.value.detail == "slow down"
