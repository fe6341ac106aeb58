"""HTTP: /ui, the ops dashboard (server-rendered HTML; the page re-fetches its fragments).

Log in with an ops key (its project) or an admin key (any project); the session is kept in
Redis and named by an HttpOnly, SameSite=Strict cookie. Forms that change state carry the
session's CSRF token. Pages use the same services, and so the same access rules, as the API.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlsplit

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import ResponseHeader, State
from litestar.di import NamedDependency, Provide
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath
from litestar.response import Redirect, Template

from router.annotators.service import update_annotator
from router.auth.keys import Role
from router.auth.principal import Principal
from router.deps import RuntimeDep
from router.errors import AuthenticationRequired, Forbidden, NotFound
from router.projects.service import list_projects
from router.runtime import Runtime
from router.ui import views
from router.ui.sessions import COOKIE, LoginRequired, SessionStore, UISession

__all__ = ["DashboardController"]

_FRAGMENTS = ("overview", "annotators", "history")
_UI_ROLES = (Role.OPS, Role.ADMIN)
_HEADERS = [
    # Everything the page loads is its own: no inline script, no other origin, no framing.
    ResponseHeader(
        name="Content-Security-Policy",
        value="default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
        "form-action 'self'; base-uri 'none'",
    ),
    ResponseHeader(name="Cache-Control", value="no-store"),
    ResponseHeader(name="Referrer-Policy", value="same-origin"),
    ResponseHeader(name="X-Content-Type-Options", value="nosniff"),
]


@dataclass(frozen=True, slots=True)
class Viewer:
    """The logged-in caller of a dashboard page."""

    principal: Principal
    session: UISession

    @property
    def is_admin(self) -> bool:
        return self.principal.role is Role.ADMIN


@dataclass
class LoginForm:
    api_key: str = ""


@dataclass
class StatusForm:
    status: str = ""
    csrf_token: str = ""
    reason: str = ""
    return_to: str = ""
    """"annotator" to come back to the annotator's page; the dashboard otherwise."""


@dataclass
class CsrfForm:
    csrf_token: str = ""


ViewerDep = NamedDependency[Viewer]


def _sessions(runtime: Runtime) -> SessionStore:
    return SessionStore(runtime.redis)


def provide_viewer(request: Request[Any, Any, State]) -> Viewer:
    runtime: Runtime = request.app.state.runtime
    session = _sessions(runtime).load(request.cookies.get(COOKIE))
    try:
        principal = runtime.keys.resolve_id(session.key_id)
    except AuthenticationRequired as exc:
        _sessions(runtime).destroy(session.token)
        raise LoginRequired(exc.detail) from None
    return Viewer(principal=principal, session=session)


def ui_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Errors as pages: the status and message of the API's one error handler, in HTML."""
    from router.app import handle_error  # the app module imports this one

    inner = exc
    while isinstance(inner, BaseExceptionGroup) and len(inner.exceptions) == 1:
        if not isinstance(inner.exceptions[0], Exception):
            break
        inner = inner.exceptions[0]
    fragment = "/fragments/" in request.url.path
    if isinstance(inner, LoginRequired) and request.method == "GET" and not fragment:
        return Redirect("/ui/login", status_code=303)
    mapped = handle_error(request, exc)
    body: dict[str, Any] = mapped.content
    return Template(
        template_name="error.html",
        context={
            "status": body["status_code"],
            "detail": body["detail"],
            "viewer": None,
            "project": None,
        },
        status_code=body["status_code"],
    )


class DashboardController(Controller):
    path = "/ui"
    include_in_schema = False
    response_headers = _HEADERS
    exception_handlers = {Exception: ui_error}  # noqa: RUF012
    dependencies = {"viewer": Provide(provide_viewer, sync_to_thread=True)}  # noqa: RUF012

    @get("/", sync_to_thread=False)
    def home(self, request: Request[Any, Any, Any]) -> Redirect:
        target = "/ui/projects" if request.cookies.get(COOKIE) else "/ui/login"
        return Redirect(target, status_code=303)

    @get("/login", sync_to_thread=False)
    def login_page(self) -> Template:
        return _login_page(None, 200)

    @post("/login", sync_to_thread=True, status_code=303)
    def login(
        self,
        request: Request[Any, Any, Any],
        runtime: RuntimeDep,
        data: Annotated[LoginForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Response[Any]:
        # No session yet, so no CSRF token: a login posted from another site (which would log
        # the browser in as someone else) is told apart by the Origin browsers send.
        # Behind a proxy that rewrites Host, the proxy's X-Forwarded-Host names the site.
        origin = request.headers.get("origin")
        hosts = {request.headers.get("host"), request.headers.get("x-forwarded-host")}
        if origin and urlsplit(origin).netloc not in hosts:
            raise Forbidden("log in from the dashboard's own login page")
        try:
            principal = runtime.keys.resolve(f"Bearer {data.api_key.strip()}")
        except AuthenticationRequired:
            return _login_page("That key is not a valid API key (unknown or revoked).", 401)
        if principal.role not in _UI_ROLES:
            return _login_page(
                f"This is {_article(principal.role.value)} {principal.role.value} key: the "
                "dashboard is for ops and admin "
                "keys. Ask an admin for an ops key of your project.",
                403,
            )
        session = _sessions(runtime).create(principal.key_id)
        response = Redirect("/ui/projects", status_code=303)
        response.set_cookie(
            COOKIE,
            session.token,
            path="/ui",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    @post("/logout", sync_to_thread=True, status_code=303)
    def logout(
        self,
        runtime: RuntimeDep,
        viewer: ViewerDep,
        data: Annotated[CsrfForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Response[Any]:
        SessionStore.check_csrf(viewer.session, data.csrf_token)
        _sessions(runtime).destroy(viewer.session.token)
        response = Redirect("/ui/login", status_code=303)
        response.delete_cookie(COOKIE, path="/ui")
        return response

    @get("/projects", sync_to_thread=True)
    def projects(self, runtime: RuntimeDep, viewer: ViewerDep) -> Response[Any]:
        found = list_projects(runtime.db, viewer.principal)
        if not viewer.is_admin and len(found) == 1:
            return Redirect(f"/ui/projects/{found[0].id}", status_code=303)
        return Template(
            template_name="projects.html",
            context={"viewer": viewer, "projects": found, "project": None},
        )

    @get("/projects/{pid:str}", sync_to_thread=True)
    def dashboard(self, pid: FromPath[str], runtime: RuntimeDep, viewer: ViewerDep) -> Template:
        project = views.project_header(runtime, viewer.principal, pid)
        return Template(
            template_name="dashboard.html",
            context={
                "viewer": viewer,
                "project": project,
                "overview": views.overview(runtime, viewer.principal, pid),
                "annotators": views.annotator_rows(runtime, viewer.principal, pid),
                "versions": views.config_versions(runtime, viewer.principal, pid),
            },
        )

    @get("/projects/{pid:str}/fragments/{name:str}", sync_to_thread=True)
    def fragment(
        self, pid: FromPath[str], name: FromPath[str], runtime: RuntimeDep, viewer: ViewerDep
    ) -> Template:
        if name not in _FRAGMENTS:
            raise NotFound(f"no dashboard fragment {name!r}; one of {', '.join(_FRAGMENTS)}")
        project = views.project_header(runtime, viewer.principal, pid)
        context: dict[str, Any] = {"viewer": viewer, "project": project}
        if name == "overview":
            context["overview"] = views.overview(runtime, viewer.principal, pid)
        elif name == "annotators":
            context["annotators"] = views.annotator_rows(runtime, viewer.principal, pid)
        else:
            context["versions"] = views.config_versions(runtime, viewer.principal, pid)
        return Template(template_name=f"fragments/{name}.html", context=context)

    @get("/projects/{pid:str}/annotators/{aid:str}", sync_to_thread=True)
    def annotator(
        self, pid: FromPath[str], aid: FromPath[str], runtime: RuntimeDep, viewer: ViewerDep
    ) -> Template:
        return Template(
            template_name="annotator.html",
            context={
                "viewer": viewer,
                "project": views.project_header(runtime, viewer.principal, pid),
                **views.annotator_detail(runtime, viewer.principal, pid, aid),
            },
        )

    @post("/projects/{pid:str}/annotators/{aid:str}/status", sync_to_thread=True, status_code=303)
    def set_status(
        self,
        pid: FromPath[str],
        aid: FromPath[str],
        runtime: RuntimeDep,
        viewer: ViewerDep,
        data: Annotated[StatusForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Redirect:
        SessionStore.check_csrf(viewer.session, data.csrf_token)
        update_annotator(
            runtime.db,
            runtime.assignments,
            viewer.principal,
            pid,
            aid,
            tier=None,
            status=data.status,
            reason=data.reason.strip() or "set from the ops dashboard",
        )
        if data.return_to == "annotator":
            return Redirect(f"/ui/projects/{pid}/annotators/{aid}", status_code=303)
        return Redirect(f"/ui/projects/{pid}#annotators", status_code=303)


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _login_page(error: str | None, status: int) -> Template:
    return Template(
        template_name="login.html",
        context={"error": error, "viewer": None, "project": None},
        status_code=status,
    )
