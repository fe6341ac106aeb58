"""HTTP: /v1/projects (their keys: `router.auth.controller`)."""

from __future__ import annotations

from litestar import Controller, get, post
from litestar.params import FromPath, JSONBody

from router.db.database import as_utc
from router.db.models import Project
from router.deps import PrincipalDep, RuntimeDep
from router.projects import service
from router.projects.schemas import ProjectCreate, ProjectOut

__all__ = ["ProjectController"]


def _out(project: Project) -> ProjectOut:
    return ProjectOut(
        id=project.id,
        name=project.name,
        label_schema=project.label_schema,
        rubric_version=project.rubric_version,
        routing_version=project.routing_version,
        created_at=as_utc(project.created_at).isoformat().replace("+00:00", "Z"),
    )


class ProjectController(Controller):
    path = "/v1/projects"
    tags = ("projects",)

    @post("/", status_code=201, sync_to_thread=True, summary="Create a project (admin)")
    def create(
        self, data: JSONBody[ProjectCreate], runtime: RuntimeDep, principal: PrincipalDep
    ) -> ProjectOut:
        project = service.create_project(
            runtime.db,
            principal,
            name=data.name,
            label_schema=data.label_schema,
            rubric_version=data.rubric_version,
            routing=data.routing,
        )
        return _out(project)

    @get("/{pid:str}", sync_to_thread=True, summary="Read a project")
    def read(self, pid: FromPath[str], runtime: RuntimeDep, principal: PrincipalDep) -> ProjectOut:
        with runtime.db.read() as session:
            return _out(service.get_project(session, principal, pid))
