"""GET /metrics: Prometheus text, latency per route template, state gauges read at scrape time,
and correct sums across processes in multiprocess mode."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from redis.exceptions import ConnectionError as RedisConnectionError

from router.observability import metrics
from router.queueing.assignments import AssignmentStore
from tests.conftest import auth
from tests.integration.helpers import hard_item, ingest, new_project, ordinary_item

ROOT = Path(__file__).resolve().parents[2]
LATENCY = "labelrouter_http_request_duration_seconds"


def _scrape(client) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    resp = client.get("/metrics")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain")
    assert resp.headers["content-type"].count("charset") == 1
    return _samples(resp.text)


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _get(samples, name, **labels) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def test_metrics_need_no_key_and_count_requests_by_route_template(client, admin, jobs):
    project = new_project(client, admin)
    pid = project["id"]
    iid = ingest(client, project, [ordinary_item("a")])["items"][0]["id"]
    before = _scrape(client)
    route = "/v1/projects/{pid}/items/{iid}"
    n_ok = _get(before, f"{LATENCY}_count", method="GET", route=route, status_class="2xx") or 0
    n_404 = _get(before, f"{LATENCY}_count", method="GET", route=route, status_class="4xx") or 0
    for _ in range(3):
        resp = client.get(f"/v1/projects/{pid}/items/{iid}", headers=auth(project["ops_key"]))
        assert resp.status_code == 200
    missing = client.get(f"/v1/projects/{pid}/items/nope", headers=auth(project["ops_key"]))
    assert missing.status_code == 404
    resp = client.get("/metrics")
    text = resp.text
    after = _samples(text)
    assert (
        _get(after, f"{LATENCY}_count", method="GET", route=route, status_class="2xx") == n_ok + 3
    )
    assert (
        _get(after, f"{LATENCY}_count", method="GET", route=route, status_class="4xx") == n_404 + 1
    )
    assert _get(
        after, f"{LATENCY}_bucket", method="GET", route=route, status_class="2xx", le="+Inf"
    ) == (n_ok + 3)
    # Route templates, never raw paths: no identifier of an item or project in a route label.
    routes = {dict(labels).get("route") for (name, labels) in after if name.startswith(LATENCY)}
    assert route in routes
    assert not any(iid in r or pid in r or "nope" in r for r in routes if r)
    # Paths that match no route are not counted at all.
    assert client.get("/no/such/path").status_code == 404
    assert "/no/such/path" not in client.get("/metrics").text


def test_state_gauges_are_read_at_scrape_time(client, admin, jobs):
    project = new_project(client, admin)
    pid = project["id"]
    ingest(client, project, [ordinary_item(f"o{i}") for i in range(3)] + [hard_item("h")])
    samples = _scrape(client)
    assert _get(samples, "labelrouter_items", project=pid, status="queued", tier="none") == 4
    assert _get(samples, "labelrouter_jobs", state="queued") == 1
    jobs()
    samples = _scrape(client)
    assert _get(samples, "labelrouter_items", project=pid, status="queued", tier="none") is None
    assert _get(samples, "labelrouter_items", project=pid, status="routed", tier="crowd") == 3
    assert _get(samples, "labelrouter_items", project=pid, status="routed", tier="expert") == 1
    assert _get(samples, "labelrouter_queue_depth", project=pid, tier="crowd") == 3
    assert _get(samples, "labelrouter_queue_depth", project=pid, tier="expert") == 1
    assert _get(samples, "labelrouter_jobs", state="queued") == 0
    for state in ("started", "scheduled", "deferred", "failed"):
        assert _get(samples, "labelrouter_jobs", state=state) == 0
    assert _get(samples, "labelrouter_scrape_source_up", source="database") == 1
    assert _get(samples, "labelrouter_scrape_source_up", source="redis") == 1
    # Every project shows, even one without items.
    empty = new_project(client, admin, name="empty")
    samples = _scrape(client)
    assert _get(samples, "labelrouter_queue_depth", project=empty["id"], tier="crowd") == 0


def test_declared_counters_start_at_zero(client):
    samples = _scrape(client)
    for tier in ("crowd", "expert", "gold"):
        assert _get(samples, "labelrouter_labels_submitted_total", tier=tier) is not None
    assert _get(samples, "labelrouter_leases_expired_total") is not None
    for tier in ("crowd", "expert"):
        assert _get(samples, "labelrouter_gold_served_total", annotator_tier=tier) is not None
    for job in ("score_batch", "update_consensus", "reconcile", "reap_leases"):
        assert _get(samples, "labelrouter_jobs_processed_total", job=job) is not None
        assert _get(samples, "labelrouter_jobs_failed_total", job=job) is not None
    for outcome in ("delivered", "failed", "abandoned"):
        assert (
            _get(
                samples,
                "labelrouter_webhook_deliveries_total",
                event="item.settled",
                outcome=outcome,
            )
            is not None
        )
    # Incrementing shows at the next scrape.
    before = _get(samples, "labelrouter_labels_submitted_total", tier="expert") or 0
    metrics.LABELS_SUBMITTED.labels(tier="expert").inc()
    after = _get(_scrape(client), "labelrouter_labels_submitted_total", tier="expert")
    assert after == before + 1


def test_a_source_that_is_down_does_not_fail_the_scrape(client, admin, runtime, monkeypatch):
    project = new_project(client, admin)
    ingest(client, project, [ordinary_item("a")])

    def down(_self, _project_id):
        raise RedisConnectionError("connection refused")

    monkeypatch.setattr(AssignmentStore, "depths", down)
    samples = _scrape(client)
    assert _get(samples, "labelrouter_scrape_source_up", source="redis") == 0
    assert _get(samples, "labelrouter_scrape_source_up", source="database") == 1
    assert not any(name == "labelrouter_queue_depth" for name, _ in samples)
    assert _get(samples, "labelrouter_items", project=project["id"], status="queued", tier="none")


def test_openmetrics_when_the_scraper_asks_for_it(client):
    resp = client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/openmetrics-text")
    assert resp.text.rstrip().endswith("# EOF")


def test_metrics_sum_over_processes_in_multiprocess_mode(tmp_path):
    """Two processes count into PROMETHEUS_MULTIPROC_DIR; a third one's scrape reports the
    sums (as the API's /metrics does when the variable is set)."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    count = textwrap.dedent(
        """
        import sys
        from router.observability import metrics
        n = int(sys.argv[1])
        for _ in range(n):
            metrics.LABELS_SUBMITTED.labels(tier="crowd").inc()
        metrics.REQUEST_LATENCY.labels("GET", "/v1/x/{pid}", "2xx").observe(0.02 * n)
        """
    )
    for n in (2, 3):
        subprocess.run([sys.executable, "-c", count, str(n)], env=env, cwd=ROOT, check=True)
    scrape = textwrap.dedent(
        """
        import sys
        from router.observability import metrics
        body, content_type = metrics.render(None)
        sys.stdout.write(body.decode())
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", scrape],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    samples = _samples(out)
    assert _get(samples, "labelrouter_labels_submitted_total", tier="crowd") == 5
    assert _get(samples, "labelrouter_labels_submitted_total", tier="expert") == 0
    labels = {"method": "GET", "route": "/v1/x/{pid}", "status_class": "2xx"}
    assert _get(samples, f"{LATENCY}_count", **labels) == 2
    assert abs(_get(samples, f"{LATENCY}_sum", **labels) - 0.1) < 1e-9
    assert len(list(tmp_path.iterdir())) >= 2  # one file per process and metric type
