"""docker-compose.yml (the production shape) agrees with the CLI and with the service's needs.

No Docker engine is needed: the file is loaded as YAML and every `labelrouter ...` command is
parsed with the real CLI parser, so a renamed subcommand or flag breaks this test, not a deploy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from router.cli import build_parser

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
APP_SERVICES = ("api", "worker", "scheduler")
LABELROUTER_SERVICES = ("migrate", *APP_SERVICES)


@pytest.fixture(name="compose", scope="module")
def fx_compose() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(doc, dict)
    return doc


@pytest.fixture(name="services", scope="module")
def fx_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _subcommands() -> set[str]:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if a.dest == "command"]
    return set(sub.choices)


def test_expected_services(services):
    assert set(services) >= {"redis", "postgres", *LABELROUTER_SERVICES}


@pytest.mark.parametrize("name", LABELROUTER_SERVICES)
def test_command_parses_with_the_cli(services, name):
    cmd = services[name]["command"]
    assert isinstance(cmd, list), "use the exec form so no shell sits between Docker and the app"
    assert cmd[0] == "labelrouter"
    assert cmd[1] in _subcommands(), f"{name}: {cmd[1]!r} is not a labelrouter subcommand"
    args = build_parser().parse_args(cmd[1:])
    assert args.command == cmd[1]


def test_every_labelrouter_command_is_checked(services):
    """No service runs labelrouter without being in the parametrized list above."""
    runs_labelrouter = {
        name
        for name, svc in services.items()
        if isinstance(svc.get("command"), list) and svc["command"][:1] == ["labelrouter"]
    }
    assert runs_labelrouter == set(LABELROUTER_SERVICES)


def test_api_serves_on_all_interfaces_with_several_processes(services):
    args = build_parser().parse_args(services["api"]["command"][1:])
    assert args.host == "0.0.0.0"
    assert args.port == 8000
    assert args.workers == 2
    assert any(str(p).split(":")[-1] == "8000" for p in services["api"]["ports"])
    assert "/ready" in " ".join(services["api"]["healthcheck"]["test"])


def test_redis_never_evicts_and_persists(services):
    redis = services["redis"]
    cmd = redis["command"]
    cmd = cmd.split() if isinstance(cmd, str) else list(cmd)
    assert cmd[cmd.index("--maxmemory-policy") + 1] == "noeviction"
    assert cmd[cmd.index("--appendonly") + 1] == "yes"
    assert redis.get("volumes"), "Redis data must live on a volume"
    assert "redis-cli" in " ".join(redis["healthcheck"]["test"])


def test_postgres(services):
    pg = services["postgres"]
    env = pg["environment"]
    assert env["POSTGRES_DB"] == env["POSTGRES_USER"] == env["POSTGRES_PASSWORD"] == "labelrouter"
    assert pg.get("volumes")
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])


def test_app_services_share_the_environment(compose, services):
    shared = compose["x-env"]
    assert shared["ROUTER_DATABASE_URL"] == (
        "postgresql+psycopg://labelrouter:labelrouter@postgres:5432/labelrouter"
    )
    assert shared["ROUTER_REDIS_URL"] == "redis://redis:6379/0"
    assert shared["ROUTER_ADMIN_KEY"].startswith("${ROUTER_ADMIN_KEY:?")
    for name in LABELROUTER_SERVICES:
        assert services[name]["environment"] == shared, name


def test_migrate_is_a_one_shot_dependency(services):
    migrate = services["migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "deploy" not in migrate or migrate["deploy"].get("replicas", 1) == 1
    for name in APP_SERVICES:
        deps = services[name]["depends_on"]
        assert deps["migrate"]["condition"] == "service_completed_successfully", name
        assert deps["redis"]["condition"] == "service_healthy", name


def test_worker_replicas(services):
    assert services["worker"]["deploy"]["replicas"] == 2
