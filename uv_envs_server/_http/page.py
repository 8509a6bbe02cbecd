"""The status page at ``/``: one server-rendered HTML page, no build step.

Complete without JavaScript; a small inline script follows ``/v1/events``
and adds what happens after the page was made (operations in flight with a
progress bar per phase, envs appearing and going, new failures).

It shows every env (status, Python, packages, size on disk, last use,
generation, which nodes of a served Ray cluster hold it, its recent operations
with uv's stderr for failures) and the recent failed operations of the whole
root, which include failed creates (rolled back, so without an env). Damaged
and leased envs, and nodes missing an env or not served, stand out. It reads
only; every value is escaped.
"""

from __future__ import annotations

import datetime as dt
import functools
import html
import importlib.resources
import string
from collections import defaultdict
from typing import TYPE_CHECKING, Final

from uv_envs_server._nodes import cluster_nodes, node_presence

if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    import uv_envs

#: Audit records read per page: enough for the recent history of every env.
RECENT_OPERATIONS: Final = 500
#: Operations listed under one env, and failures listed at the bottom.
PER_ENV: Final = 8
FAILURES: Final = 20
#: uv's stderr is cut to its last this many characters (uv puts the cause last).
STDERR_TAIL: Final = 4000
_KIB: Final = 1024


@functools.cache
def _template() -> string.Template:
    text = (
        importlib.resources.files("uv_envs_server")
        .joinpath("_templates/status.html")
        .read_text(encoding="utf-8")
    )
    return string.Template(text)


def _when(timestamp: float | None) -> str:
    if not timestamp:
        return "never"
    moment = dt.datetime.fromtimestamp(timestamp, tz=dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _size(count: int) -> str:
    amount = float(count)
    for unit in ("B", "KiB", "MiB"):
        if amount < _KIB:
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= _KIB
    return f"{amount:.1f} GiB"


def _stderr(record: uv_envs.OperationRecord) -> str:
    text = record.stderr.strip()
    if len(text) > STDERR_TAIL:
        text = "[...]\n" + text[-STDERR_TAIL:]
    first = (record.error or "failed").strip().splitlines()[0] if record.error else "failed"
    parts = [f"<strong>{html.escape(first)}</strong>"]
    if text:
        parts.append(f"<pre class='stderr'>{html.escape(text)}</pre>")
    return "".join(parts)


def _operations(records: list[uv_envs.OperationRecord]) -> str:
    items = []
    for record in records[:PER_ENV]:
        status = html.escape(record.status)
        line = (
            f"<li><span class='badge op-{status}'>{html.escape(record.operation)} {status}</span> "
            f"<span class='muted'>{_when(record.started_at)}</span>"
        )
        if record.status == "FAILED":
            line += _stderr(record)
        items.append(line + "</li>")
    return f"<ul>{''.join(items)}</ul>" if items else "<span class='muted'>none</span>"


def _nodes(presence: list[dict[str, Any]] | None) -> str:
    """The env's copies on a served cluster's nodes: the missing and failed ones first."""
    if presence is None:
        return "<span class='muted'>this host</span>"
    order = {"failed": 0, "missing": 1, "present": 2}
    items = []
    for node in sorted(presence, key=lambda n: order.get(n["state"], 0)):
        state = html.escape(node["state"])
        line = (
            f"<li class='node-{state}'><span class='badge node-{state}'>{state}</span> "
            f"<code>{html.escape(node['node_id'][:12])}</code> "
            f"<span class='muted'>{html.escape(node['address'])}</span>"
        )
        if node.get("error"):
            line += f"<div class='muted'>{html.escape(node['error'])}</div>"
        if node.get("next_retry"):
            line += f"<div class='muted'>tried again at {html.escape(node['next_retry'])}</div>"
        items.append(line + "</li>")
    return (
        f"<ul class='nodes'>{''.join(items)}</ul>" if items else "<span class='muted'>none</span>"
    )


def _served(node: dict[str, Any]) -> str:
    if node["problem"]:
        return html.escape(node["problem"])
    if not node.get("plugin"):
        return "served (no plugin: late envs arrive by the server's reconciling rounds)"
    return "served"


def _cluster(nodes: list[dict[str, Any]] | None) -> str:
    """The served cluster's nodes, those that cannot be served with the reason."""
    if nodes is None:
        return "<p class='muted'>Not serving a Ray cluster (start with --ray-address).</p>"
    rows = [
        f"<tr class='{'unserved' if n['problem'] else ''}'>"
        f"<td><code>{html.escape(n['node_id'])}</code></td><td>{html.escape(n['address'])}</td>"
        f"<td>{_served(n)}</td></tr>"
        for n in nodes
    ]
    body = "\n".join(rows) or "<tr><td colspan='3' class='muted'>no alive node</td></tr>"
    return (
        "<table id='cluster'><thead><tr><th>Node</th><th>Address</th><th>State</th></tr>"
        f"</thead><tbody>{body}</tbody></table>"
    )


def _row(
    manager: uv_envs.EnvManager,
    environment: uv_envs.Environment,
    records: list[uv_envs.OperationRecord],
) -> str:
    status = environment.status.value
    usage = manager.usage(environment.key)
    leases, last_used = usage.leased_generations, usage.last_used
    own, shared = usage.own_bytes, usage.venv_bytes
    classes = " ".join(
        name for name, on in (("damaged", status == "DAMAGED"), ("leased", bool(leases))) if on
    )
    badges = f"<span class='badge {status}'>{status}</span>"
    if leases:
        badges += f" <span class='badge leased-badge'>LEASED ({len(leases)})</span>"
    if environment.error:
        badges += f"<div class='muted'>{html.escape(environment.error)}</div>"
    size = _size(own) + (f" + venv {_size(shared)}" if shared else "")
    packages = "<br>".join(html.escape(p) for p in environment.spec.packages) or "—"
    return (
        f"<tr class='{classes}' data-key='{html.escape(str(environment.key))}'>"
        f"<td><code>{html.escape(str(environment.key))}</code></td>"
        f"<td>{badges}</td>"
        f"<td>{html.escape(environment.python_version)}</td>"
        f"<td>{packages}</td>"
        f"<td>{size}</td>"
        f"<td>{_when(last_used)}</td>"
        # Generation 0 is an env whose first build has not finished: it has none yet.
        f"<td>{environment.generation or '—'}{_digest(environment.digest)}</td>"
        f"<td>{_nodes(node_presence(manager, environment.key))}</td>"
        f"<td>{_operations(records)}</td></tr>"
    )


def _in_flight(records: Sequence[uv_envs.OperationRecord]) -> str:
    """The operations running as the page is made (from their audit records), or "none".

    The live updates follow only what happens after the page was made: without
    these rows an env mid-create would show its create RUNNING and nothing in flight.
    """
    rows = []
    for record in records:
        if record.status != "RUNNING":
            continue
        key = html.escape(f"{record.workflow_id}/{record.node_id}/{record.version_id}")
        rows.append(
            f"<tr class='rendered' data-key='{key}'><td>{key}</td>"
            f"<td class='muted'>{html.escape(record.operation)}</td>"
            f"<td class='muted'>running since {_when(record.started_at)}</td></tr>"
        )
    hidden = " hidden" if rows else ""
    none = f"<tr class='none'{hidden}><td colspan='3' class='muted'>none</td></tr>"
    return "\n".join([none, *rows])


def _digest(digest: str) -> str:
    """The env digest under the generation: its start, the whole on hover."""
    if not digest:
        return ""
    whole = html.escape(digest)
    return f"<div class='muted digest' title='{whole}'><code>{whole[:19]}</code></div>"


def render_status_page(manager: uv_envs.EnvManager) -> str:
    """The page's HTML for the manager's root (runs on a worker thread: it reads the disk)."""
    # Read first: the live updates replay from here, so nothing after the read is missed.
    sequence = manager.events.last_sequence
    environments = manager.list_environments()
    page = manager.operations(limit=RECENT_OPERATIONS)
    by_key: defaultdict[tuple[str, str, str], list[uv_envs.OperationRecord]] = defaultdict(list)
    for record in page.items:
        by_key[record.workflow_id, record.node_id, record.version_id].append(record)
    rows = [
        _row(manager, env, by_key[env.key.workflow_id, env.key.node_id, env.key.version_id])
        for env in environments
    ]
    failed = [r for r in page.items if r.status == "FAILED"][:FAILURES]
    failures = [
        f"<tr class='failure'><td>{_when(r.started_at)}</td>"
        f"<td><code>{html.escape(f'{r.workflow_id}/{r.node_id}/{r.version_id}')}</code></td>"
        f"<td>{html.escape(r.operation)}</td><td>{_stderr(r)}</td></tr>"
        for r in failed
    ]
    empty = "<tr><td colspan='9' class='muted'>none</td></tr>"
    return _template().substitute(
        root=html.escape(str(manager.settings.root)),
        count=len(environments),
        generated=_now(),
        rows="\n".join(rows) or empty,
        failures="\n".join(failures) or empty,
        cluster=_cluster(cluster_nodes(manager)),
        sequence=sequence,
        inflight=_in_flight(page.items),
    )


def _now() -> str:
    return dt.datetime.now(tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
