"""Fakes for fast tests of code that uses uv-envs, without uv or a package index.

``FakeUvExecutor`` plays uv on the file system: it resolves against an
in-memory catalog, writes ``uv.lock`` files in uv's layout, and builds a
venv-shaped folder (no interpreter is copied; ``bin/python`` links to the
running one). ``RecordingPublisher`` keeps the events it was given, ``InMemoryAuditLog``
the audit records, ``RecordingCompiler`` the bytecode jobs. ``FakeProcesses``
stands in for the ``/proc`` scan that keeps envs live processes use.
``CountingIndex`` is a real package index on loopback over a folder of wheels
that counts the requests and bytes it serves.

Example::

    executor = FakeUvExecutor({"alpha": ["1.0", "2.0"]})
    manager = EnvManager(Settings(root=tmp_path), executor=executor,
                         python_finder=FakePythonFinder())
"""

from ._contract import check_provider_contract
from ._index import CountingIndex, Served
from ._processes import FakeProcesses
from ._recorders import InMemoryAuditLog, RecordingCompiler, RecordingPublisher
from ._uv import CountingExecutor, FakePythonFinder, FakeUvExecutor

__all__ = [
    "CountingExecutor",
    "CountingIndex",
    "FakeProcesses",
    "FakePythonFinder",
    "FakeUvExecutor",
    "InMemoryAuditLog",
    "RecordingCompiler",
    "RecordingPublisher",
    "Served",
    "check_provider_contract",
]
