"""How the dashboard renders: its Jinja2 templates (autoescaped, strict about undefined names),
the number formats they use, and its static files (one stylesheet, one small script)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from litestar import Router
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

__all__ = ["dashboard_static", "dashboard_templates"]

_HERE = Path(__file__).parent


def dashboard_templates() -> TemplateConfig[JinjaTemplateEngine]:
    env = Environment(
        loader=FileSystemLoader(_HERE / "templates"),
        autoescape=select_autoescape(default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = _num
    env.filters["money"] = lambda v: "-" if v is None else f"{float(v):,.2f}"
    env.filters["ratio"] = lambda v: "-" if v is None else f"{float(v):.2f}"
    env.filters["when"] = lambda v: v.strftime("%Y-%m-%d %H:%M:%S UTC")
    env.filters["json"] = _json
    return TemplateConfig(instance=JinjaTemplateEngine.from_environment(env))


def dashboard_static() -> Router:
    return create_static_files_router(
        path="/ui/static", directories=[_HERE / "static"], include_in_schema=False
    )


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}"
    return f"{int(value):,}"


def _json(value: Any) -> str:
    return json.dumps(value)
