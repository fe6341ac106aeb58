"""HTTP: a project's keys: creating, listing and revoking them; rotating an annotator's key."""

from __future__ import annotations

import msgspec
from litestar import Controller, delete, get, post
from litestar.params import FromPath, JSONBody

from router.auth import service
from router.deps import PrincipalDep, RuntimeDep
from router.projects import service as projects
from router.projects.schemas import KeyCreate
from router.projects.schemas import KeyOut as CreatedKeyOut

__all__ = ["KeyController"]


class KeyOut(msgspec.Struct):
    id: str
    role: str
    name: str
    project_id: str | None
    annotator_id: str | None
    created_at: str
    revoked_at: str | None


class RotatedKeyOut(msgspec.Struct):
    id: str
    annotator_id: str
    api_key: str
    """Shown once: only its hash is stored."""


class KeyController(Controller):
    path = "/v1/projects/{pid:str}"
    tags = ("keys",)

    @post(
        "/keys",
        status_code=201,
        sync_to_thread=True,
        summary="Create an ops, producer or tool key (admin); the key is shown once",
    )
    def create_key(
        self,
        pid: FromPath[str],
        data: JSONBody[KeyCreate],
        runtime: RuntimeDep,
        principal: PrincipalDep,
    ) -> CreatedKeyOut:
        key, raw = projects.create_key(runtime.db, principal, pid, role=data.role, name=data.name)
        return CreatedKeyOut(id=key.id, key=raw, role=key.role, name=key.name, project_id=pid)

    @get(
        "/keys",
        sync_to_thread=True,
        summary="List the project's keys, without their secrets (ops, admin)",
    )
    def list_keys(
        self, pid: FromPath[str], runtime: RuntimeDep, principal: PrincipalDep
    ) -> list[KeyOut]:
        return [KeyOut(**k) for k in service.list_keys(runtime.db, principal, pid)]

    @delete(
        "/keys/{kid:str}",
        status_code=200,
        sync_to_thread=True,
        summary="Revoke a key (admin; ops for producer, tool and annotator keys)",
        description=(
            "The key is refused (401) at once by this API process and within one second by "
            "every other. Revoking an already revoked key changes nothing. Recorded in the "
            "audit log as `key.revoked`."
        ),
    )
    def revoke(
        self, pid: FromPath[str], kid: FromPath[str], runtime: RuntimeDep, principal: PrincipalDep
    ) -> KeyOut:
        key = service.revoke_key(runtime.db, principal, pid, kid)
        runtime.keys.forget(key.key_hash)
        return KeyOut(**service.key_view(key))

    @post(
        "/annotators/{aid:str}/key",
        status_code=201,
        sync_to_thread=True,
        summary="Give an annotator a new key and revoke its old ones (ops); shown once",
    )
    def rotate(
        self, pid: FromPath[str], aid: FromPath[str], runtime: RuntimeDep, principal: PrincipalDep
    ) -> RotatedKeyOut:
        key, raw, replaced = service.rotate_annotator_key(runtime.db, principal, pid, aid)
        for digest in replaced:
            runtime.keys.forget(digest)
        return RotatedKeyOut(id=key.id, annotator_id=aid, api_key=raw)
