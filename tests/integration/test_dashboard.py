"""The ops dashboard (/ui) through the HTTP test client: login and roles, the seeded numbers on
the pages, CSRF, suspend/reactivate from the page, and the snapshots behind the charts."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape

import pytest
from sqlalchemy import func, select, update
from sqlmodel import col

from router.auth.keys import hash_key
from router.db.database import as_utc
from router.db.models import ApiKey, ProjectSnapshot, utcnow
from router.readouts.snapshots import take_snapshots
from router.ui.sessions import COOKIE
from tests.conftest import auth
from tests.integration.dashboard_seed import metrics, seed_project
from tests.integration.helpers import annotator, audit_events, claim, label, new_project
from workers import jobs as job_functions
from workers.scheduler import Scheduler


def login(client, key, *, expect=303):
    resp = client.post("/ui/login", data={"api_key": key}, follow_redirects=False)
    assert resp.status_code == expect, resp.text
    return resp


def page(client, path, *, expect=200):
    resp = client.get(path, follow_redirects=False)
    assert resp.status_code == expect, resp.text
    return unescape(resp.text)


def csrf(html):
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def cell(html, attr, value):
    """The text of the first element carrying attr="value"."""
    match = re.search(rf'{attr}="{re.escape(value)}"[^>]*>([^<]*)<', html)
    assert match, f"no element with {attr}={value!r}"
    return match.group(1).strip()


def row(html, external_id):
    match = re.search(rf'<tr data-annotator="{external_id}">(.*?)</tr>', html, re.S)
    assert match, f"no row for annotator {external_id}"
    return match.group(1)


@pytest.fixture(name="seeded")
def fx_seeded(client, admin, jobs):
    return seed_project(client, admin, jobs)


def test_pages_need_a_session(client, seeded):
    pid = seeded["id"]
    resp = client.get(f"/ui/projects/{pid}", follow_redirects=False)
    assert (resp.status_code, resp.headers["location"]) == (303, "/ui/login")
    assert client.get(f"/ui/projects/{pid}/fragments/overview").status_code == 401
    login_page = page(client, "/ui/login")
    assert '<label for="api_key">API key</label>' in login_page
    assert 'type="password"' in login_page


def test_login_sets_a_strict_http_only_cookie_and_no_key_in_urls(client, seeded):
    resp = login(client, seeded["ops_key"])
    assert resp.headers["location"] == "/ui/projects"
    cookie = resp.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert seeded["ops_key"] not in cookie
    # An ops key sees its one project: straight to it.
    resp = client.get("/ui/projects", follow_redirects=False)
    assert resp.headers["location"] == f"/ui/projects/{seeded['id']}"
    html = page(client, f"/ui/projects/{seeded['id']}")
    assert seeded["ops_key"] not in html
    assert "Content-Security-Policy" in resp.headers


def test_a_login_posted_from_another_site_is_refused(client, seeded):
    resp = client.post(
        "/ui/login",
        data={"api_key": seeded["ops_key"]},
        headers={"Origin": "https://evil.example"},
        follow_redirects=False,
    )
    assert resp.status_code == 403
    assert "own login page" in resp.text
    assert COOKIE not in resp.headers.get("set-cookie", "")
    same = client.post(
        "/ui/login",
        data={"api_key": seeded["ops_key"]},
        headers={"Origin": "http://testserver.local"},
        follow_redirects=False,
    )
    assert same.status_code == 303


@pytest.mark.parametrize("role", ["producer_key", "tool_key"])
def test_non_ops_keys_are_refused_with_a_message(client, seeded, role):
    resp = login(client, seeded[role], expect=403)
    name = role.removesuffix("_key")
    assert f"This is a {name} key: the dashboard is for ops and admin keys" in unescape(resp.text)
    assert COOKIE not in resp.headers.get("set-cookie", "")


def test_annotator_and_unknown_keys_are_refused(client, seeded):
    resp = login(client, seeded["annotators"]["w1"]["api_key"], expect=403)
    assert "This is an annotator key: the dashboard is for ops and admin keys" in unescape(
        resp.text
    )
    resp = login(client, "lr_not_a_key", expect=401)
    assert "not a valid API key" in resp.text


def test_dashboard_shows_the_seeded_numbers(client, seeded):
    expected = metrics(client, seeded)
    login(client, seeded["ops_key"])
    html = page(client, f"/ui/projects/{seeded['id']}")
    for status, n in expected["items"]["by_status"].items():
        assert cell(html, "data-status", status) == str(n)
    for tier, n in expected["items"]["by_tier"].items():
        assert cell(html, "data-tier", tier) == str(n)
    assert expected["labels"]["total_cost"] == pytest.approx(10.0)  # 8 gold + 2 crowd, at 1.0
    assert cell(html, "data-metric", "total-cost") == "10.00"
    assert cell(html, "data-metric", "queue-crowd") == str(expected["queues"]["crowd"])
    assert cell(html, "data-metric", "expert-load") == "1 / 4"
    # The annotators table: gold record, accuracy with its interval, ECE, flags, status.
    listing = {
        a["external_id"]: a
        for a in client.get(
            f"/v1/projects/{seeded['id']}/annotators", headers=auth(seeded["ops_key"])
        ).json()
    }
    w1 = row(html, "w1")
    assert "3/4" in w1
    assert cell(w1, "data-col", "accuracy") == f"{listing['w1']['quality']['accuracy']:.2f}"
    lo, hi = listing["w1"]["quality"]["accuracy_ci"]
    assert cell(w1, "data-col", "interval") == f"{lo:.2f}\u2013{hi:.2f}"
    quality = client.get(
        f"/v1/projects/{seeded['id']}/annotators/{listing['w1']['id']}/quality",
        headers=auth(seeded["ops_key"]),
    ).json()
    assert cell(w1, "data-col", "ece") == f"{quality['ece']:.2f}"
    for flag in quality["flags"]:
        assert f"flag-{flag}" in w1
    assert 'class="status status-active"' in w1
    assert "Suspend w1" in w1
    # The config history: v2 by the ops key, with the field it changed.
    history = html[html.index('id="history"') :]
    assert "v2" in history
    assert "in force" in history
    assert "by ops (ops)" in history
    assert re.search(r"experts\.capacity</code></th><td class=\"old\"><code>5</code>", history)
    # The charts are SVG drawn on the server.
    assert html.count('<svg class="chart') >= 5


def test_fragments_are_partial_pages(client, seeded):
    login(client, seeded["ops_key"])
    base = f"/ui/projects/{seeded['id']}/fragments"
    overview = page(client, f"{base}/overview")
    assert "<html" not in overview
    assert 'data-status="routed"' in overview
    assert 'data-annotator="w2"' in page(client, f"{base}/annotators")
    assert "experts.capacity" in page(client, f"{base}/history")
    assert client.get(f"{base}/nope").status_code == 404


def test_annotator_page_has_reliability_diagram_and_confusion(client, seeded):
    login(client, seeded["ops_key"])
    w1 = seeded["annotators"]["w1"]
    html = page(client, f"/ui/projects/{seeded['id']}/annotators/{w1['id']}")
    diagram = html[html.index('<svg class="chart reliability') :]
    diagram = diagram[: diagram.index("</svg>")]
    # All four gold answers were at 0.9: one bin, accuracy 3/4, four answers.
    assert diagram.count('<rect class="bar"') == 1
    assert "accuracy 0.75 over 4 answers" in diagram
    assert '<table class="confusion">' in html
    assert html.count('<th scope="col" class="num">') == 3  # cat, dog, bird


def test_suspend_from_the_page_is_reflected_in_the_api(client, seeded, runtime):
    login(client, seeded["ops_key"])
    pid, w1 = seeded["id"], seeded["annotators"]["w1"]
    token = csrf(page(client, f"/ui/projects/{pid}"))
    resp = client.post(
        f"/ui/projects/{pid}/annotators/{w1['id']}/status",
        data={"status": "suspended", "csrf_token": token},
        follow_redirects=False,
    )
    assert (resp.status_code, resp.headers["location"]) == (303, f"/ui/projects/{pid}#annotators")
    api = client.get(f"/v1/projects/{pid}/annotators", headers=auth(seeded["ops_key"])).json()
    assert {a["external_id"]: a["status"] for a in api} == {"w1": "suspended", "w2": "active"}
    assert "Reactivate w1" in row(page(client, f"/ui/projects/{pid}"), "w1")
    events = audit_events(runtime, pid, "annotator.suspended")
    assert [e.object_id for e in events] == [w1["id"]]
    assert events[0].actor_role == "ops"

    resp = client.post(
        f"/ui/projects/{pid}/annotators/{w1['id']}/status",
        data={"status": "active", "csrf_token": token, "return_to": "annotator"},
        follow_redirects=False,
    )
    assert resp.headers["location"] == f"/ui/projects/{pid}/annotators/{w1['id']}"
    api = client.get(f"/v1/projects/{pid}/annotators", headers=auth(seeded["ops_key"])).json()
    assert {a["external_id"]: a["status"] for a in api}["w1"] == "active"


@pytest.mark.parametrize("token", [None, "forged"])
def test_a_form_without_the_session_token_is_refused(client, seeded, token):
    login(client, seeded["ops_key"])
    pid, w1 = seeded["id"], seeded["annotators"]["w1"]
    data = {"status": "suspended"} | ({"csrf_token": token} if token else {})
    resp = client.post(
        f"/ui/projects/{pid}/annotators/{w1['id']}/status", data=data, follow_redirects=False
    )
    assert resp.status_code == 403
    assert "security token" in unescape(resp.text)
    api = client.get(f"/v1/projects/{pid}/annotators", headers=auth(seeded["ops_key"])).json()
    assert {a["status"] for a in api} == {"active"}


def test_ops_sees_only_its_project_admin_picks_any(client, admin, seeded):
    other = new_project(client, admin, name="zebras")
    login(client, seeded["ops_key"])
    page(client, f"/ui/projects/{other['id']}", expect=404)
    w = annotator(client, other, "z1")
    page(client, f"/ui/projects/{seeded['id']}/annotators/{w['id']}", expect=404)

    client.cookies.clear()
    login(client, admin["Authorization"].removeprefix("Bearer "))
    listing = page(client, "/ui/projects")
    assert f'href="/ui/projects/{seeded["id"]}"' in listing
    assert f'href="/ui/projects/{other["id"]}"' in listing
    assert 'data-annotator="z1"' in page(client, f"/ui/projects/{other['id']}")


def test_logout_ends_the_session(client, seeded):
    login(client, seeded["ops_key"])
    html = page(client, f"/ui/projects/{seeded['id']}")
    stolen = client.cookies.get(COOKIE)
    resp = client.post("/ui/logout", data={"csrf_token": csrf(html)}, follow_redirects=False)
    assert (resp.status_code, resp.headers["location"]) == (303, "/ui/login")
    # The session is gone on the server, not only from this browser.
    client.cookies.set(COOKIE, stolen, path="/ui")
    resp = client.get(f"/ui/projects/{seeded['id']}", follow_redirects=False)
    assert (resp.status_code, resp.headers["location"]) == (303, "/ui/login")


def test_snapshot_job_records_the_readout_and_prunes_old_rows(client, seeded, runtime):
    expected = metrics(client, seeded)
    result = job_functions.snapshot_projects()
    assert result == {"taken": 1, "failed": 0, "pruned": 0}
    with runtime.db.read() as session:
        snap = session.execute(select(ProjectSnapshot)).scalar_one()
    assert snap.project_id == seeded["id"]
    assert (snap.items_queued, snap.items_routed, snap.items_done) == tuple(
        expected["items"]["by_status"][s] for s in ("queued", "routed", "done")
    )
    assert (snap.queue_crowd, snap.queue_expert) == (
        expected["queues"]["crowd"],
        expected["queues"]["expert"],
    )
    assert (snap.expert_open, snap.expert_capacity) == (1, 4)
    assert (snap.labels, snap.cost) == (10, pytest.approx(10.0))
    assert snap.agreement_alpha == pytest.approx(expected["agreement"]["krippendorff_alpha"])
    assert snap.agreement_items == expected["agreement"]["items"]

    # Retention: a snapshot older than the window is deleted by the next pass.
    later = utcnow() + timedelta(hours=2)
    result = take_snapshots(runtime.db, runtime.assignments, retention_s=3600, now=later)
    assert result == {"taken": 1, "failed": 0, "pruned": 1}
    with runtime.db.read() as session:
        left = session.execute(
            select(func.count()).where(col(ProjectSnapshot.project_id) == seeded["id"])
        ).scalar_one()
    assert left == 1


def test_scheduler_takes_snapshots_and_the_page_draws_them(client, seeded, runtime):
    assert Scheduler(30.0).run_once()["snapshot"]["taken"] == 1
    take_snapshots(
        runtime.db, runtime.assignments, retention_s=3600, now=utcnow() + timedelta(seconds=15)
    )
    login(client, seeded["ops_key"])
    html = page(client, f"/ui/projects/{seeded['id']}")
    overview = html[: html.index('id="annotators"')]
    assert "first snapshot pending" not in overview
    assert cell(overview, "data-metric", "alpha") != "\u2013"
    # Two points per series: every over-time chart draws a line (M x y L x y).
    assert len(re.findall(r'<path class="line series-0" d="M [\d.]+ [\d.]+ L', overview)) == 4


def test_agreement_is_recomputed_only_when_labels_changed_and_it_is_due(client, seeded, runtime):
    def snap(at, every):
        take_snapshots(
            runtime.db, runtime.assignments, retention_s=1e9, agreement_every_s=every, now=at
        )
        with runtime.db.read() as session:
            return session.execute(
                select(ProjectSnapshot).order_by(col(ProjectSnapshot.taken_at).desc()).limit(1)
            ).scalar_one()

    t0 = utcnow()
    first = snap(t0, 300)
    assert as_utc(first.agreement_at) == t0
    assert first.agreement_items == 1
    # No new label: carried forward, even where a computation would be due.
    assert as_utc(snap(t0 + timedelta(seconds=100), 0).agreement_at) == t0
    # A new label on a second item, but the last computation is recent: still carried.
    w2 = seeded["annotators"]["w2"]
    w1 = seeded["annotators"]["w1"]
    for who in (w2, w1):
        task = claim(client, seeded, who)
        assert task is not None
        label(client, task, who, "cat")
    carried = snap(t0 + timedelta(seconds=200), 300)
    assert (as_utc(carried.agreement_at), carried.agreement_items) == (t0, 1)
    assert carried.labels == first.labels + 2
    # Due and changed: recomputed over both items.
    fresh = snap(t0 + timedelta(seconds=400), 300)
    assert as_utc(fresh.agreement_at) == t0 + timedelta(seconds=400)
    assert fresh.agreement_items == 2


def test_revoking_the_key_ends_its_sessions(client, seeded, runtime):
    login(client, seeded["ops_key"])
    page(client, f"/ui/projects/{seeded['id']}")
    with runtime.db.session() as session:
        session.execute(
            update(ApiKey)
            .where(col(ApiKey.key_hash) == hash_key(seeded["ops_key"]))
            .values(revoked_at=utcnow())
        )
    resp = client.get(f"/ui/projects/{seeded['id']}", follow_redirects=False)
    assert (resp.status_code, resp.headers["location"]) == (303, "/ui/login")
    assert client.get(f"/ui/projects/{seeded['id']}/fragments/overview").status_code == 401


def test_the_page_assets_are_served(client):
    script = client.get("/ui/static/ui.js")
    assert script.status_code == 200
    assert "data-fragment" in script.text
    assert client.get("/ui/static/ui.css").status_code == 200
