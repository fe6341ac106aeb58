"""ROUTER_MAX_BODY_BYTES holds on every route that reads a body, whatever its format."""

from __future__ import annotations

import pytest

from tests.conftest import auth
from tests.integration.helpers import annotator, ingest, new_project, ordinary_item


def _body_routes(app):
    for route in app.routes:
        for handler in route.route_handlers:
            for method in handler.http_methods & {"POST", "PUT", "PATCH", "DELETE"}:
                yield method, route.path


@pytest.mark.parametrize("content_type", ["application/json", "application/x-ndjson"])
def test_every_route_refuses_a_body_over_the_limit(client, admin, app, runtime, content_type):
    project = new_project(client, admin)
    ann = annotator(client, project, "ann-1")
    item_id = ingest(client, project, [ordinary_item("i")])["items"][0]["id"]
    limit = runtime.settings.limits.max_body_bytes
    # Valid JSON, one byte over the limit: only the size is wrong.
    line = b'{"items": [], "pad": "' + b"x" * limit + b'"}\n'
    values = {"pid": project["id"], "aid": ann["id"], "iid": item_id, "kid": "k"}
    routes = sorted(_body_routes(app))
    assert len(routes) >= 12
    for method, template in routes:
        path = template
        for name, value in values.items():
            path = path.replace(f"{{{name}:str}}", value)
        headers = {**admin, "Content-Type": content_type}
        if "/tasks/next" in path or path.startswith("/v1/assignments/"):
            headers["X-Annotator"] = "ann-1"
        resp = client.request(method, path, content=line, headers=headers)
        assert resp.status_code == 413, (method, template, resp.status_code, resp.text[:200])
        if path.startswith("/ui"):  # the dashboard answers a browser with an HTML page
            assert "ROUTER_MAX_BODY_BYTES" in resp.text, (method, template, resp.text[:300])
            continue
        body = resp.json()
        assert body["status_code"] == 413
        assert "ROUTER_MAX_BODY_BYTES" in body["detail"]


def test_a_body_under_the_limit_is_read(client, project, runtime):
    resp = client.post(
        f"/v1/projects/{project['id']}/items",
        json={"items": [ordinary_item("ok")]},
        headers=auth(project["producer_key"]),
    )
    assert resp.status_code == 202


def test_a_chunked_ndjson_body_without_length_is_cut_at_the_limit(client, project, runtime):
    limit = runtime.settings.limits.max_body_bytes
    line = b'{"external_id": "x", "payload": {"t": "' + b"y" * 1000 + b'"}}\n'

    def chunks():
        sent = 0
        while sent <= limit:
            yield line
            sent += len(line)

    resp = client.post(
        f"/v1/projects/{project['id']}/items",
        content=chunks(),
        headers={**auth(project["producer_key"]), "Content-Type": "application/x-ndjson"},
    )
    assert resp.status_code == 413, resp.text[:200]
    assert "ROUTER_MAX_BODY_BYTES" in resp.json()["detail"]
