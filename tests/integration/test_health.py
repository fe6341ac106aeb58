"""Liveness, readiness and the served OpenAPI schema."""

from __future__ import annotations

from redis.exceptions import ConnectionError as RedisConnectionError


def test_health_needs_no_key(client):
    resp = client.get("/health")
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok"}


def test_ready_reports_its_checks(client):
    resp = client.get("/ready")
    assert resp.status_code == 200
    assert resp.json() == {"status": "ready", "checks": {"database": "ok", "redis": "ok"}}


def test_not_ready_when_redis_is_unreachable(client, runtime, monkeypatch):
    def down():
        raise RedisConnectionError("Connection refused")

    monkeypatch.setattr(runtime.redis, "ping", down)
    resp = client.get("/ready")
    assert resp.status_code == 503
    body = resp.json()
    assert body["status"] == "not ready"
    assert body["checks"]["database"] == "ok"
    assert "unreachable" in body["checks"]["redis"]


CONTRACT_PATHS = {
    "/v1/projects": {"post"},
    "/v1/projects/{pid}": {"get"},
    "/v1/projects/{pid}/keys": {"post"},
    "/v1/projects/{pid}/annotators": {"post", "get"},
    "/v1/projects/{pid}/annotators/{aid}": {"patch"},
    "/v1/projects/{pid}/items": {"post", "get"},
    "/v1/projects/{pid}/items/{iid}": {"get"},
    "/health": {"get"},
    "/ready": {"get"},
}


def test_openapi_schema_lists_the_contract(client):
    resp = client.get("/schema/openapi.json")
    assert resp.status_code == 200
    schema = resp.json()
    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"] == "labelrouter"
    paths = schema["paths"]
    for path, methods in CONTRACT_PATHS.items():
        assert path in paths, f"{path} missing from the OpenAPI schema"
        assert methods <= set(paths[path]), (path, sorted(paths[path]))
    ingest = paths["/v1/projects/{pid}/items"]["post"]
    assert "202" in ingest["responses"]
    assert "NDJSON" in ingest["summary"] + ingest.get("description", "")
