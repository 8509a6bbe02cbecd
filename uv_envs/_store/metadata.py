"""The metadata repository: one ``metadata.json`` per environment.

Writes are atomic and durable: a temp file in the same directory, ``fsync``,
``rename`` over the old file, ``fsync`` of the directory. A reader therefore
sees the old or the new document, never a torn one, and after a crash the last
completed write survives. ``metadata.json`` is the commit point of every
operation (see docs/architecture.md).

A record that cannot be read (missing from an env that has generations,
truncated, not JSON, another schema, a newer schema version) is damage that
happened outside uv-envs: a disk error, a careless edit, a partial restore.
:meth:`JsonMetadataRepository.load` raises
:class:`~uv_envs.EnvironmentUnreadable` carrying an :class:`UnreadableRecord`
for it, so callers can quarantine that one env and carry on with the others.
To tell "missing" from "being deleted", :meth:`JsonMetadataRepository.discard`
renames the file to ``.metadata.discarded`` instead of unlinking it: the env
directory (and the marker with it) is renamed into the trash right after.

This is no port: recovery depends on the file names used here (it removes
their temp files, and tells lost records from debris), and nothing else could
keep that promise.
"""

from __future__ import annotations

import enum
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import attrs
import cattrs

from uv_envs._errors import EnvironmentUnreadable, StorageError
from uv_envs._models import SCHEMA_VERSION, Environment, EnvKey, converter
from uv_envs._store.layout import Layout

#: What :meth:`JsonMetadataRepository.discard` leaves until the env dir is gone.
DISCARDED = ".metadata.discarded"

#: Parsed records one repository keeps (see :meth:`JsonMetadataRepository.read`).
PARSED_RECORDS = 4096


class Damage(enum.StrEnum):
    """What is wrong with an unreadable ``metadata.json``."""

    MISSING = "missing"
    NOT_JSON = "not JSON"
    WRONG_SCHEMA = "of the wrong schema"
    NEWER_SCHEMA = "of a newer schema version"
    IO_ERROR = "not readable"


@attrs.frozen
class UnreadableRecord:
    """An env directory whose record cannot be read: the env is quarantined.

    ``detail`` never quotes the file's content (it may be anything); it says
    where parsing stopped or which field is wrong.
    """

    key: EnvKey
    path: Path
    damage: Damage
    detail: str = ""

    @property
    def reason(self) -> str:
        """One line for status, list and logs: ``metadata.json is not JSON: ...``."""
        return f"metadata.json is {self.damage.value}" + (f": {self.detail}" if self.detail else "")

    def error(self) -> EnvironmentUnreadable:
        """The error operations on this env raise; it names the way out."""
        return EnvironmentUnreadable(
            f"environment {self.key} is quarantined: its {self.reason}. Nothing else on the "
            "root is affected. Delete it (uv-envs delete WORKFLOW NODE [VERSION], add --force "
            "if it is leased; DeleteEnv over gRPC) and create it again",
            self,
        )


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
    """Parse a record; raise :class:`StorageError` naming ``source`` if it is unreadable."""
    parsed = _parse(data)
    if isinstance(parsed, Environment):
        return parsed
    damage, detail = parsed
    raise StorageError(f"{source}: metadata is {damage.value}: {detail}")


def _parse(data: bytes) -> Environment | tuple[Damage, str]:  # noqa: PLR0911 - one return per damage
    try:
        raw = json.loads(data)
    except ValueError as exc:
        text = data.strip()
        if not text or (text.startswith(b"{") and not text.endswith(b"}")):
            # An object that stops early: a partial write or restore, not an edit.
            return Damage.NOT_JSON, f"truncated at byte {len(data)}"
        return Damage.NOT_JSON, str(exc)
    if not isinstance(raw, dict):
        return Damage.WRONG_SCHEMA, f"a JSON {type(raw).__name__}, not an object"
    version = raw.get("schema_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
        return Damage.NEWER_SCHEMA, (
            f"schema_version {version}, this uv-envs reads {SCHEMA_VERSION}; "
            "it was written by a newer uv-envs"
        )
    if version != SCHEMA_VERSION:
        return Damage.WRONG_SCHEMA, f"schema_version {version!r}, expected {SCHEMA_VERSION}"
    try:
        return converter.structure(raw, Environment)
    except Exception as exc:  # noqa: BLE001 - cattrs wraps whatever the data made fail
        if isinstance(exc, cattrs.BaseValidationError):
            return Damage.WRONG_SCHEMA, "; ".join(cattrs.transform_error(exc))[:500]
        return Damage.WRONG_SCHEMA, f"{type(exc).__name__}: {exc}"[:500]


@attrs.define
class JsonMetadataRepository:
    """``metadata.json`` files in the environment directories of a :class:`Layout`."""

    layout: Layout
    #: The last record parsed per key, with the bytes it was parsed from.
    _parsed: dict[EnvKey, tuple[bytes, Environment]] = attrs.field(factory=dict, init=False)

    def load(self, key: EnvKey) -> Environment | None:
        """The record, ``None`` when there is none; an unreadable one raises.

        Raises:
            EnvironmentUnreadable: the env exists but its record cannot be
                read; ``.record`` is the :class:`UnreadableRecord`.

        """
        found = self.read(key)
        if isinstance(found, UnreadableRecord):
            raise found.error()
        return found

    def read(self, key: EnvKey) -> Environment | UnreadableRecord | None:
        """The record, what is wrong with it, or ``None`` when the key has none."""
        env_dir = self.layout.env_dir(key)
        path = self.layout.metadata_file(env_dir)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            if _looks_like_env(env_dir):
                return UnreadableRecord(key, path, Damage.MISSING, "the env has generations")
            return None
        except OSError as exc:
            return UnreadableRecord(key, path, Damage.IO_ERROR, exc.strerror or type(exc).__name__)
        return self._record(key, path, data)

    def _record(self, key: EnvKey, path: Path, data: bytes) -> Environment | UnreadableRecord:
        """``data`` parsed, or the record parsed last for ``key`` if these were its bytes.

        The file is read every time, so a record another process replaced is seen at
        once; only the JSON and cattrs work (most of a status read) is saved. Keyed by
        the content, never by mtime or inode: both can repeat after a replacement.
        """
        known = self._parsed.get(key)
        if known is not None and known[0] == data:
            return known[1]
        parsed = _parse(data)
        if not isinstance(parsed, Environment):
            return UnreadableRecord(key, path, *parsed)
        if parsed.key != key:
            # A record copied from another env: trusting it would act on the wrong env's files.
            return UnreadableRecord(key, path, Damage.WRONG_SCHEMA, f"it names env {parsed.key}")
        if len(self._parsed) >= PARSED_RECORDS:
            self._parsed.clear()  # a bound, not an LRU: a root's hot keys come back at once
        self._parsed[key] = (data, parsed)
        return parsed

    def save(self, environment: Environment) -> None:
        path = self.layout.metadata_file(self.layout.env_dir(environment.key))
        try:
            write_atomic(path, environment_to_json(environment))
        except OSError as exc:
            raise StorageError(f"cannot write {path}: {exc}") from exc

    def discard(self, key: EnvKey) -> None:
        env_dir = self.layout.env_dir(key)
        path = self.layout.metadata_file(env_dir)
        try:
            # Renamed, not unlinked: a folder with generations and neither file is damage.
            os.replace(path, env_dir / DISCARDED)
        except FileNotFoundError:
            return
        fsync_directory(env_dir)

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
        """Every key with a record, readable or not (a damaged env without one included)."""
        envs = self.layout.envs_dir
        workflows = [workflow_id] if workflow_id is not None else _children(envs)
        for workflow in workflows:
            nodes = [node_id] if node_id is not None else _children(envs / workflow)
            for node in nodes:
                for version in _children(envs / workflow / node):
                    env_dir = envs / workflow / node / version
                    if (env_dir / "metadata.json").is_file() or _looks_like_env(env_dir):
                        try:
                            yield self.layout.key_for(env_dir)
                        except ValueError:
                            continue  # a stray folder that no key can name


def _looks_like_env(env_dir: Path) -> bool:
    """An env dir without a record that is damage, not debris.

    A create writes its record before any generation, and a delete renames the
    record to :data:`DISCARDED` first: so generations or a ``current`` link
    without either file mean the record was lost.
    """
    if (env_dir / DISCARDED).exists() or (env_dir / "metadata.json").exists():
        return False
    return (env_dir / "gens").is_dir() or (env_dir / "current").is_symlink()


def _children(directory: Path) -> list[str]:
    try:
        return sorted(entry.name for entry in os.scandir(directory) if entry.is_dir())
    except (FileNotFoundError, NotADirectoryError):
        return []
