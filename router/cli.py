"""The `labelrouter` command: serve, worker, scheduler, migrate, check-config, simulate, demo.

This is the composition root: the one module of `router` that starts code from `workers`.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]

log = logging.getLogger("labelrouter")


def _admin_key_for_embedded(var_dir: Path) -> str:
    """The embedded default keeps its generated admin key in var/, so every run can print it."""
    if os.environ.get("ROUTER_ADMIN_KEY"):
        return os.environ["ROUTER_ADMIN_KEY"]
    path = var_dir / "admin-key"
    if path.exists():
        key = path.read_text().strip()
    else:
        var_dir.mkdir(parents=True, exist_ok=True)
        key = "lr_admin_" + secrets.token_urlsafe(24)
        path.write_text(key + "\n")
        path.chmod(0o600)
    os.environ["ROUTER_ADMIN_KEY"] = key
    return key


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from router.settings import get_settings

    settings = get_settings()
    embedded = settings.redis.embedded
    admin_key = _admin_key_for_embedded(settings.var_dir) if embedded else None
    get_settings.cache_clear()
    settings = get_settings()
    if embedded and args.workers > 1:
        print(
            "--workers > 1 needs a real Redis (ROUTER_REDIS_URL): the embedded one lives in "
            "one process",
            file=sys.stderr,
        )
        return 2
    base = f"http://{args.host}:{args.port}"
    print(f"labelrouter serving on {base}")
    print(f"  OpenAPI schema: {base}/schema/openapi.json  (docs: {base}/schema)")
    if admin_key:
        print(f"  admin key:      {admin_key}")
        print(f"  try:            curl -H 'Authorization: Bearer {admin_key}' {base}/ready")
    print(f"  database:       {settings.database.url}")
    print(f"  redis:          {'in-process (embedded)' if embedded else settings.redis.url}")
    sys.stdout.flush()
    if args.workers > 1:
        uvicorn.run(
            "router.cli:production_app",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level=args.log_level,
            access_log=False,
        )
        return 0
    from router.app import create_app
    from router.heap import settle_heap
    from workers.embedded import start_embedded

    background = start_embedded if (embedded or args.with_worker) else None
    app = create_app(settings, background=background)
    settle_heap()
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False)
    return 0


def production_app() -> object:
    """Factory for multi-process serving: each process builds its own runtime."""
    from router.app import create_app
    from router.heap import settle_heap

    app = create_app()
    settle_heap()
    return app


def cmd_worker(args: argparse.Namespace) -> int:
    from router.heap import settle_heap
    from router.runtime import get_runtime
    from router.startup import prepare
    from workers.worker import run_worker

    rt = get_runtime()
    if rt.settings.redis.embedded:
        print(
            "`labelrouter worker` needs ROUTER_REDIS_URL: with the embedded Redis the worker "
            "runs inside `labelrouter serve`",
            file=sys.stderr,
        )
        return 2
    prepare(rt)
    import workers.jobs  # noqa: F401  (the job functions, imported before the heap is settled)

    settle_heap()
    run_worker(rt, burst=args.burst)
    return 0


def cmd_scheduler(args: argparse.Namespace) -> int:
    from router.runtime import get_runtime
    from router.startup import prepare
    from workers.scheduler import Scheduler

    rt = get_runtime()
    prepare(rt)
    scheduler = Scheduler(args.interval or rt.settings.reconcile_interval_s)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: scheduler.request_stop())
    if args.once:
        print(scheduler.run_once())
        return 0
    scheduler.run_forever()
    return 0


def cmd_migrate(_args: argparse.Namespace) -> int:
    from router.db.database import Database
    from router.db.migrate import upgrade
    from router.settings import get_settings

    settings = get_settings()
    db = Database(settings.database.url)
    upgrade(db)
    print(f"database schema is up to date ({settings.database.url.split('@')[-1]})")
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    from router.routing.config import check_config_file

    problems = check_config_file(Path(args.file))
    if not problems:
        print(f"{args.file}: valid routing config")
        return 0
    print(f"{args.file}: {len(problems)} problem(s)", file=sys.stderr)
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)
    return 1


def cmd_demo(args: argparse.Namespace) -> int:
    from router.demo import DemoOptions, run_demo

    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request
    opts = DemoOptions(
        items=args.items,
        seed=args.seed,
        budget=args.budget,
        port=args.port,
        host=args.host,
        var_dir=Path(args.var_dir),
        exit=args.exit,
    )
    # A plain `kill` ends the demo like Ctrl-C does: through its cleanup, which stops the
    # service it started (else that child would outlive it).
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        run_demo(opts)
    except RuntimeError as exc:  # the service would not start, or the var dir is not ours
        print(f"labelrouter demo: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="labelrouter", description=__doc__)
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--with-worker",
        action="store_true",
        help="also run a worker and the scheduler in this process "
        "(always on with the embedded Redis)",
    )
    serve.add_argument("--workers", type=int, default=1, help="API processes (needs real Redis)")
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser("worker", help="run an RQ worker process")
    worker.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    worker.set_defaults(func=cmd_worker)

    scheduler = sub.add_parser("scheduler", help="run periodic maintenance (the reconciler)")
    scheduler.add_argument("--interval", type=float, default=None)
    scheduler.add_argument("--once", action="store_true", help="one pass, then exit")
    scheduler.set_defaults(func=cmd_scheduler)

    migrate = sub.add_parser("migrate", help="create or upgrade the database schema")
    migrate.set_defaults(func=cmd_migrate)

    check = sub.add_parser("check-config", help="validate a routing config file")
    check.add_argument("file")
    check.set_defaults(func=cmd_check_config)

    from router.simulate.command import add_parser as add_simulate

    add_simulate(sub)
    demo = sub.add_parser(
        "demo",
        help="a simulated labeling campaign over the real API, with a report against baselines",
    )
    demo.add_argument("--items", type=int, default=800, help="items to label (default 800)")
    demo.add_argument("--seed", type=int, default=1)
    demo.add_argument(
        "--budget", type=float, default=None, help="stop once this much is spent (cost units)"
    )
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000, help="a free one is used if busy")
    demo.add_argument("--var-dir", default="var/demo", help="the demo service's own (emptied)")
    demo.add_argument("--exit", action="store_true", help="stop the service after the report")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from router.queueing.connection import RedisMisconfigured
        from router.startup import SchemaOutdated

        if isinstance(exc, RedisMisconfigured | SchemaOutdated):
            print(f"labelrouter: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
