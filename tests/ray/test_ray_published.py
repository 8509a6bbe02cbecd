"""The served envs' records (uv_envs.ray._published), without a cluster: a dict plays the GCS."""

from __future__ import annotations

import importlib.util

import pytest

if importlib.util.find_spec("ray") is None:
    pytest.skip("ray is not installed (pip install -e '.[ray]')", allow_module_level=True)

from uv_envs import EnvKey, InvalidInput
from uv_envs.ray._published import PublishedEnv, Registry, env_path_of

PYPROJECT = (
    '[project]\nname = "x"\nversion = "0"\nrequires-python = "==3.11.*"\ndependencies = []\n'
)
LOCK = 'version = 1\nrequires-python = "==3.11.*"\n'


class DictKeyValue:
    """Ray's GCS key-value calls over a dict."""

    def __init__(self) -> None:
        self.data: dict[tuple[bytes | None, bytes], bytes] = {}

    def internal_kv_get(
        self, key: bytes, namespace: bytes | None, timeout: float | None = None
    ) -> bytes | None:
        del timeout
        return self.data.get((namespace, key))

    def internal_kv_put(
        self,
        key: bytes,
        value: bytes,
        overwrite: bool,
        namespace: bytes | None,
        timeout: float | None = None,
    ) -> int:
        del timeout
        if not overwrite and (namespace, key) in self.data:
            return 0
        self.data[namespace, key] = value
        return 1

    def internal_kv_del(
        self,
        key: bytes,
        del_by_prefix: bool,
        namespace: bytes | None,
        timeout: float | None = None,
    ) -> int:
        del del_by_prefix, timeout
        return 1 if self.data.pop((namespace, key), None) is not None else 0

    def internal_kv_keys(
        self, prefix: bytes, namespace: bytes | None, timeout: float | None = None
    ) -> list[bytes]:
        del timeout
        return [k for ns, k in self.data if ns == namespace and k.startswith(prefix)]


def record(env_path: str = "/srv/uv/envs/wf/n/v1") -> PublishedEnv:
    return PublishedEnv("wf", "n", "v1", "/srv/uv", env_path, PYPROJECT, LOCK)


def test_a_published_env_is_found_by_its_path_until_withdrawn() -> None:
    registry = Registry(DictKeyValue())
    registry.publish(record())
    assert registry.lookup("/srv/uv/envs/wf/n/v1") == record()
    assert registry.records() == [record()]
    assert registry.served_root("/srv/uv/envs/wf/gone/@") == "/srv/uv"
    assert registry.served_root("/opt/other/.venv") is None
    registry.withdraw("/srv/uv/envs/wf/n/v1")
    assert registry.lookup("/srv/uv/envs/wf/n/v1") is None
    assert registry.served_root("/srv/uv/envs/wf/n/v1") == "/srv/uv"  # still a served root


def test_the_record_round_trips_and_names_wtbs_interpreter() -> None:
    published = record()
    assert PublishedEnv.from_json(published.to_json()) == published
    assert published.python_path == "/srv/uv/envs/wf/n/v1/.venv/bin/python"
    assert published.key == EnvKey("wf", "n", "v1")
    assert published.spec.python == "3.11"


def test_a_record_with_files_that_are_not_a_locked_spec_is_refused() -> None:
    broken = PublishedEnv("wf", "n", "v1", "/srv/uv", "/srv/uv/envs/wf/n/v1", "[project", LOCK)
    with pytest.raises(InvalidInput):
        _ = broken.spec


@pytest.mark.parametrize(
    ("runtime_env", "expected"),
    [
        ({"py_executable": "/srv/uv/envs/wf/n/v1/.venv/bin/python"}, "/srv/uv/envs/wf/n/v1"),
        ({"env_vars": {"VIRTUAL_ENV": "/srv/uv/envs/wf/n/v1/.venv"}}, "/srv/uv/envs/wf/n/v1"),
        ({"py_executable": "python3", "env_vars": {"OTHER": "1"}}, None),
        ({"env_vars": {"VIRTUAL_ENV": "/opt/venv"}}, None),
        ({}, None),
    ],
)
def test_the_env_of_a_runtime_env(runtime_env: dict[str, object], expected: str | None) -> None:
    assert env_path_of(runtime_env) == expected
