"""The env digest (issue 30): one content digest per installed env, real uv and wheels.

The same lock gives the same digest on two roots (another absolute path), a
private rebuild gives its shared entry's digest, ``verify`` recomputes it from
the bytes on disk, a repair keeps it, and a CycloneDX export carries it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs

from uv_envs import EnvKey, EnvManager, EnvStatus, ExportFormat, InterpreterFinder, Settings
from uv_envs.testing import RecordingPublisher

KEY = EnvKey("wf", "digest", "v1")
SPEC = ["beta", "gamma"]


def _site(manager: EnvManager, key: EnvKey) -> Path:
    venv = (manager.get(key).env_path / ".venv").resolve()
    return next(venv.glob("lib/python*/site-packages"))


def test_two_roots_installing_one_lock_give_one_digest(
    settings: Settings, python_finder: InterpreterFinder, tmp_path: Path
) -> None:
    first = EnvManager(settings, python_finder=python_finder)
    created = first.create(KEY, packages=SPEC)
    assert created.digest.startswith("sha256:")
    project = first.export(KEY)
    other = EnvManager(
        attrs.evolve(settings, root=tmp_path / "elsewhere" / "root"), python_finder=python_finder
    )
    installed = other.install_exact(
        EnvKey("other", "node", "v9"),
        pyproject_toml=project.pyproject_toml,
        uv_lock=project.uv_lock,
    )
    assert installed.environment.env_path != created.env_path
    assert installed.environment.digest == created.digest
    # verify hashes the files themselves and finds the recorded digest again.
    verified = first.verify(KEY)
    assert verified.ok, verified.problems
    assert verified.digest == created.digest


def test_verify_computes_another_digest_when_a_file_changes(
    settings: Settings, python_finder: InterpreterFinder
) -> None:
    manager = EnvManager(settings, python_finder=python_finder)
    created = manager.create(KEY, packages=SPEC)
    module = _site(manager, KEY) / "gamma" / "__init__.py"
    module.write_text(module.read_text() + "\n# edited after install\n")
    verified = manager.verify(KEY)
    assert not verified.ok
    assert verified.digest.startswith("sha256:")
    assert verified.digest != created.digest
    assert any("digest" in problem and created.digest in problem for problem in verified.problems)
    assert manager.status(KEY).status is EnvStatus.DAMAGED


def test_repair_and_a_private_rebuild_keep_the_digest(
    settings: Settings, python_finder: InterpreterFinder
) -> None:
    manager = EnvManager(settings, python_finder=python_finder)
    created = manager.create(KEY, packages=SPEC)
    # sync of a healthy env rebuilds privately in its generation, not in the store.
    synced = manager.sync(KEY).environment
    assert synced.generation == created.generation + 1
    assert synced.digest == created.digest
    (_site(manager, KEY) / "gamma" / "__init__.py").unlink()
    assert not manager.verify(KEY).ok
    assert manager.repair(KEY).ok
    repaired = manager.get(KEY)
    assert repaired.status is EnvStatus.READY
    assert repaired.digest == created.digest
    assert manager.recover() == []
    assert manager.get(KEY).digest == created.digest


def test_events_and_audit_name_the_digest(
    settings: Settings, python_finder: InterpreterFinder, events: RecordingPublisher
) -> None:
    manager = EnvManager(settings, python_finder=python_finder, publish=events)
    created = manager.create(KEY, packages=SPEC)
    synced = manager.sync(KEY).environment
    details = {type(e).__name__: e.details for e in events.events}
    assert details["EnvironmentCreated"]["digest"] == created.digest
    assert details["EnvironmentSynced"]["digest"] == synced.digest
    records = manager.operations(KEY.workflow_id, KEY.node_id).items
    noted = {r.operation: r.metadata.get("digest") for r in reversed(records)}
    assert noted["create"] == created.digest
    assert noted["sync"] == synced.digest


def test_a_record_without_a_digest_is_read_and_verify_fills_it(
    settings: Settings, python_finder: InterpreterFinder
) -> None:
    manager = EnvManager(settings, python_finder=python_finder)
    created = manager.create(KEY, packages=SPEC)
    path = created.env_path / "metadata.json"
    raw = json.loads(path.read_bytes())
    del raw["digest"]  # as uv-envs wrote it before digests
    path.write_text(json.dumps(raw))
    assert manager.get(KEY).digest == ""
    assert manager.verify(KEY).ok
    assert manager.get(KEY).digest == created.digest


def _sbom_digest(document: dict[str, Any]) -> str:
    properties = document["metadata"]["properties"]
    (digest,) = [p["value"] for p in properties if p["name"] == "uv-envs:env-digest"]
    return str(digest)


def test_a_cyclonedx_export_names_the_locked_packages_and_the_digest(
    settings: Settings, python_finder: InterpreterFinder
) -> None:
    manager = EnvManager(settings, python_finder=python_finder)
    created = manager.create(KEY, packages=SPEC)
    document = json.loads(manager.export(KEY, ExportFormat.CYCLONEDX))
    assert document["bomFormat"] == "CycloneDX"
    assert document["specVersion"] == "1.5"
    components = {c["name"]: c["version"] for c in document["components"]}
    assert components == dict(manager.dependencies(KEY).locked)
    assert {"beta", "gamma"} <= set(components)
    assert _sbom_digest(document) == created.digest
    assert ExportFormat.CYCLONEDX.file_name == "sbom.cdx.json"
