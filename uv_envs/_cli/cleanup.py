"""``uv-envs cleanup``: what went (or, with ``--dry-run``, would go), why, and the bytes."""

from __future__ import annotations

import argparse

from uv_envs._manager import EnvManager
from uv_envs._models import converter

from . import values
from .boundary import EXIT_OK


def run_cleanup(args: argparse.Namespace, manager: EnvManager) -> int:
    idle = None if args.idle_hours is None else args.idle_hours * 3600
    cleaned = manager.cleanup(
        idle,
        max_bytes=args.max_bytes,
        min_idle_seconds=args.min_idle_hours * 3600,
        dry_run=args.dry_run,
    )
    if args.json:
        values.print_json(converter.unstructure(cleaned))
        return EXIT_OK
    verb = "would delete" if cleaned.dry_run else "deleted"
    for removal in cleaned.removals:
        why = f"idle {values.human_hours(removal.idle_seconds)}"
        if removal.reason != "idle":
            why += ", least recently used while over --max-bytes"
        print(f"{verb} {values.shown(removal.key)}: {why}; {values.human_size(removal.bytes)}")
    for key in cleaned.skipped_leased:
        print(f"leased, skipped {values.shown(key)}")
    for key in cleaned.skipped_busy:
        print(f"busy, skipped {values.shown(key)}")
    for in_use in cleaned.skipped_in_use:
        pids = ", ".join(f"pid {p.pid} ({p.description})" for p in in_use.processes)
        print(f"in use, skipped {values.shown(in_use.key)}: {pids}")
    # One line either way, so a cleanup that deleted nothing still says so.
    freed = values.human_size(sum(r.bytes for r in cleaned.removals))
    summary = (
        f"{verb} {len(cleaned.removals)} envs ({freed}), "
        f"{'would prune' if cleaned.dry_run else 'pruned'} {cleaned.pruned_generations} generations"
    )
    if cleaned.bytes_in_use is not None:
        summary += f"; the root holds {cleaned.bytes_in_use} bytes"
    print(summary)
    return EXIT_OK
