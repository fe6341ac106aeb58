"""Webhooks: registration and its rules, events from the outbox, signed delivery to a receiver
on loopback, retries with back-off, giving up, and the delivery log."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from router.db.models import AuditEvent, WebhookDelivery, WebhookEvent
from router.runtime import get_runtime
from router.settings import WebhookSettings
from router.webhooks.delivery import claim_due, record, send
from router.webhooks.outbox import emit
from tests.conftest import auth, run_jobs
from tests.integration.helpers import (
    Clock,
    add_gold,
    annotator,
    by_external_id,
    claim,
    confident_item,
    get_item,
    ingest,
    item,
    label,
    new_project,
    ordinary_item,
    quiet,
)
from workers.jobs import schedule_webhooks
from workers.scheduler import Scheduler

ALL_EVENTS = ["item.settled", "item.escalated", "annotator.suspended", "annotator.flagged"]


# --------------------------------------------------------------------------------------------
# A receiver on loopback
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        payload: dict[str, Any] = json.loads(self.body)
        return payload


class Receiver:
    """An HTTP server in a thread that records each POST and answers the next queued status
    (200 once the queue is empty)."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.statuses: list[int] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with outer._lock:
                    outer.received.append(
                        Received({k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    status = outer.statuses.pop(0) if outer.statuses else 200
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if status < 300 else b"receiver is down for maintenance")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/labelrouter"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(name="receiver")
def fx_receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.close()


@pytest.fixture(name="clock")
def fx_clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The delivery clock (due times, back-offs, signature timestamps), movable."""
    clock = Clock()
    monkeypatch.setattr("router.webhooks.delivery.time", clock)
    return clock


def verify(secret: str, received: Received, now: float) -> bool:
    """What a receiver does (the README's recipe)."""
    parts = dict(p.split("=", 1) for p in received.headers["x-labelrouter-signature"].split(","))
    signed = f"{parts['t']}.".encode() + received.body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"]) and abs(now - int(parts["t"])) <= 300


def deliver() -> None:
    """One scheduler pass (enqueues a delivery run if anything is due), then run the jobs."""
    schedule_webhooks()
    run_jobs(get_runtime())


def register(client, project, url, events=None, key=None, expect=201, **fields):
    resp = client.post(
        f"/v1/projects/{project['id']}/webhooks",
        json={"url": url, "events": events if events is not None else ALL_EVENTS, **fields},
        headers=auth(key or project["ops_key"]),
    )
    assert resp.status_code == expect, resp.text
    body: dict[str, Any] = resp.json()
    return body


def deliveries(client, project, hook_id, **params):
    resp = client.get(
        f"/v1/projects/{project['id']}/webhooks/{hook_id}/deliveries",
        params=params,
        headers=auth(project["ops_key"]),
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


def suspend(client, project, annotator_id, reason="spam"):
    resp = client.patch(
        f"/v1/projects/{project['id']}/annotators/{annotator_id}",
        json={"status": "suspended", "reason": reason},
        headers=auth(project["ops_key"]),
    )
    assert resp.status_code == 200, resp.text


def webhook_counter(client, event: str, outcome: str) -> float:
    text = client.get("/metrics").text
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "labelrouter_webhook_deliveries_total" and s.labels == {
                "event": event,
                "outcome": outcome,
            }:
                return float(s.value)
    raise AssertionError("counter not exported")


# --------------------------------------------------------------------------------------------
# Registration
# --------------------------------------------------------------------------------------------


def test_register_shows_the_secret_once_and_never_again(client, admin, project, runtime):
    made = register(
        client,
        project,
        "https://example.com/hook",
        ["annotator.flagged", "item.settled"],
        description="pipeline",
    )
    assert set(made) == {
        "id",
        "url",
        "events",
        "description",
        "active",
        "created_at",
        "updated_at",
        "secret",
    }
    assert made["secret"].startswith("whsec_")
    assert len(made["secret"]) > 40
    assert made["events"] == ["item.settled", "annotator.flagged"]  # canonical order
    assert made["active"] is True
    assert made["created_at"].endswith("Z")
    listed = client.get(
        f"/v1/projects/{project['id']}/webhooks", headers=auth(project["ops_key"])
    ).json()
    assert [h["id"] for h in listed] == [made["id"]]
    one = client.get(f"/v1/projects/{project['id']}/webhooks/{made['id']}", headers=admin).json()
    for view in (listed[0], one):
        assert "secret" not in view
        assert made["secret"] not in json.dumps(view)
    # The audit log records the registration, without the secret.
    with runtime.db.read() as session:
        events = session.execute(select(AuditEvent)).scalars().all()
    created = [e for e in events if e.action == "webhook.created"]
    assert len(created) == 1
    assert created[0].object_id == made["id"]
    assert created[0].detail["url"] == "https://example.com/hook"
    assert all(made["secret"] not in json.dumps(e.detail) for e in events)


def test_invalid_registrations_are_422_naming_the_problem(client, project):
    pid = project["id"]
    headers = auth(project["ops_key"])

    def problems(body):
        resp = client.post(f"/v1/projects/{pid}/webhooks", json=body, headers=headers)
        assert resp.status_code == 422, resp.text
        return resp.json()

    bad = problems({"url": "https://x.test/h", "events": ["item.settled", "item.created", "x"]})
    [p] = bad["extra"]
    assert p["field"] == "events"
    assert "'item.created'" in p["message"]
    assert "'x'" in p["message"]
    assert "item.settled" in p["message"]  # the known ones are listed
    assert problems({"url": "https://x.test/h", "events": []})["extra"][0]["field"] == "events"
    for url in ("ftp://x.test/h", "not a url", "/relative", "https://", "http://u:pw@x.test/"):
        extra = problems({"url": url, "events": ["item.settled"]})["extra"]
        assert [p["field"] for p in extra] == ["url"], url
    both = problems({"url": "gopher://x", "events": ["nope"]})["extra"]
    assert {p["field"] for p in both} == {"url", "events"}
    unknown = problems({"url": "https://x.test/h", "events": ["item.settled"], "secret": "s"})
    assert "secret" in json.dumps(unknown["extra"])
    assert client.get(f"/v1/projects/{pid}/webhooks", headers=headers).json() == []


def test_change_rotate_and_remove(client, project, runtime, receiver, jobs):
    pid = project["id"]
    headers = auth(project["ops_key"])
    made = register(client, project, receiver.url, ["item.settled"])
    hid = made["id"]
    changed = client.patch(
        f"/v1/projects/{pid}/webhooks/{hid}",
        json={"events": ["annotator.suspended"], "description": "ops alerts"},
        headers=headers,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["events"] == ["annotator.suspended"]
    bad = client.patch(
        f"/v1/projects/{pid}/webhooks/{hid}", json={"events": ["x"]}, headers=headers
    )
    assert bad.status_code == 422
    assert (
        client.patch(f"/v1/projects/{pid}/webhooks/{hid}", json={}, headers=headers).status_code
        == 422
    )
    # A rotated secret signs every attempt from then on; the old one no longer verifies.
    rotated = client.post(f"/v1/projects/{pid}/webhooks/{hid}/rotate-secret", headers=headers)
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    assert new_secret != made["secret"]
    ann = annotator(client, project, "w1")
    suspend(client, project, ann["id"])
    deliver()
    [got] = receiver.received
    assert verify(new_secret, got, time.time())
    assert not verify(made["secret"], got, time.time())
    # Removal: gone from the API, its pending deliveries failed, its log still readable.
    receiver.statuses = [500]
    suspend(client, project, annotator(client, project, "w2")["id"])
    deliver()  # one failed attempt: pending, with a retry scheduled
    assert deliveries(client, project, hid)["deliveries"][0]["status"] == "pending"
    removed = client.delete(f"/v1/projects/{pid}/webhooks/{hid}", headers=headers)
    assert removed.status_code == 204, removed.text
    assert client.get(f"/v1/projects/{pid}/webhooks/{hid}", headers=headers).status_code == 404
    assert client.get(f"/v1/projects/{pid}/webhooks", headers=headers).json() == []
    assert client.delete(f"/v1/projects/{pid}/webhooks/{hid}", headers=headers).status_code == 404
    log = deliveries(client, project, hid)["deliveries"]
    assert [d["status"] for d in log] == ["failed", "delivered"]
    assert "removed" in log[0]["last_error"]
    suspend(client, project, annotator(client, project, "w3")["id"])
    assert len(deliveries(client, project, hid)["deliveries"]) == 2  # no new event for it
    with runtime.db.read() as session:
        actions = [
            (e.action, json.dumps(e.detail))
            for e in session.execute(
                select(AuditEvent).where(AuditEvent.object_id == hid)
            ).scalars()
        ]
    assert {a for a, _ in actions} == {
        "webhook.created",
        "webhook.updated",
        "webhook.secret_rotated",
        "webhook.deleted",
    }
    assert all(made["secret"] not in d and new_secret not in d for _, d in actions)


def test_other_projects_get_404_and_other_roles_403(client, admin, project):
    pid = project["id"]
    hid = register(client, project, "https://example.com/a")["id"]
    other = new_project(client, admin, name="b")
    oid = other["id"]
    own = auth(other["ops_key"])
    attempts = [
        ("GET", f"/v1/projects/{pid}/webhooks", None),
        ("POST", f"/v1/projects/{pid}/webhooks", {"url": "https://e.com", "events": ALL_EVENTS}),
        ("GET", f"/v1/projects/{pid}/webhooks/{hid}", None),
        ("PATCH", f"/v1/projects/{pid}/webhooks/{hid}", {"active": False}),
        ("DELETE", f"/v1/projects/{pid}/webhooks/{hid}", None),
        ("POST", f"/v1/projects/{pid}/webhooks/{hid}/rotate-secret", None),
        ("GET", f"/v1/projects/{pid}/webhooks/{hid}/deliveries", None),
        # A's hook under B's own path: absent there too.
        ("GET", f"/v1/projects/{oid}/webhooks/{hid}", None),
        ("PATCH", f"/v1/projects/{oid}/webhooks/{hid}", {"active": False}),
        ("DELETE", f"/v1/projects/{oid}/webhooks/{hid}", None),
        ("GET", f"/v1/projects/{oid}/webhooks/{hid}/deliveries", None),
    ]
    for method, path, body in attempts:
        resp = client.request(method, path, json=body, headers=own)
        assert resp.status_code == 404, (method, path, resp.text)
    ann = annotator(client, project, "w1")
    for key in (project["producer_key"], project["tool_key"], ann["api_key"]):
        for method, path, body in attempts[:7]:
            resp = client.request(method, path, json=body, headers=auth(key))
            assert resp.status_code == 403, (method, path, resp.text)
    assert client.get(f"/v1/projects/{pid}/webhooks/{hid}", headers=admin).status_code == 200
    assert client.get(f"/v1/projects/{pid}/webhooks", headers=auth(project["ops_key"])).json()


# --------------------------------------------------------------------------------------------
# Events, delivered signed
# --------------------------------------------------------------------------------------------


def test_settled_escalated_and_suspended_reach_the_receiver_signed(
    client, admin, jobs, receiver, runtime
):
    project = new_project(client, admin, routing=quiet())
    pid = project["id"]
    hook = register(client, project, receiver.url)
    only_settled = Receiver()
    try:
        register(client, project, only_settled.url, ["item.settled"])
        # item.settled: three agreeing labels.
        i0 = by_external_id(ingest(client, project, [item("i0")]))["i0"]
        jobs()
        for k in range(3):
            ann = annotator(client, project, f"s{k}")
            label(client, claim(client, project, ann), ann, "bird")
        jobs()
        assert get_item(client, project, i0)["status"] == "done"
        # item.escalated: three crowd labels that disagree.
        i1 = by_external_id(ingest(client, project, [item("i1")]))["i1"]
        jobs()
        for k, value in enumerate(("cat", "dog", "bird")):
            ann = annotator(client, project, f"e{k}")
            label(client, claim(client, project, ann), ann, value)
        jobs()
        assert get_item(client, project, i1)["tier"] == "expert"
        # annotator.suspended: by ops.
        spammer = annotator(client, project, "spammer")
        suspend(client, project, spammer["id"], reason="copy-pasted answers")
        assert receiver.received == [], "nothing is sent before a worker runs"
        deliver()
    finally:
        only_settled.close()
    got = {r.headers["x-labelrouter-event"]: r for r in receiver.received}
    assert sorted(got) == ["annotator.suspended", "item.escalated", "item.settled"]
    for event_type, r in got.items():
        assert verify(hook["secret"], r, time.time()), event_type
        body = r.json
        assert body["type"] == event_type
        assert body["project_id"] == pid
        assert body["data"]["project_id"] == pid
        assert r.headers["x-labelrouter-event-id"] == body["id"]
        assert r.headers["content-type"] == "application/json"
        sig_t = r.headers["x-labelrouter-signature"].split(",")[0]
        assert sig_t == f"t={r.headers['x-labelrouter-timestamp']}"
        datetime.fromisoformat(body["created_at"])
    settled = got["item.settled"].json["data"]
    assert settled["item_id"] == i0
    assert settled["external_id"] == "i0"
    assert settled["label"] == "bird"
    assert settled["confidence"] > 0.95
    assert settled["tier"] == "crowd"
    assert settled["config_version"] == 1
    assert settled["n_labels"] == 3
    assert settled["settled_at"].endswith("Z")
    escalated = got["item.escalated"].json["data"]
    assert (escalated["item_id"], escalated["from_tier"], escalated["tier"]) == (
        i1,
        "crowd",
        "expert",
    )
    assert "crowd labels disagree" in escalated["reason"]
    suspended = got["annotator.suspended"].json["data"]
    assert suspended["annotator_id"] == spammer["id"]
    assert suspended["external_id"] == "spammer"
    assert suspended["reason"] == "copy-pasted answers"
    assert suspended["automatic"] is False
    # The hook subscribed to item.settled only got that one.
    assert [r.headers["x-labelrouter-event"] for r in only_settled.received] == ["item.settled"]
    # The delivery log tells the same story.
    log = deliveries(client, project, hook["id"])
    assert {d["event_type"] for d in log["deliveries"]} == set(got)
    for d in log["deliveries"]:
        assert (d["status"], d["attempts"], d["last_status_code"]) == ("delivered", 1, 200)
        assert d["delivered_at"]
        assert d["next_attempt_at"] is None
        assert got[d["event_type"]].headers["x-labelrouter-delivery"] == d["id"]
        assert got[d["event_type"]].json["id"] == d["event_id"]
    deliver()
    assert len(receiver.received) == 3, "a delivered event is not sent again"


GOLD = {"g1": "cat", "g2": "dog", "g3": "bird", "g4": "cat"}
WRONG = {"cat": "dog", "dog": "bird", "bird": "cat"}


def test_the_quality_rule_suspends_and_flags_once(client, admin, jobs, receiver):
    routing = quiet(
        gold={"rate": {"crowd": 1.0, "expert": 1.0}, "new_annotator_rate": 1.0},
        quality={"min_gold": 3, "suspend_below": 0.9},
    )
    project = new_project(client, admin, routing=routing)
    hook = register(client, project, receiver.url, ["annotator.suspended", "annotator.flagged"])
    truth = {v: GOLD[k] for k, v in add_gold(client, project, GOLD)["ids"].items()}
    good, bad = annotator(client, project, "good"), annotator(client, project, "bad")
    for _ in range(3):
        task = claim(client, project, good)
        label(client, task, good, truth[task["item_id"]])
        task = claim(client, project, bad)
        label(client, task, bad, WRONG[truth[task["item_id"]]])
    jobs()  # the consensus job counts the gold answers: suspension and flag
    deliver()
    events = [(r.headers["x-labelrouter-event"], r.json["data"]) for r in receiver.received]
    assert all(verify(hook["secret"], r, time.time()) for r in receiver.received)
    suspended = [d for e, d in events if e == "annotator.suspended"]
    flagged = [d for e, d in events if e == "annotator.flagged"]
    assert [d["annotator_id"] for d in suspended] == [bad["id"]]
    assert suspended[0]["automatic"] is True
    assert "accuracy on gold too low: 0 of 3" in suspended[0]["reason"]
    assert [(d["annotator_id"], d["flag"]) for d in flagged] == [(bad["id"], "accuracy_below_bar")]
    assert flagged[0]["n_gold"] == 3
    assert flagged[0]["n_gold_correct"] == 0
    assert flagged[0]["accuracy_ci"][1] < 0.9
    assert "accuracy_below_bar" in flagged[0]["flags"]


def test_the_gold_exhausted_flag_is_told_once(client, admin, jobs, receiver):
    routing = quiet(gold={"rate": {"crowd": 1.0, "expert": 1.0}, "new_annotator_rate": 1.0})
    project = new_project(client, admin, routing=routing)
    register(client, project, receiver.url, ["annotator.flagged"])
    ingest(client, project, [item("i0"), item("i1")])
    jobs()
    truth = {v: k for k, v in add_gold(client, project, {"g1": "cat"})["ids"].items()}
    ann = annotator(client, project, "w1")
    first = claim(client, project, ann)
    assert first["item_id"] in truth
    label(client, first, ann, "cat")
    claim(client, project, ann)  # wanted gold, none unseen left: flagged
    claim(client, project, ann)  # still exhausted: not told again
    deliver()
    flagged = [r.json["data"] for r in receiver.received]
    assert [(d["annotator_id"], d["flag"]) for d in flagged] == [(ann["id"], "gold_exhausted")]


def test_auto_accepted_items_are_settled_events_too(client, admin, jobs, receiver):
    """Settled by routing, at ingest or by a re-route under a new config: same event."""
    project = new_project(client, admin, routing=quiet())
    hook = register(client, project, receiver.url, ["item.settled"])
    ids = by_external_id(
        ingest(client, project, [confident_item("sure", label=1), ordinary_item("unsure")])
    )
    jobs()
    deliver()
    [first] = [r.json["data"] for r in receiver.received]
    assert (first["item_id"], first["tier"], first["label"]) == (ids["sure"], "auto", "dog")
    assert first["n_labels"] == 0
    assert first["config_version"] == 1
    assert first["confidence"] == pytest.approx(0.98)
    assert "auto-accepted" in first["reason"]
    everything_auto = {"thresholds": {"auto_max_uncertainty": 0.99, "auto_max_disagreement": 0.99}}
    resp = client.put(
        f"/v1/projects/{project['id']}/routing-config",
        json={"config": everything_auto},
        headers=auth(project["ops_key"]),
    )
    assert resp.status_code == 200, resp.text
    jobs()  # the re-route job settles "unsure"
    deliver()
    second = receiver.received[1].json["data"]
    assert (second["item_id"], second["tier"], second["label"]) == (ids["unsure"], "auto", "cat")
    assert second["config_version"] == 2
    assert len(receiver.received) == 2
    assert all(verify(hook["secret"], r, time.time()) for r in receiver.received)


def test_an_event_of_a_change_that_rolled_back_is_not_stored(client, project, runtime):
    register(client, project, "https://example.com/h")

    def failing_change() -> None:
        with runtime.db.session() as session:
            assert emit(session, project["id"], "item.settled", {"item_id": "x"}) is not None
            raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError):
        failing_change()
    with runtime.db.read() as session:
        assert session.execute(select(func.count()).select_from(WebhookEvent)).scalar_one() == 0
        assert session.execute(select(func.count()).select_from(WebhookDelivery)).scalar_one() == 0


def test_an_inactive_hook_gets_no_events_until_reactivated(client, project, receiver):
    pid = project["id"]
    hook = register(client, project, receiver.url, ["annotator.suspended"])
    path = f"/v1/projects/{pid}/webhooks/{hook['id']}"
    resp = client.patch(path, json={"active": False}, headers=auth(project["ops_key"]))
    assert resp.json()["active"] is False
    suspend(client, project, annotator(client, project, "w1")["id"])
    deliver()
    assert receiver.received == []
    assert deliveries(client, project, hook["id"])["deliveries"] == []
    client.patch(path, json={"active": True}, headers=auth(project["ops_key"]))
    suspend(client, project, annotator(client, project, "w2")["id"])
    deliver()
    assert [r.json["data"]["external_id"] for r in receiver.received] == ["w2"]


# --------------------------------------------------------------------------------------------
# Retries, back-off, giving up, the log, the counter
# --------------------------------------------------------------------------------------------


def test_a_failed_attempt_is_retried_after_a_backoff(client, project, receiver, clock):
    hook = register(client, project, receiver.url, ["annotator.suspended"])
    before = {o: webhook_counter(client, "annotator.suspended", o) for o in ("failed", "delivered")}
    receiver.statuses = [500]
    suspend(client, project, annotator(client, project, "w1")["id"])
    deliver()
    [d] = deliveries(client, project, hook["id"])["deliveries"]
    assert (d["status"], d["attempts"], d["last_status_code"]) == ("pending", 1, 500)
    assert d["last_error"] == "HTTP 500: receiver is down for maintenance"
    wait = (
        datetime.fromisoformat(d["next_attempt_at"]) - datetime.fromisoformat(d["last_attempt_at"])
    ).total_seconds()
    assert 5.0 <= wait <= 10.0  # first back-off: 10 s with equal jitter
    deliver()  # not due yet: nothing is sent
    assert len(receiver.received) == 1
    clock.advance(10.5)
    deliver()
    assert len(receiver.received) == 2
    [d] = deliveries(client, project, hook["id"])["deliveries"]
    assert (d["status"], d["attempts"], d["last_status_code"]) == ("delivered", 2, 200)
    assert d["last_error"] is None
    assert d["next_attempt_at"] is None
    first, second = receiver.received
    assert first.body == second.body, "every attempt sends the same event"
    assert second.headers["x-labelrouter-attempt"] == "2"
    assert verify(hook["secret"], second, clock.time())
    assert (
        int(second.headers["x-labelrouter-timestamp"])
        >= int(first.headers["x-labelrouter-timestamp"]) + 10
    )
    after = {o: webhook_counter(client, "annotator.suspended", o) for o in ("failed", "delivered")}
    assert after == {"failed": before["failed"] + 1, "delivered": before["delivered"] + 1}


def test_a_dead_receiver_ends_failed_after_max_attempts(client, project, runtime, clock):
    runtime.settings = dataclasses.replace(
        runtime.settings, webhooks=WebhookSettings(max_attempts=3, backoff_s=10.0, timeout_s=1.0)
    )
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/hook"
    hook = register(client, project, dead, ["annotator.suspended"])
    abandoned = webhook_counter(client, "annotator.suspended", "abandoned")
    suspend(client, project, annotator(client, project, "w1")["id"])
    for attempt in (1, 2, 3):
        deliver()
        [d] = deliveries(client, project, hook["id"])["deliveries"]
        assert d["attempts"] == attempt
        assert d["last_status_code"] is None
        assert "ConnectError" in d["last_error"]
        clock.advance(60)
    assert d["status"] == "failed"
    assert d["next_attempt_at"] is None
    deliver()
    assert deliveries(client, project, hook["id"])["deliveries"][0]["attempts"] == 3
    assert webhook_counter(client, "annotator.suspended", "abandoned") == abandoned + 1
    assert deliveries(client, project, hook["id"], status="failed")["deliveries"] == [d]
    assert deliveries(client, project, hook["id"], status="pending")["deliveries"] == []


def test_the_delivery_log_pages_newest_first(client, project):
    hook = register(client, project, "https://example.com/h", ["annotator.suspended"])
    names = [f"w{k}" for k in range(3)]
    for name in names:
        suspend(client, project, annotator(client, project, name)["id"])
    first = deliveries(client, project, hook["id"], limit=2)
    assert len(first["deliveries"]) == 2
    assert first["next_cursor"]
    rest = deliveries(client, project, hook["id"], limit=2, cursor=first["next_cursor"])
    assert len(rest["deliveries"]) == 1
    assert rest["next_cursor"] is None
    log = first["deliveries"] + rest["deliveries"]
    assert len({d["id"] for d in log}) == 3
    assert [d["created_at"] for d in log] == sorted((d["created_at"] for d in log), reverse=True)
    assert all(d["status"] == "pending" and d["attempts"] == 0 for d in log)
    bad = client.get(
        f"/v1/projects/{project['id']}/webhooks/{hook['id']}/deliveries",
        params={"cursor": "nope", "status": "sent"},
        headers=auth(project["ops_key"]),
    )
    assert bad.status_code == 422
    assert {p["field"] for p in bad.json()["extra"]} == {"cursor", "status"}


# --------------------------------------------------------------------------------------------
# Several workers
# --------------------------------------------------------------------------------------------


def test_concurrent_claims_take_each_delivery_once(client, project, runtime):
    register(client, project, "https://example.com/h", ["annotator.suspended"])
    for k in range(20):
        suspend(client, project, annotator(client, project, f"w{k}")["id"])
    settings = runtime.settings.webhooks
    barrier = threading.Barrier(4)
    taken: list[list[str]] = []
    lock = threading.Lock()

    def worker() -> None:
        barrier.wait()
        got = [c.delivery_id for c in claim_due(runtime.db, settings, limit=8)]
        with lock:
            taken.append(got)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [i for got in taken for i in got]
    assert len(ids) == len(set(ids)), "a delivery was claimed twice"
    assert len(ids) == 20


def test_a_lapsed_lease_is_taken_over_and_the_first_worker_cannot_record(
    client, project, runtime, receiver, clock
):
    register(client, project, receiver.url, ["annotator.suspended"])
    suspend(client, project, annotator(client, project, "w1")["id"])
    settings = runtime.settings.webhooks
    [held] = claim_due(runtime.db, settings)
    assert claim_due(runtime.db, settings) == [], "held under a lease"
    clock.advance(120)  # the first worker died mid-send: its lease lapses
    [again] = claim_due(runtime.db, settings)
    assert (again.delivery_id, again.attempt) == (held.delivery_id, 2)
    with httpx.Client() as http:
        assert record(runtime.db, held, send(http, held), settings) is None
        assert record(runtime.db, again, send(http, again), settings) == "delivered"
    assert len(receiver.received) == 2, "at least once: the lapsed attempt was sent too"


def test_the_scheduler_runs_a_webhook_pass(client, project, receiver):
    register(client, project, receiver.url, ["annotator.suspended"])
    suspend(client, project, annotator(client, project, "w1")["id"])
    result = Scheduler(interval_s=30.0).run_once()
    assert result["webhooks"] == {"enqueued": 1}
    assert Scheduler(interval_s=30.0).run_once()["webhooks"] == {"enqueued": 0}  # one run waits
    run_jobs(get_runtime())
    assert len(receiver.received) == 1


def test_the_endpoints_are_documented_in_openapi(client):
    schema = client.get("/schema/openapi.json").json()
    paths = {p: sorted(ops) for p, ops in schema["paths"].items() if "/webhooks" in p}
    assert paths == {
        "/v1/projects/{pid}/webhooks": ["get", "post"],
        "/v1/projects/{pid}/webhooks/{hid}": ["delete", "get", "patch"],
        "/v1/projects/{pid}/webhooks/{hid}/rotate-secret": ["post"],
        "/v1/projects/{pid}/webhooks/{hid}/deliveries": ["get"],
    }
    components = schema["components"]["schemas"]
    with_secret = {name for name, s in components.items() if "secret" in s.get("properties", {})}
    assert with_secret == {"WebhookCreated", "WebhookSecretOut"}
    assert (
        "X-Labelrouter-Signature"
        in schema["paths"]["/v1/projects/{pid}/webhooks"]["post"]["description"]
    )
