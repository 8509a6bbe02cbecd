"""The original service's HTTP API (``/envs``, ``/envs-history``), served beside ``/v1``.

People moving from that service keep its client: an env is
``/envs/{workflow_id}/{node_id}`` with ``version_id`` a query parameter,
bodies are form fields or multipart (:mod:`.compat_forms`), answers and errors
have its shapes (:mod:`.compat_models`, :mod:`.compat_errors`). Underneath it
is ``/v1``: the same core calls through the same :data:`~.routes.Core`,
behind the same token, limits and request log. Where the two APIs mean
different things, these routes follow the original service; ``/v1`` is not
changed, except that :func:`refuse_legacy_shapes` keeps a path of the original
shape from being read as one of its version ids.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Final

import attrs
from fastapi import Depends, File, Form, Path, Query, Request, Response, UploadFile

import uv_envs
from uv_envs_server._http.compat import models as cm
from uv_envs_server._http.compat.errors import COMPAT_TAG, CompatRoute
from uv_envs_server._http.compat.forms import requested_packages, requirements_file_lines
from uv_envs_server._http.core_calls import Core, CoreCalls
from uv_envs_server._http.patterns import ID_PATTERN, PYTHON_PATTERN, VERSION_PATTERN
from uv_envs_server._http.routers import SegmentRouter
from uv_envs_server._limits import DEFAULT_OPERATIONS_LIMIT

if TYPE_CHECKING:
    from collections.abc import Callable

compat_router = SegmentRouter(route_class=CompatRoute, tags=[COMPAT_TAG])

ENV: Final = "/envs/{workflow_id}/{node_id}"

NOT_FOUND: Final = uv_envs.EnvStatus.NOT_FOUND

#: What running code answers: the gRPC ``RunCode`` says the same (UNIMPLEMENTED).
RUN_CODE_MESSAGE: Final = (
    "running code is not served by uv-envs: executing node code is Ray's job. Run it with "
    "the environment's interpreter, <env_path>/.venv/bin/python (GET /envs/{w}/{n} answers "
    "env_path)."
)

#: Words that follow an env in the original API's paths, and ``/v1``'s own sub-resources.
#: As the third segment of a ``/v1`` env path they would name a version: a client of the
#: original API pointed at ``/v1`` would read or delete the env whose version is ``deps``.
RESERVED_VERSION_WORDS: Final = frozenset({"deps", "sync", "export", "run", "verify"})

# The ids with the pattern the core checks, so the schema says what is refused (400
# INVALID_PACKAGES here, as the original service answered a bad id).
WorkflowId = Annotated[str, Path(pattern=ID_PATTERN)]
NodeId = Annotated[str, Path(pattern=ID_PATTERN)]
Version = Annotated[
    str | None,
    Query(
        pattern=VERSION_PATTERN,
        description="the env's version id; none (the env without one) if absent or empty",
    ),
]


def _key(workflow_id: str, node_id: str, version_id: str | None) -> uv_envs.EnvKey:
    # Raises InvalidIdentifier (400 INVALID_PACKAGES) for an id the core refuses.
    return uv_envs.EnvKey(workflow_id, node_id, version_id or "")


async def _path_key(
    workflow_id: WorkflowId, node_id: NodeId, version_id: Version = None
) -> uv_envs.EnvKey:
    """The env the path and the ``version_id`` query name.

    ``async`` although it awaits nothing: FastAPI runs a plain ``def`` dependency on
    its thread pool, a hop that costs more than the status read the request is for.
    """
    return _key(workflow_id, node_id, version_id)


#: The env a route names, as an endpoint parameter.
CompatKey = Annotated[uv_envs.EnvKey, Depends(_path_key)]


async def refuse_legacy_shapes(request: Request) -> None:
    """A ``/v1`` dependency: a version id that is a word of the original paths is refused.

    ``/v1/envs/{w}/{n}/deps`` is the env whose version is ``deps`` to ``/v1``
    and the dependencies of ``{w}/{n}`` to the original API; the latter's
    client, pointed at ``/v1`` by mistake, must get an error, never that env.
    """
    version = request.path_params.get("version_id")
    if version in RESERVED_VERSION_WORDS:
        msg = (
            f"{version!r} is not read as a version id in /v1 paths: the original service's API "
            f"is served without /v1 (/envs/{{workflow_id}}/{{node_id}}/{version}); an env whose "
            f"version is {version!r} is reached there, with ?version_id={version}"
        )
        raise uv_envs.InvalidIdentifier(msg)


@attrs.frozen
class CreateForm:
    """The key and Python of ``POST /envs``; the packages come from :class:`PackagesForm`."""

    workflow_id: str
    node_id: str
    version_id: str | None
    python_version: str | None


async def _create_form(
    workflow_id: Annotated[str, Form(pattern=ID_PATTERN)],
    node_id: Annotated[str, Form(pattern=ID_PATTERN)],
    version_id: Annotated[str | None, Form(pattern=VERSION_PATTERN)] = None,
    python_version: Annotated[
        str | None,
        Form(
            pattern=PYTHON_PATTERN,
            description="for example 3.12; the server's default when absent or empty",
        ),
    ] = None,
) -> CreateForm:
    return CreateForm(workflow_id, node_id, version_id, python_version)


@attrs.frozen
class PackagesForm:
    """The ``packages`` fields of a form and the lines of its ``requirements_file``."""

    fields: tuple[str, ...]
    file_lines: tuple[str, ...]

    def packages(self, *, required: bool) -> list[str]:
        """Both, fields first; InvalidInput when ``required`` and neither names one."""
        return requested_packages(self.fields, self.file_lines, required=required)


async def _packages_form(
    request: Request,
    packages: Annotated[
        list[str] | None,
        Form(description="PEP 508 requirements, one per field; one 'a,b' value names two"),
    ] = None,
    requirements_file: Annotated[
        UploadFile | str | None,
        File(
            description="a requirements.txt, uploaded or as a plain field: its non-blank "
            "lines that are not # comments"
        ),
    ] = None,
) -> PackagesForm:
    if request.headers.get("content-type", "").startswith("application/json"):
        # Read as a form it would be empty: say why rather than "no packages named".
        msg = "these routes read form fields or multipart (data=, files=), not a JSON body"
        raise uv_envs.InvalidInput(msg)
    lines: list[str] = []
    if isinstance(requirements_file, str):
        # A multipart part without a file name arrives as text (curl -F 'requirements_file=a').
        lines = requirements_file_lines(requirements_file.encode(), None)
    elif requirements_file is not None:
        content = await requirements_file.read()
        lines = requirements_file_lines(content, requirements_file.filename)
    return PackagesForm(tuple(packages or ()), tuple(lines))


#: A route's :class:`PackagesForm`, read from its form or multipart body.
Packages = Annotated[PackagesForm, Depends(_packages_form)]


#: What the schema says of the deps routes' bodies: a form that names no package is 400.
#: (Which strings are PEP 508 requirements, and which files list one, it cannot say.)
NAMES_A_PACKAGE: Final = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "anyOf": [{"required": ["packages"]}, {"required": ["requirements_file"]}]
                }
            }
        },
    }
}


async def _changed(
    core: CoreCalls,
    form: PackagesForm,
    change: Callable[[tuple[str, ...]], uv_envs.OperationResult],
) -> uv_envs.OperationResult:
    """Add, update or remove the form's packages (at least one), on the pool."""
    packages = form.packages(required=True)
    return await core(lambda: change(core.packages(packages)))


@compat_router.get(ENV, response_model=cm.CompatStatus)
async def get_env_status(
    workflow_id: WorkflowId, node_id: NodeId, request: Request, version_id: Version = None
) -> Response:
    """The env, if it can be used; else 404 ENV_NOT_FOUND, so a client creates it.

    An env that is not READY (a failed or damaged one, one being created) is
    404 too: the original client then posts ``/envs``, which rebuilds it. A
    READY env's answer counts as a use for idle cleanup (the client runs it next).
    """
    # The parameters of CompatKey and Core, taken here: the client polls this route most,
    # and FastAPI solves each sub-dependency apart, with its own parameter passes.
    key, core = _key(workflow_id, node_id, version_id), CoreCalls(request)

    def look() -> uv_envs.StatusReport:
        report = core.manager.status(key)
        if report.status is uv_envs.EnvStatus.READY:
            # The original client hands the env's path out after this GET: a use, as /v1's
            # ensure is, so idle cleanup does not collect an env its runs keep asking for.
            core.manager.runtime_env(key)
        return report

    report = await core.read(look)
    env = report.environment
    if env is None or env.status is not uv_envs.EnvStatus.READY:
        found = report.status
        state = "there is none" if found is NOT_FOUND else f"it is {found}"
        msg = f"no usable environment {key}: {state}; POST /envs makes it"
        raise uv_envs.EnvironmentNotFound(msg)
    # Serialised here, once: returned as a model, FastAPI would validate it again against
    # the response model: about 0.4 ms of CPU per read, for the client polling it most.
    body = cm.compat_status(report, env).model_dump_json()
    return Response(body, media_type="application/json")


@compat_router.post("/envs")
async def create_env(
    form: Annotated[CreateForm, Depends(_create_form)], requested: Packages, core: Core
) -> cm.CompatCreated:
    """Make the env with this spec; retry-safe: the same spec answers the same again.

    An env with another spec moves to a new generation built from this one
    (as gRPC ``CreateEnv`` does); if that fails, the env stays as it was.
    """
    key = _key(form.workflow_id, form.node_id, form.version_id)
    packages = requested.packages(required=False)
    provisioned = await core(
        lambda: core.manager.provision(
            key,
            packages=core.packages(packages),
            python=form.python_version or None,
            replace=True,
        )
    )
    return cm.compat_created(provisioned.environment, provisioned.pyproject_toml)


@compat_router.delete(ENV, response_model_exclude_none=True)
async def delete_env(key: CompatKey, core: Core) -> cm.CompatDeleted:
    """Delete the env; "deleted" also when there was none, ``deferred`` while it is in use."""
    return cm.compat_deleted(await core(lambda: core.manager.delete(key)))


@compat_router.post(f"{ENV}/deps", openapi_extra=NAMES_A_PACKAGE)
async def add_packages(key: CompatKey, form: Packages, core: Core) -> cm.CompatChanged:
    """Add packages (uv add); naming none is 400 INVALID_PACKAGES."""
    result = await _changed(core, form, lambda packages: core.manager.add(key, packages))
    return cm.compat_changed(result, "added")


@compat_router.put(f"{ENV}/deps", openapi_extra=NAMES_A_PACKAGE)
async def update_packages(key: CompatKey, form: Packages, core: Core) -> cm.CompatChanged:
    """Upgrade the named packages (a specifier also replaces the declared one)."""
    result = await _changed(core, form, lambda packages: core.manager.update(key, packages))
    return cm.compat_changed(result, "updated")


@compat_router.delete(f"{ENV}/deps", openapi_extra=NAMES_A_PACKAGE)
async def remove_packages(key: CompatKey, form: Packages, core: Core) -> cm.CompatInstalled:
    """Remove the named packages (uv remove); the form body names them."""
    result = await _changed(core, form, lambda packages: core.manager.remove(key, packages))
    return cm.compat_installed(result, "removed")


@compat_router.get(f"{ENV}/deps")
async def list_packages(key: CompatKey, core: Core) -> cm.CompatDeps:
    """The requirements pyproject.toml declares and the versions uv.lock pins."""
    return cm.compat_deps(key, await core(lambda: core.manager.dependencies(key)))


@compat_router.post(f"{ENV}/sync")
async def sync_env(key: CompatKey, core: Core) -> cm.CompatInstalled:
    """Rebuild the venv exactly from uv.lock (repairs a damaged env)."""
    return cm.compat_installed(await core(lambda: core.manager.sync(key)), "synced")


@compat_router.get(f"{ENV}/export")
async def export_env(key: CompatKey, core: Core) -> cm.CompatExport:
    """pyproject.toml and uv.lock, as text."""
    return cm.compat_export(key, await core(lambda: core.manager.export(key)))


@compat_router.post(f"{ENV}/run", status_code=501)
async def run_code(workflow_id: str, node_id: str) -> cm.CompatError:
    """Not served: running node code is Ray's job (gRPC ``RunCode`` answers UNIMPLEMENTED)."""
    del workflow_id, node_id
    return cm.CompatError(code=cm.CompatCode.NOT_IMPLEMENTED, message=RUN_CODE_MESSAGE)


@compat_router.post("/envs/cleanup")
async def cleanup_envs(body: cm.CompatCleanupBody, core: Core) -> cm.CompatCleanup:
    """Delete envs idle ``idle_hours`` (1 or more); leased and busy ones are kept."""
    idle = body.idle_hours * 3600.0
    return cm.compat_cleanup(await core(lambda: core.manager.cleanup(idle)))


@compat_router.get("/envs-history/{workflow_id}")
async def get_history(
    workflow_id: WorkflowId,
    core: Core,
    node_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    status: uv_envs.OperationStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = DEFAULT_OPERATIONS_LIMIT,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> cm.CompatHistory:
    """A workflow's audit trail, newest first: optionally one node's, or one status'."""
    page = await core(
        lambda: core.manager.operations(
            workflow_id, node_id, None if status is None else status.value, limit, offset
        )
    )
    return cm.compat_history(page)


@compat_router.delete("/envs-history/{workflow_id}", response_model_exclude_none=True)
async def delete_history(
    workflow_id: WorkflowId,
    core: Core,
    node_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
) -> cm.CompatHistoryDeleted:
    """Delete a workflow's audit records, or one node's."""
    deleted = await core(lambda: core.manager.delete_operations(workflow_id, node_id))
    return cm.compat_history_deleted(deleted)
