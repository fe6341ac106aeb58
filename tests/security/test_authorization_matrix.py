"""Every endpoint x every role x own/other project and own/other annotator's objects.

The table `RULES` names who may call each route. Routes are enumerated from the app itself:
a new endpoint without an entry here fails `test_every_route_has_a_rule`, so nobody can add
one without deciding who may call it. Expected answers (API.md, "Authentication and roles"):
no, unknown or revoked key 401; another project's object, or another annotator's assignment,
404 (whatever the role: nothing reveals that it exists); a known key of the wrong role 403;
otherwise the request is served (any answer but 401/403/404, never a 5xx).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.conftest import auth
from tests.integration.helpers import annotator, claim, ingest, new_project, ordinary_item, quiet

KEYED = ("admin", "ops", "producer", "tool", "annotator")
UNKEYED = ("none", "unknown", "revoked")
ROLES = KEYED + UNKEYED
PROJECT_KEYS = frozenset({"ops", "producer", "tool", "annotator"})


@dataclass(frozen=True)
class Rule:
    allowed: frozenset[str]
    """Roles that may call it (admin always may)."""
    objects: tuple[str, ...] = ("own",)
    """Which object cases apply: own, other (another project's object under this project's
    path), other_annotator (an assignment of another annotator of the project), other_project
    (an assignment of another project), foreign_actor (a tool naming another project's
    annotator in X-Annotator)."""
    body: Any = None
    project_scoped: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


def _r(*roles: str, **kw: Any) -> Rule:
    return Rule(allowed=frozenset(roles) | {"admin"}, **kw)


_WORK = ("own", "other_annotator", "other_project", "foreign_actor")

RULES: dict[tuple[str, str], Rule] = {
    ("POST", "/v1/projects"): _r(body="project", project_scoped=False),
    ("GET", "/v1/projects/{pid:str}"): _r(*PROJECT_KEYS),
    ("POST", "/v1/projects/{pid:str}/keys"): _r(body={"role": "producer", "name": "k"}),
    ("GET", "/v1/projects/{pid:str}/keys"): _r("ops"),
    ("DELETE", "/v1/projects/{pid:str}/keys/{kid:str}"): _r("ops", objects=("own", "other")),
    ("GET", "/v1/projects/{pid:str}/routing-config"): _r("ops"),
    ("PUT", "/v1/projects/{pid:str}/routing-config"): _r("ops", body={"config": {}}),
    ("POST", "/v1/projects/{pid:str}/routing-config/preview"): _r("ops", body={"config": {}}),
    ("POST", "/v1/projects/{pid:str}/annotators"): _r("ops", body="annotator"),
    ("GET", "/v1/projects/{pid:str}/annotators"): _r("ops"),
    ("PATCH", "/v1/projects/{pid:str}/annotators/{aid:str}"): _r(
        "ops", objects=("own", "other"), body={"tier": "crowd"}
    ),
    ("GET", "/v1/projects/{pid:str}/annotators/{aid:str}/quality"): _r(
        "ops", objects=("own", "other")
    ),
    ("POST", "/v1/projects/{pid:str}/annotators/{aid:str}/key"): _r(
        "ops", objects=("own", "other")
    ),
    ("POST", "/v1/projects/{pid:str}/items"): _r("producer", "ops", body="items"),
    ("GET", "/v1/projects/{pid:str}/items"): _r("producer", "ops"),
    ("GET", "/v1/projects/{pid:str}/items/{iid:str}"): _r(
        "producer", "ops", objects=("own", "other")
    ),
    ("POST", "/v1/projects/{pid:str}/gold"): _r("ops", body="gold"),
    ("POST", "/v1/projects/{pid:str}/tasks/next"): _r(
        "annotator", "tool", objects=("own", "foreign_actor")
    ),
    ("POST", "/v1/assignments/{aid:str}/label"): _r(
        "annotator", "tool", objects=_WORK, body={"label": "cat"}, project_scoped=False
    ),
    ("POST", "/v1/assignments/{aid:str}/release"): _r(
        "annotator", "tool", objects=_WORK, project_scoped=False
    ),
    ("GET", "/v1/audit"): _r(project_scoped=False),
    ("GET", "/v1/projects/{pid:str}/audit"): _r("ops"),
    ("GET", "/v1/projects/{pid:str}/export"): _r("ops", "producer"),
    ("GET", "/v1/projects/{pid:str}/metrics"): _r("ops"),
    ("POST", "/v1/projects/{pid:str}/quality/refit"): _r("ops"),
    ("POST", "/v1/projects/{pid:str}/webhooks"): _r("ops", body="webhook"),
    ("GET", "/v1/projects/{pid:str}/webhooks"): _r("ops"),
    ("GET", "/v1/projects/{pid:str}/webhooks/{hid:str}"): _r("ops", objects=("own", "other")),
    ("PATCH", "/v1/projects/{pid:str}/webhooks/{hid:str}"): _r(
        "ops", objects=("own", "other"), body={"active": False}
    ),
    ("DELETE", "/v1/projects/{pid:str}/webhooks/{hid:str}"): _r("ops", objects=("own", "other")),
    ("GET", "/v1/projects/{pid:str}/webhooks/{hid:str}/deliveries"): _r(
        "ops", objects=("own", "other")
    ),
    ("POST", "/v1/projects/{pid:str}/webhooks/{hid:str}/rotate-secret"): _r(
        "ops", objects=("own", "other")
    ),
}

PUBLIC = {("GET", "/health"), ("GET", "/ready"), ("GET", "/metrics")}
"""No key needed: liveness, readiness and the Prometheus scrape."""

UI_OPEN = {("GET", "/ui"), ("GET", "/ui/login"), ("POST", "/ui/login")}
"""The dashboard's doors: the login form and the redirect to it."""
UI_STATIC = ("GET", "/ui/static/{file_path:path}")
UI_SESSION = {
    ("GET", "/ui/projects"),
    ("GET", "/ui/projects/{pid:str}"),
    ("GET", "/ui/projects/{pid:str}/annotators/{aid:str}"),
    ("GET", "/ui/projects/{pid:str}/fragments/{name:str}"),
    ("POST", "/ui/logout"),
    ("POST", "/ui/projects/{pid:str}/annotators/{aid:str}/status"),
}
"""The dashboard's pages take a session cookie, not a bearer key: without one they send the
browser to the login form (roles and CSRF: tests/integration/test_dashboard.py)."""


def _app_routes(app: Any) -> set[tuple[str, str]]:
    out = set()
    for route in app.routes:
        for handler in route.route_handlers:
            for method in handler.http_methods:
                if method in ("OPTIONS", "HEAD") or route.path.startswith("/schema"):
                    continue
                out.add((method, route.path))
    return out


def test_every_route_has_a_rule(app):
    routes = _app_routes(app)
    known = set(RULES) | PUBLIC | UI_OPEN | UI_SESSION | {UI_STATIC}
    missing = sorted(routes - known)
    assert not missing, f"routes without an authorization rule in RULES: {missing}"
    stale = sorted(known - routes)
    assert not stale, f"RULES names routes the app does not have: {stale}"


class World:
    """Two projects, annotators and assignments in each, and one key per role."""

    def __init__(self, client: Any, admin: dict[str, str]) -> None:
        self.client = client
        self.admin = admin
        self.a = new_project(client, admin, name="a", routing=quiet())
        self.b = new_project(client, admin, name="b", routing=quiet())
        self.a1 = annotator(client, self.a, "ann-1")
        self.a2 = annotator(client, self.a, "ann-2")
        self.a_spare = annotator(client, self.a, "ann-spare")
        self.b1 = annotator(client, self.b, "b-only")
        self.counter = itertools.count()
        self.a_item = ingest(client, self.a, [ordinary_item(f"a{i}") for i in range(6)])
        self.b_item = ingest(client, self.b, [ordinary_item(f"b{i}") for i in range(6)])
        revoked = self.new_key(self.a)
        gone = client.delete(f"/v1/projects/{self.a['id']}/keys/{revoked['id']}", headers=admin)
        assert gone.status_code == 200, gone.text
        self.keys = {
            "admin": admin,
            "ops": auth(self.a["ops_key"]),
            "producer": auth(self.a["producer_key"]),
            "tool": auth(self.a["tool_key"]),
            "annotator": auth(self.a1["api_key"]),
            "none": {},
            "unknown": auth("lr_nobody_ever_made_this_key"),
            "revoked": auth(revoked["key"]),
        }

    def route_items(self, jobs: Any) -> None:
        jobs()
        self.own_assignment = claim(self.client, self.a, self.a1)
        self.other_assignment = claim(self.client, self.a, self.a2)
        self.foreign_assignment = claim(self.client, self.b, self.b1)
        for task in (self.own_assignment, self.other_assignment, self.foreign_assignment):
            assert task is not None

    def new_key(self, project: dict[str, Any]) -> dict[str, Any]:
        resp = self.client.post(
            f"/v1/projects/{project['id']}/keys",
            json={"role": "producer", "name": f"k{next(self.counter)}"},
            headers=self.admin,
        )
        assert resp.status_code == 201, resp.text
        body: dict[str, Any] = resp.json()
        return body

    def new_hook(self, project: dict[str, Any]) -> dict[str, Any]:
        resp = self.client.post(
            f"/v1/projects/{project['id']}/webhooks",
            json=self.body("webhook"),
            headers=self.admin,
        )
        assert resp.status_code == 201, resp.text
        body: dict[str, Any] = resp.json()
        return body

    def body(self, spec: Any) -> Any:
        n = next(self.counter)
        if spec == "project":
            return {
                "name": f"p{n}",
                "label_schema": {"kind": "categorical", "classes": ["x", "y"]},
                "rubric_version": "r1",
            }
        if spec == "annotator":
            return {"external_id": f"new-{n}", "tier": "crowd"}
        if spec == "items":
            return {"items": [ordinary_item(f"new-{n}")]}
        if spec == "webhook":
            return {"url": f"http://127.0.0.1:9/hook-{n}", "events": ["item.settled"]}
        if spec == "gold":
            return {"items": [{"external_id": f"g{n}", "payload": {"t": n}, "answer": "cat"}]}
        return spec

    def request(self, method: str, template: str, rule: Rule, role: str, case: str) -> Any:
        """Send the request of this (route, role, case); returns the response."""
        project = self.b if case == "other_project_path" else self.a
        other = self.b
        path = template.replace("{pid:str}", project["id"])
        headers = dict(self.keys[role])
        if "{iid:str}" in path:
            iid = other if case == "other" else project
            item_id = (self.b_item if case == "other" else self.a_item)["items"][0]["id"]
            path = path.replace("{iid:str}", item_id)
            del iid
        if "{kid:str}" in path:
            path = path.replace(
                "{kid:str}", self.new_key(other if case == "other" else project)["id"]
            )
        if "{hid:str}" in path:
            path = path.replace(
                "{hid:str}", self.new_hook(other if case == "other" else project)["id"]
            )
        if template.startswith("/v1/projects/{pid:str}/annotators/{aid:str}"):
            target = self.b1 if case == "other" else self.a_spare
            path = path.replace("{aid:str}", target["id"])
        if template.startswith("/v1/assignments/"):
            task = {
                "own": self.own_assignment,
                "foreign_actor": self.own_assignment,
                "other_annotator": self.other_assignment,
                "other_project": self.foreign_assignment,
            }[case]
            path = path.replace("{aid:str}", task["assignment_id"])
        work = template.endswith("/tasks/next") or template.startswith("/v1/assignments/")
        if work and role in ("tool", "admin"):
            acting = self.b1 if case == "foreign_actor" else self.a1
            headers["X-Annotator"] = acting["external_id"]
        body = self.body(rule.body)
        return self.client.request(method, path, json=body, headers=headers)


def expected(rule: Rule, role: str, case: str) -> int | None:
    """401/403/404, or None for 'served' (anything else, but not a 5xx)."""
    if role in UNKEYED:
        return 401
    if case == "other_project_path" and role != "admin":
        return 404
    if role not in rule.allowed:
        if case == "other_project" and rule.project_scoped is False and role != "admin":
            return 404  # another project's assignment: absent, whatever the role
        return 403
    if case in ("other", "other_annotator", "other_project", "foreign_actor"):
        return 404
    return None


def _cases(rule: Rule, role: str) -> list[str]:
    cases = list(rule.objects)
    if rule.project_scoped and role != "admin":
        cases.append("other_project_path")
    if "foreign_actor" in cases and role not in ("tool", "admin"):
        cases.remove("foreign_actor")  # only a tool (or admin) names the annotator it acts for
    return cases


def test_authorization_matrix(client, admin, jobs):
    world = World(client, admin)
    world.route_items(jobs)
    failures = []
    checked = 0
    # Refusals first: they must change nothing, so the served requests after them still apply.
    plan = [
        (method, template, rule, role, case)
        for (method, template), rule in RULES.items()
        for role in ROLES
        for case in _cases(rule, role)
    ]
    plan.sort(key=lambda p: expected(p[2], p[3], p[4]) is None)
    for method, template, rule, role, case in plan:
        want = expected(rule, role, case)
        resp = world.request(method, template, rule, role, case)
        checked += 1
        got = resp.status_code
        ok = got == want if want is not None else got not in (401, 403, 404) and got < 500
        if not ok:
            failures.append(
                f"{method} {template} as {role} ({case}): {got}, "
                f"want {want or 'served'}: {resp.text[:160]}"
            )
        elif want is not None:
            assert resp.json()["status_code"] == want
    assert not failures, "\n".join(failures)
    assert checked > 250


def test_refusals_do_not_reveal_existence(client, admin, jobs):
    """Another project's object answers exactly like an object that does not exist."""
    world = World(client, admin)
    world.route_items(jobs)
    ops = auth(world.a["ops_key"])
    pid = world.a["id"]
    foreign_item = world.b_item["items"][0]["id"]
    a = client.get(f"/v1/projects/{pid}/items/{foreign_item}", headers=ops).json()["detail"]
    b = client.get(f"/v1/projects/{pid}/items/nosuchitem000000", headers=ops).json()["detail"]
    assert a.replace(foreign_item, "?") == b.replace("nosuchitem000000", "?")
    mine = auth(world.a1["api_key"])
    theirs = world.other_assignment["assignment_id"]
    x = client.post(f"/v1/assignments/{theirs}/label", json={"label": "cat"}, headers=mine)
    y = client.post("/v1/assignments/nosuchassignment/label", json={"label": "cat"}, headers=mine)
    assert x.status_code == y.status_code == 404
    assert x.json()["detail"].replace(theirs, "?") == y.json()["detail"].replace(
        "nosuchassignment", "?"
    )
    # And the other annotator's assignment is untouched: its own annotator can still label it.
    ok = client.post(
        f"/v1/assignments/{theirs}/label", json={"label": "dog"}, headers=auth(world.a2["api_key"])
    )
    assert ok.status_code == 201, ok.text


@pytest.mark.parametrize("role", ["ops", "producer", "annotator", "tool"])
def test_project_keys_cannot_create_projects_or_read_the_global_audit(client, admin, role, jobs):
    world = World(client, admin)
    headers = world.keys[role]
    assert (
        client.post("/v1/projects", json=world.body("project"), headers=headers).status_code == 403
    )
    assert client.get("/v1/audit", headers=headers).status_code == 403


def test_dashboard_pages_need_a_session(client, admin):
    """A bearer key, of any role, opens no dashboard page: only the login form's session does."""
    world = World(client, admin)
    pid, aid = world.a["id"], world.a_spare["id"]
    for method, template in sorted(UI_SESSION):
        path = template.replace("{pid:str}", pid).replace("{aid:str}", aid)
        path = path.replace("{name:str}", "overview")
        for role in ROLES:
            resp = client.request(
                method,
                path,
                headers=world.keys[role],
                data={"status": "suspended"},
                follow_redirects=False,
            )
            assert resp.status_code in (303, 401, 403), (method, path, role, resp.status_code)
            if resp.status_code == 303:
                assert resp.headers["location"] == "/ui/login", (method, path, role)
    spare = client.get(f"/v1/projects/{pid}/annotators", headers=admin).json()
    assert all(a["status"] == "active" for a in spare if a["id"] == aid)
