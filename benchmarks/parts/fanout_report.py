"""The markdown of ``bench_fanout.py``: every figure, each ratio, and whether each target is met."""

from __future__ import annotations

import statistics
from typing import Any

from parts.fanout import Count, OneNode

#: Issue 21's targets.
BYTES_TARGET = 1.05
SPEED_TARGET = 5.0


def _mb(count: Count) -> str:
    return f"{count.bytes / 1e6:.1f} MB"


def _met(ok: bool) -> str:  # noqa: FBT001 - a table cell
    return "met" if ok else "**missed**"


def _bytes_rows(r: dict[str, Any]) -> list[str]:
    one: OneNode = r["one_node"]
    unit = one.count.bytes or 1
    rows = [
        (
            f"| {r['set']} | one node alone (uv-envs root) | {_mb(one.count)} | {one.count.files} "
            f"| {one.count.requests} ({one.count.most}) | 1.00x | {one.cold:.2f} s (that node) | |"
        )
    ]
    at_once, together = r["at_once"]
    rows.append(
        f"| {r['set']} | 4 uv-envs roots alone at once (no relay) | {_mb(together)} "
        f"| {together.files} | {together.requests} ({together.most}) "
        f"| {together.bytes / unit:.2f}x | {at_once:.2f} s (all four) | |"
    )
    routes = [
        ("uv-envs served", "cold"),
        ("Ray `uv` field", "uv_cold"),
        ("Ray `pip` field", "pip_cold"),
    ]
    for label, field in routes:
        if field not in r:
            continue
        elapsed, count = r[field]
        ratio = count.bytes / unit
        verdict = _met(ratio <= BYTES_TARGET) if field == "cold" else ""
        rows.append(
            f"| {r['set']} | {label} | {_mb(count)} | {count.files} | {count.requests} "
            f"({count.most}) | {ratio:.2f}x | {elapsed:.2f} s | {verdict} |"
        )
    return rows


def _speed_rows(r: dict[str, Any]) -> list[str]:
    creates = r["creates"]
    cold, uv_cold = r["cold"][0], r["uv_cold"][0]
    warm = statistics.median(t for t, _ in r["warm"])
    uv_warm = statistics.median(t for t, _ in r["uv_warm"])
    warm_create = statistics.median(v for k, v in creates.items() if k.startswith("warm-"))
    warm_bytes = max(c.bytes for _, c in r["warm"])
    uv_warm_bytes = statistics.median(c.bytes for _, c in r["uv_warm"])
    return [
        (
            f"| {r['set']} | cold (empty caches) | {cold:.2f} s ({creates['cold']:.2f} s) "
            f"| {uv_cold:.2f} s | {uv_cold / cold:.1f}x | {_met(uv_cold / cold >= SPEED_TARGET)} |"
        ),
        (
            f"| {r['set']} | warm | {warm:.2f} s ({warm_create:.2f} s) | {uv_warm:.2f} s "
            f"| {uv_warm / warm:.1f}x | {_met(uv_warm / warm >= SPEED_TARGET)} |"
        ),
        (
            f"| {r['set']} | warm: index bytes | {warm_bytes / 1e6:.1f} MB at most "
            f"| {uv_warm_bytes / 1e6:.1f} MB | | |"
        ),
    ]


def _order_row(r: dict[str, Any]) -> str:
    elapsed, count = r["order"]
    fetched = r["relay_order"][0] - r["relay_cold"][0]
    before, after = r["stores_cold"], r["stores_order"]
    built = sum(after) - sum(before)
    uv_elapsed, uv_count = r["uv_order"]
    ok = built == 0 and count.requests == 0 and fetched == 0
    return (
        f"| {r['set']} | {elapsed:.2f} s ({r['creates']['order']:.2f} s) "
        f"| {count.requests} | {fetched} "
        f"| {before} -> {after} | {_met(ok)} | {uv_elapsed:.2f} s, {_mb(uv_count)} |"
    )


def _floor_row(r: dict[str, Any]) -> str:
    one: OneNode = r["one_node"]
    first, later = r["floor"]
    at_once = r["at_once"][0]
    cold_floor = at_once + first
    warm_floor = one.warm + later
    uv_cold = r["uv_cold"][0]
    uv_warm = statistics.median(t for t, _ in r["uv_warm"])
    files, size = r["relay_end"]
    return (
        f"| {r['set']} | {first:.2f} s / {later:.2f} s | {one.warm:.2f} s "
        f"| {cold_floor:.2f} s ({uv_cold / cold_floor:.1f}x) "
        f"| {warm_floor:.2f} s ({uv_warm / warm_floor:.1f}x) | {files} files, {size / 1e6:.1f} MB |"
    )


def render(header: str, results: list[dict[str, Any]]) -> str:
    lines = [
        header,
        "",
        (
            "Bytes the index served to provision the set on all 4 nodes, empty caches "
            "(requests: file downloads, the most any one file got in brackets):"
        ),
        "",
        (
            "| set | route | index bytes | files | requests (most per file) | x one node "
            "| time until every node runs a task | target <= 1.05x |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.extend(_bytes_rows(r))
    lines += [
        "",
        (
            "First task on a new spec, an actor pinned on each of the 4 nodes "
            "(uv-envs: `CreateEnv` + the actors, the `CreateEnv` part in brackets; "
            "Ray: the actors):"
        ),
        "",
        "| set | nodes | uv-envs | Ray `uv` field | ratio | target >= 5x |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.extend(_speed_rows(r))
    lines += [
        "",
        (
            "The same spec in another order (the set reversed, a new env name), then the "
            "actors on every node (`CreateEnv` part in brackets):"
        ),
        "",
        (
            "| set | uv-envs | index file requests | relay fetches | venvs built per node "
            "(head, n1-n3), before -> after | no new install | Ray `uv` field (reinstalls) |"
        ),
        "|---|---|---|---|---|---|---|",
    ]
    lines.extend(_order_row(r) for r in results)
    lines += [
        "",
        (
            "Floors, same run: Ray starting a worker on every node for a new runtime env whose "
            "interpreter exists (before the cold step / before the warm steps); one node alone, "
            "a new spec with its cache warm (`uv lock` + `uv sync` from the cache + the "
            "`import ray` check); the cold floor (4 roots alone at once + the first worker "
            "start) and the warm floor (one node's warm new spec + the later worker start), "
            "each with Ray's `uv` field's time over it (the best ratio this machine allows); "
            "what the relay kept at the end:"
        ),
        "",
        (
            "| set | Ray worker start, every node | one node, warm new spec | cold floor "
            "(Ray `uv` / floor) | warm floor (Ray `uv` / floor) | relay kept |"
        ),
        "|---|---|---|---|---|---|",
    ]
    lines.extend(_floor_row(r) for r in results)
    return "\n".join(lines)
