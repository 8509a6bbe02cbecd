"""Hypothesis strategies for uv-envs' inputs and models, in one place."""

from __future__ import annotations

import base64
import string
from pathlib import Path
from typing import Any

from hypothesis import strategies as st
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from uv_envs import (
    CleanupReport,
    DeletedOperations,
    DeleteResult,
    Dependencies,
    Environment,
    EnvKey,
    EnvSpec,
    EnvStatus,
    EnvUsage,
    Export,
    IndexSettings,
    OperationPage,
    OperationRecord,
    OperationResult,
    RayLink,
    RetiredGeneration,
    StatusReport,
    _reports,
)
from uv_envs._relay.urls import RelayedFile, relay_url
from uv_envs._store.digest import env_digest
from uv_envs._store.manifest import Manifest

ID_ALPHABET = string.ascii_letters + string.digits + "._-"
MAX_ID_LENGTH = 128

# --- identifiers ----------------------------------------------------------------------------


def valid_ids(max_size: int = MAX_ID_LENGTH) -> st.SearchStrategy[str]:
    """Ids uv-envs accepts: 1-128 characters from ``[A-Za-z0-9._-]``, never ``.`` or ``..``."""
    return st.text(ID_ALPHABET, min_size=1, max_size=max_size).filter(
        lambda value: value not in {".", ".."}
    )


# Characters outside the id alphabet, including look-alikes of allowed ones.
_FORBIDDEN_CHARACTERS = st.one_of(
    st.sampled_from(
        [
            "/",
            "\\",
            "\x00",
            " ",
            "\t",
            "\n",
            ":",
            "@",
            "~",
            "*",
            "$",
            "\uff57",  # FULLWIDTH LATIN SMALL LETTER W
            "\u0430",  # CYRILLIC SMALL LETTER A
            "\u0131",  # LATIN SMALL LETTER DOTLESS I
            "\u017f",  # LATIN SMALL LETTER LONG S (case-folds to "s")
            "\u212a",  # KELVIN SIGN (case-folds to "k")
            "\u0660",  # ARABIC-INDIC DIGIT ZERO (a unicode digit)
            "\u2024",  # ONE DOT LEADER
            "\u2010",  # HYPHEN
        ]
    ),
    st.characters(exclude_characters=ID_ALPHABET),
)


@st.composite
def _ids_with_a_forbidden_character(draw: st.DrawFn) -> str:
    prefix = draw(st.text(ID_ALPHABET, max_size=20))
    suffix = draw(st.text(ID_ALPHABET, max_size=20))
    return prefix + draw(_FORBIDDEN_CHARACTERS) + suffix


def invalid_ids() -> st.SearchStrategy[object]:
    """Values that are not a workflow or node id: wrong characters, length, type, or dots."""
    return st.one_of(
        st.just(""),
        st.sampled_from([".", ".."]),
        _ids_with_a_forbidden_character(),
        st.text(ID_ALPHABET, min_size=MAX_ID_LENGTH + 1, max_size=MAX_ID_LENGTH + 200),
        st.none(),
        st.integers(),
        st.binary(min_size=1, max_size=10),
    )


def env_keys() -> st.SearchStrategy[EnvKey]:
    return st.builds(EnvKey, valid_ids(), valid_ids(), st.one_of(st.just(""), valid_ids()))


# --- requirements -------------------------------------------------------------------------

_NAME_SEGMENT = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=8)


def canonical_names() -> st.SearchStrategy[str]:
    """PEP 503 normalized project names: lower-case segments joined by ``-``."""
    return st.lists(_NAME_SEGMENT, min_size=1, max_size=3).map("-".join)


@st.composite
def respelled_names(draw: st.DrawFn, canonical: str) -> str:
    """A spelling of ``canonical`` that PEP 503 treats as the same name.

    Each letter in any case, each ``-`` as any run of ``-``, ``_`` and ``.``.
    """
    out: list[str] = []
    for character in canonical:
        if character == "-":
            out.append(draw(st.text("-_.", min_size=1, max_size=3)))
        elif character.isalpha():
            out.append(character.upper() if draw(st.booleans()) else character)
        else:
            out.append(character)
    respelled = "".join(out)
    assert canonicalize_name(respelled) == canonical
    return respelled


_VERSIONS = st.builds(
    lambda parts: ".".join(str(p) for p in parts),
    st.lists(st.integers(0, 30), min_size=1, max_size=3),
)
_OPERATORS = st.sampled_from(["==", "!=", ">=", "<=", ">", "<", "~="])


@st.composite
def specifiers(draw: st.DrawFn) -> str:
    operator = draw(_OPERATORS)
    version = draw(_VERSIONS)
    if operator == "~=" and "." not in version:
        version += ".0"  # ~= needs at least two release segments
    if operator in {"==", "!="} and draw(st.booleans()):
        version += ".*"
    return operator + version


MARKERS = (
    'python_version < "3.14"',
    'python_version >= "3.8"',
    'sys_platform == "linux"',
    'platform_system != "Windows"',
    'implementation_name == "cpython"',
    'python_version >= "3.9" and os_name == "posix"',
)


@st.composite
def requirement_parts(draw: st.DrawFn) -> tuple[str, tuple[str, ...], tuple[str, ...], str | None]:
    """(canonical name, canonical extras, specifiers, marker) of a requirement."""
    name = draw(canonical_names())
    extras = tuple(draw(st.lists(canonical_names(), max_size=2, unique=True)))
    specs = tuple(draw(st.lists(specifiers(), max_size=3)))
    marker = draw(st.one_of(st.none(), st.sampled_from(MARKERS)))
    return name, extras, specs, marker


@st.composite
def render_requirement(
    draw: st.DrawFn, parts: tuple[str, tuple[str, ...], tuple[str, ...], str | None]
) -> str:
    """One spelling of a requirement: names respelled, specifiers shuffled, spacing varied."""
    name, extras, specs, marker = parts
    space = st.sampled_from(["", " "])
    text = draw(respelled_names(name))
    if extras:
        spelled = [draw(respelled_names(e)) for e in draw(st.permutations(extras))]
        text += "[" + ",".join(spelled) + "]"
    if specs:
        ordered = draw(st.permutations(specs))
        text += draw(space) + ("," + draw(space)).join(ordered)
    if marker is not None:
        text += draw(space) + ";" + " " + marker
    return text


def requirement_strings() -> st.SearchStrategy[str]:
    """Valid PEP 508 requirement strings without direct references."""
    return requirement_parts().flatmap(render_requirement)


def requirement_lists(max_size: int = 6) -> st.SearchStrategy[tuple[str, ...]]:
    """Validated, normalized package tuples as they appear in an :class:`EnvSpec`."""
    return st.lists(requirement_strings(), max_size=max_size).map(
        lambda items: tuple(str(Requirement(i)) for i in items)
    )


# --- settings and specs ---------------------------------------------------------------------

_URLS = st.builds(
    lambda host, path: f"https://{host}.example/{path}",
    st.text(string.ascii_lowercase, min_size=1, max_size=8),
    st.text(string.ascii_lowercase + "/", max_size=10),
)
_FIND_LINKS = st.one_of(_URLS, st.builds(lambda p: f"/srv/wheels/{p}", _NAME_SEGMENT))


def index_settings() -> st.SearchStrategy[IndexSettings]:
    return st.builds(
        IndexSettings,
        index_url=st.one_of(st.none(), _URLS),
        extra_index_urls=st.lists(_URLS, max_size=2).map(tuple),
        find_links=st.lists(_FIND_LINKS, max_size=2).map(tuple),
        no_index=st.booleans(),
        offline=st.booleans(),
    )


def python_requests() -> st.SearchStrategy[str]:
    """Normalized Python requests: ``3.N`` or ``3.N.M``."""
    minor = st.integers(0, 99).map(str)
    micro = st.integers(0, 999).map(str)
    return st.one_of(
        minor.map(lambda m: f"3.{m}"),
        st.tuples(minor, micro).map(lambda mm: f"3.{mm[0]}.{mm[1]}"),
    )


def env_specs() -> st.SearchStrategy[EnvSpec]:
    return st.builds(
        EnvSpec,
        packages=requirement_lists(),
        python=python_requests(),
        requirements_text=st.one_of(st.none(), st.text(max_size=200)),
    )


# --- models ------------------------------------------------------------------------------

_TIMES = st.floats(min_value=0, max_value=4e9, allow_nan=False, allow_infinity=False)
_HEX = st.text("0123456789abcdef", min_size=64, max_size=64)
_TEXT = st.text(max_size=60)
_GENERATIONS = st.integers(min_value=0, max_value=10**6)


def paths() -> st.SearchStrategy[Path]:
    return st.lists(st.text(ID_ALPHABET + "@ ", min_size=1, max_size=12), max_size=6).map(
        lambda parts: Path("/", *parts)
    )


def json_values() -> st.SearchStrategy[Any]:
    """Values that JSON carries unchanged (lists, not tuples; finite floats)."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**63), max_value=2**63),
        st.floats(allow_nan=False, allow_infinity=False),
        _TEXT,
    )
    return st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=4), st.dictionaries(_TEXT, children, max_size=4)
        ),
        max_leaves=12,
    )


def retired_generations() -> st.SearchStrategy[RetiredGeneration]:
    return st.builds(RetiredGeneration, generation=_GENERATIONS, retired_at=_TIMES)


def ray_links() -> st.SearchStrategy[RayLink]:
    return st.builds(
        RayLink,
        ray_version=_TEXT,
        python=_TEXT,
        site_dir=_TEXT,
        error=st.one_of(st.none(), _TEXT),
    )


def environments() -> st.SearchStrategy[Environment]:
    return st.builds(
        Environment,
        key=env_keys(),
        env_path=paths(),
        status=st.sampled_from(EnvStatus),
        spec=env_specs(),
        spec_hash=_HEX,
        python_version=_TEXT,
        python_executable=_TEXT,
        generation=_GENERATIONS,
        pending_generation=st.one_of(st.none(), _GENERATIONS),
        retired=st.lists(retired_generations(), max_size=3).map(tuple),
        created_at=_TIMES,
        updated_at=_TIMES,
        error=st.one_of(st.none(), _TEXT),
        ray=st.one_of(st.none(), ray_links()),
        digest=st.one_of(st.just(""), env_digests()),
    )


def status_reports() -> st.SearchStrategy[StatusReport]:
    return st.builds(
        StatusReport,
        key=env_keys(),
        status=st.sampled_from(EnvStatus),
        env_path=paths(),
        has_pyproject=st.booleans(),
        has_uv_lock=st.booleans(),
        has_venv=st.booleans(),
        environment=st.one_of(st.none(), environments()),
    )


def operation_results() -> st.SearchStrategy[OperationResult]:
    return st.builds(
        OperationResult,
        environment=environments(),
        operation=st.sampled_from(["add", "update", "remove", "sync", "ensure"]),
        stdout=_TEXT,
        stderr=_TEXT,
        exit_code=st.integers(-255, 255),
        duration_ms=st.integers(0, 10**9),
    )


def dependencies() -> st.SearchStrategy[Dependencies]:
    return st.builds(
        Dependencies,
        key=env_keys(),
        declared=requirement_lists(),
        locked=st.dictionaries(canonical_names(), _VERSIONS, max_size=5),
    )


def exports() -> st.SearchStrategy[Export]:
    return st.builds(Export, key=env_keys(), pyproject_toml=_TEXT, uv_lock=_TEXT)


def provisioned() -> st.SearchStrategy[_reports.Provisioned]:
    return st.builds(
        _reports.Provisioned,
        environment=environments(),
        outcome=st.sampled_from(_reports.ProvisionOutcome),
        pyproject_toml=_TEXT,
    )


def delete_results() -> st.SearchStrategy[DeleteResult]:
    return st.builds(DeleteResult, key=env_keys(), status=st.sampled_from(["DELETED", "NOT_FOUND"]))


def live_processes() -> st.SearchStrategy[_reports.LiveProcess]:
    return st.builds(_reports.LiveProcess, pid=st.integers(1, 2**22), description=_TEXT)


def envs_in_use() -> st.SearchStrategy[_reports.EnvInUse]:
    return st.builds(
        _reports.EnvInUse,
        key=env_keys(),
        processes=st.lists(live_processes(), min_size=1, max_size=3).map(tuple),
    )


def cleanup_removals() -> st.SearchStrategy[_reports.CleanupRemoval]:
    return st.builds(
        _reports.CleanupRemoval,
        key=env_keys(),
        reason=st.sampled_from(["idle", "disk budget"]),
        bytes=st.integers(0, 2**50),
        idle_seconds=st.floats(0, 1e9, allow_nan=False),
    )


def cleanup_reports() -> st.SearchStrategy[CleanupReport]:
    return st.builds(
        CleanupReport,
        deleted=st.lists(env_keys(), max_size=3).map(tuple),
        skipped_busy=st.lists(env_keys(), max_size=3).map(tuple),
        pruned_generations=st.integers(0, 1000),
        checked_at=_TIMES,
        pruned_store_entries=st.integers(0, 1000),
        pruned_locks=st.integers(0, 1000),
        skipped_leased=st.lists(env_keys(), max_size=3).map(tuple),
        bytes_in_use=st.one_of(st.none(), st.integers(0, 2**50)),
        skipped_in_use=st.lists(envs_in_use(), max_size=3).map(tuple),
        store_entries_in_use=st.integers(0, 1000),
        removals=st.lists(cleanup_removals(), max_size=3).map(tuple),
        dry_run=st.booleans(),
    )


def verify_reports() -> st.SearchStrategy[_reports.VerifyReport]:
    return st.builds(
        _reports.VerifyReport,
        key=env_keys(),
        problems=st.lists(_TEXT, max_size=3).map(tuple),
        checked_files=st.integers(0, 10**6),
        digest=st.one_of(st.just(""), env_digests()),
    )


def operation_records() -> st.SearchStrategy[OperationRecord]:
    optional_int = st.one_of(st.none(), st.integers(-(2**31), 2**31))
    return st.builds(
        OperationRecord,
        id=st.integers(1, 2**62),
        workflow_id=valid_ids(),
        node_id=valid_ids(),
        version_id=st.one_of(st.just(""), valid_ids()),
        operation=st.sampled_from(
            ["create", "ensure", "add", "update", "remove", "sync", "delete"]
        ),
        status=st.sampled_from(["RUNNING", "SUCCESS", "FAILED"]),
        started_at=_TIMES,
        finished_at=st.one_of(st.none(), _TIMES),
        duration_ms=optional_int,
        stdout=_TEXT,
        stderr=_TEXT,
        exit_code=optional_int,
        error=st.one_of(st.none(), _TEXT),
        metadata=st.dictionaries(_TEXT, json_values(), max_size=4),
    )


def operation_pages() -> st.SearchStrategy[OperationPage]:
    return st.builds(
        OperationPage,
        total=st.integers(0, 10**6),
        limit=st.integers(0, 1000),
        offset=st.integers(0, 10**6),
        items=st.lists(operation_records(), max_size=3).map(tuple),
    )


def env_usages() -> st.SearchStrategy[EnvUsage]:
    return st.builds(
        EnvUsage,
        key=env_keys(),
        own_bytes=st.integers(0, 2**40),
        venv_bytes=st.integers(0, 2**40),
        last_used=st.floats(0, 2e9, allow_nan=False),
        leased_generations=st.lists(st.integers(1, 10**6), max_size=3).map(tuple),
    )


def deleted_operations() -> st.SearchStrategy[DeletedOperations]:
    return st.builds(
        DeletedOperations,
        workflow_id=valid_ids(),
        node_id=st.one_of(st.just(""), valid_ids()),
        deleted_count=st.integers(0, 10**6),
        deleted_node_ids=st.lists(valid_ids(), max_size=3).map(tuple),
    )


# --- the env digest ------------------------------------------------------------------------

_RECORD_HASHES = st.binary(min_size=32, max_size=32).map(
    lambda raw: "sha256=" + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
)
_RECORD_PATHS = st.lists(
    st.text(string.ascii_letters + string.digits + "_-.", min_size=1, max_size=12),
    min_size=1,
    max_size=4,
).map(lambda parts: "lib/python3.12/site-packages/" + "/".join(parts))


def record_files() -> st.SearchStrategy[dict[str, str]]:
    """Installed files as the digest sees them: path relative to the venv -> RECORD hash."""
    return st.dictionaries(_RECORD_PATHS, _RECORD_HASHES, max_size=12)


def venv_configs() -> st.SearchStrategy[dict[str, str]]:
    """The ``pyvenv.cfg`` keys the digest covers."""
    return st.fixed_dictionaries(
        {
            "implementation": st.sampled_from(["CPython", "PyPy"]),
            "version_info": st.sampled_from(["3.11.9", "3.12.3", "3.13.0"]),
            "include-system-site-packages": st.sampled_from(["false", "true"]),
        }
    )


def env_digests() -> st.SearchStrategy[str]:
    return st.builds(env_digest, record_files().map(dict.items), venv_configs())


# --- the cheap hand-out check (manifest) ---------------------------------------------------

_STAMPS = st.tuples(st.integers(0, 2**40), st.integers(0, 2**62))
_TOP_NAMES = st.frozensets(st.text(string.ascii_lowercase + "_.-", min_size=1, max_size=10))


_TREE_PART = st.text(string.ascii_lowercase + string.digits + "_", min_size=1, max_size=6)


def _no_prefixes(paths: list[str]) -> list[str]:
    """Drop a path that names a folder of another (a file cannot be both)."""
    return [p for p in paths if not any(o.startswith(p + "/") for o in paths)]


def site_trees() -> st.SearchStrategy[dict[str, bytes]]:
    """Files under a site-packages, path relative to it -> bytes; never a file over a folder."""
    paths = st.lists(st.lists(_TREE_PART, min_size=1, max_size=3).map("/".join), max_size=10)
    return paths.map(lambda found: _no_prefixes(sorted(set(found)))).flatmap(
        lambda kept: st.fixed_dictionaries({p: st.binary(max_size=20) for p in kept})
    )


def manifests() -> st.SearchStrategy[Manifest]:
    """What a venv's manifest records: path -> (size, mtime_ns), and top-level names."""
    return st.builds(
        Manifest,
        st.dictionaries(_RECORD_PATHS, _STAMPS, max_size=12),
        _TOP_NAMES,
    )


def measured_after(recorded: Manifest) -> st.SearchStrategy[Manifest]:
    """The same venv measured later: each recorded file kept, restamped or vanished."""
    kept = {
        path: st.one_of(st.just(stamp), _STAMPS, st.none())
        for path, stamp in recorded.files.items()
    }
    return st.builds(
        lambda files: Manifest({p: v for p, v in files.items() if v is not None}, recorded.entries),
        st.fixed_dictionaries(kept),
    )


# --- the wheel relay's URLs ----------------------------------------------------------------

_HOSTS = st.one_of(
    st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?(\.[a-z]{2,6}){0,2}", fullmatch=True),
    st.from_regex(r"[0-9]{1,3}(\.[0-9]{1,3}){3}", fullmatch=True),
    st.just("[::1]"),
)
_SEGMENTS = st.lists(
    st.from_regex(r"[A-Za-z0-9._~!$&'()*+,;=:@-]{1,12}|%[0-9A-F]{2}", fullmatch=True), max_size=3
)


def relayed_files() -> st.SearchStrategy[RelayedFile]:
    """Files a lock could name: an http(s) origin ending in a distribution file's name."""
    names = st.from_regex(
        r"[A-Za-z0-9][A-Za-z0-9._+!-]{0,15}-[0-9]{1,3}-py3-none-any\.(whl|tar\.gz|zip)",
        fullmatch=True,
    )
    return st.builds(
        lambda scheme, host, port, segments, name, digest, size: RelayedFile(
            digest,
            f"{scheme}://{host}{port}/{''.join(s + '/' for s in segments)}{name}",
            name,
            size,
        ),
        st.sampled_from(["http", "https"]),
        _HOSTS,
        st.one_of(st.just(""), st.integers(1, 65535).map(lambda p: f":{p}")),
        _SEGMENTS,
        names,
        st.from_regex(r"[0-9a-f]{64}", fullmatch=True),
        st.one_of(st.none(), st.integers(0, 10**12)),
    )


def relay_paths() -> st.SearchStrategy[str]:
    """Paths after a relay's token: valid ones, valid ones damaged, and any text at all."""
    valid = relayed_files().map(lambda f: relay_url("", f).lstrip("/"))
    damaged = st.tuples(valid, st.integers(0, 200), st.text(max_size=8)).map(
        lambda v: v[0][: v[1]] + v[2] + v[0][v[1] + len(v[2]) :]
    )
    return st.one_of(valid, damaged, st.text(max_size=300))
