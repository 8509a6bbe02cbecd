"""The metadata repository: one ``metadata.json`` per environment.

Writes are atomic and durable: a temp file in the same directory, ``fsync``,
``rename`` over the old file, ``fsync`` of the directory. A reader therefore
sees the old or the new document, never a torn one, and after a crash the last
completed write survives. ``metadata.json`` is the commit point of every
operation (see docs/architecture.md).

This is no port: recovery depends on the file names used here (it removes
their temp files), and nothing else could keep that promise.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import attrs

from ._errors import StorageError
from ._layout import Layout
from ._models import SCHEMA_VERSION, Environment, EnvKey, converter


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that readers and crashes see old or new, never half."""
    directory = path.parent
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    fsync_directory(directory)


def fsync_directory(directory: Path) -> None:
    """Make a rename or unlink in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def environment_to_json(environment: Environment) -> bytes:
    return json.dumps(converter.unstructure(environment), indent=2, sort_keys=True).encode()


def environment_from_json(data: bytes, source: Path | str) -> Environment:
    try:
        raw = json.loads(data)
    except ValueError as exc:
        raise StorageError(f"{source}: unreadable metadata: {exc}") from exc
    version = raw.get("schema_version") if isinstance(raw, dict) else None
    if version != SCHEMA_VERSION:
        raise StorageError(f"{source}: unsupported metadata schema version {version!r}")
    try:
        return converter.structure(raw, Environment)
    except Exception as exc:
        raise StorageError(f"{source}: unreadable metadata: {exc}") from exc


@attrs.define
class JsonMetadataRepository:
    """``metadata.json`` files in the environment directories of a :class:`Layout`."""

    layout: Layout

    def load(self, key: EnvKey) -> Environment | None:
        path = self.layout.metadata_file(self.layout.env_dir(key))
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc}") from exc
        return environment_from_json(data, path)

    def save(self, environment: Environment) -> None:
        path = self.layout.metadata_file(self.layout.env_dir(environment.key))
        try:
            write_atomic(path, environment_to_json(environment))
        except OSError as exc:
            raise StorageError(f"cannot write {path}: {exc}") from exc

    def discard(self, key: EnvKey) -> None:
        path = self.layout.metadata_file(self.layout.env_dir(key))
        path.unlink(missing_ok=True)

    def remove_temporaries(self, key: EnvKey) -> list[str]:
        """Delete temp files of writes that died; the caller holds the env lock.

        Writes happen only under that lock, so any temp file found now was left
        by a process that died between creating and renaming it.
        """
        path = self.layout.metadata_file(self.layout.env_dir(key))
        removed: list[str] = []
        for temporary in path.parent.glob(f".{path.name}.*.tmp"):
            temporary.unlink(missing_ok=True)
            removed.append(temporary.name)
        return removed

    def keys(self, workflow_id: str | None = None, node_id: str | None = None) -> Iterator[EnvKey]:
        envs = self.layout.envs_dir
        workflows = [workflow_id] if workflow_id is not None else _children(envs)
        for workflow in workflows:
            nodes = [node_id] if node_id is not None else _children(envs / workflow)
            for node in nodes:
                for version in _children(envs / workflow / node):
                    env_dir = envs / workflow / node / version
                    if (env_dir / "metadata.json").is_file():
                        try:
                            yield self.layout.key_for(env_dir)
                        except ValueError:
                            continue  # a stray folder that no key can name


def _children(directory: Path) -> list[str]:
    try:
        return sorted(entry.name for entry in os.scandir(directory) if entry.is_dir())
    except (FileNotFoundError, NotADirectoryError):
        return []
