"""The markdown ``run.py`` prints: the machine, one table per part, and the targets."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence

import uv_envs
from parts.bytecode import BYTECODE_MODES
from parts.common import (
    BUILT,
    NEW_API,
    NEW_CLI,
    NEW_RAY,
    NEW_SHARED,
    PIP,
    RAW,
    RAW_LOCK,
    RAW_NO_LOCK,
    RAW_SYNC,
    STORED,
    Bench,
    fmt_ratio,
    fmt_s,
    median,
    mem_total,
)
from parts.liveness import liveness_rows
from parts.metadata import SYNTHETIC_ENVS


def machine(uv: str) -> list[tuple[str, str]]:
    uv_version = subprocess.run(
        [uv, "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return [
        ("platform", platform.platform()),
        ("processor", platform.machine()),
        ("os.cpu_count()", str(os.cpu_count())),
        ("memory", mem_total()),
        ("uv", uv_version),
        ("Python", sys.version.split()[0] + f" ({platform.python_implementation()})"),
        ("uv-envs", uv_envs.__version__),
        ("date (UTC)", time.strftime("%Y-%m-%d %H:%M", time.gmtime())),
    ]


def report(bench: Bench, set_names: Sequence[str], modes: Sequence[str]) -> str:  # noqa: C901 - one table per benchmark, in order
    lines = ["## Machine", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in machine(bench.uv)]
    lines += [
        "",
        (
            f"Medians of {bench.reps} repetitions (cold cache: {bench.cold_reps}). "
            "Interpreter discovery (a full scan, EnvManager.pythons(), once per EnvManager; "
            "a create of the running Python's version needs none; left out of in-process "
            f"figures): {bench.discovery_s * 1000:.2f} ms."
        ),
        "",
        "## Creating environments",
        "",
        (
            "x floor = this / raw uv (venv + lock + sync); x sync floor = this / raw uv "
            "(venv + sync, lock given); pip / this = how many times faster than venv + pip."
        ),
        "",
        (
            "| measurement | set | uv cache | median | min | x floor | x sync floor "
            "| pip / this | uv runs |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    order = [RAW, RAW_NO_LOCK, RAW_LOCK, RAW_SYNC, PIP, NEW_API, NEW_RAY, NEW_CLI, NEW_SHARED]
    order += [STORED, BUILT]
    for set_name in set_names:
        for mode in modes:
            floor = median(bench.samples.get((RAW, set_name, mode), []))
            sync_floor = median(bench.samples.get((RAW_NO_LOCK, set_name, mode), []))
            pip = median(bench.samples.get((PIP, set_name, mode), []))
            for what in order:
                samples = bench.samples.get((what, set_name, mode))
                if not samples:
                    continue
                value = median(samples)
                lines.append(
                    f"| {what} | {set_name} | {mode} | {fmt_s(value)} | {fmt_s(min(samples))} "
                    f"| {fmt_ratio(value / floor)} | {fmt_ratio(value / sync_floor)} "
                    f"| {fmt_ratio(pip / value)} | {bench.notes.get((what, set_name, mode), '')} |"
                )
    lines += [
        "",
        "## Disk",
        "",
        "| set | bytes under the env dir of an extra env (4b) |",
        "|---|---|",
    ]
    for set_name in set_names:
        apparent, allocated = bench.extra.get(f"disk_per_env_{set_name}", (0, 0))
        lines.append(
            f"| {set_name} | {apparent / 1024:.1f} KiB apparent, {allocated / 1024:.1f} KiB "
            "allocated |"
        )
    lines += [
        "",
        "## Concurrency (warm cache)",
        "",
        "| measurement | set | one | concurrent | ratio | uv runs (all together) |",
        "|---|---|---|---|---|---|",
    ]
    for set_name in set_names:
        for kind, label in (
            ("threads", "16 threads ensure one key"),
            ("processes", "8 processes ensure 8 keys, one spec"),
        ):
            data = bench.extra.get(f"{kind}_{set_name}")
            if data:
                lines.append(
                    f"| {label} | {set_name} | {fmt_s(data['one'])} | {fmt_s(data['many'])} "
                    f"| {fmt_ratio(data['many'] / data['one'])} | {data['counts']} |"
                )
    status = bench.extra.get("status")
    if status:
        lines += [
            "",
            "## Metadata operations",
            "",
            "| measurement | median |",
            "|---|---|",
            (
                f"| status of one env (in-process) | {status['median'] * 1000:.3f} ms "
                f"(p99 {status['p99'] * 1000:.3f} ms) |"
            ),
        ]
    if "list" in bench.extra:
        n = f"{SYNTHETIC_ENVS:,}"
        lines += [
            f"| create {n} envs, fake uv (set-up) | {fmt_s(bench.extra['synthetic_write'])} |",
            f"| list_environments over {n} envs | {fmt_s(bench.extra['list'])} |",
            f"| cleanup scan over {n} envs, first | {fmt_s(bench.extra['cleanup_first'])} |",
            f"| cleanup scan over {n} envs, again | {fmt_s(bench.extra['cleanup'])} |",
        ]
    lines += liveness_rows(bench)
    bytecode = bench.extra.get("bytecode")
    if bytecode:
        lines += [
            "",
            "## Bytecode (medium set, warm cache, fresh root, PYTHONDONTWRITEBYTECODE=1)",
            "",
            "| | no bytecode | background compile | compile_bytecode=True |",
            "|---|---|---|---|",
        ]
        for field, label in (
            ("create", "create (in-process)"),
            ("first_import", "first import (after the background compile)"),
            ("second_import", "second import"),
        ):
            lines.append(
                f"| {label} | {fmt_s(bytecode['none'][field])} "
                f"| {fmt_s(bytecode['background'][field])} | {fmt_s(bytecode['install'][field])} |"
            )
        lines.append(
            "| site-packages (allocated) | "
            + " | ".join(f"{bytecode[m]['size'] / 2**20:.1f} MiB" for m in BYTECODE_MODES)
            + " |"
        )
        lines += [
            "",
            (
                f"A create on another root while the background compile runs: "
                f"{fmt_s(bench.extra['bytecode_during'])} (no compile running: "
                f"{fmt_s(bytecode['none']['create'])}). The compile finished "
                f"{fmt_s(bench.extra['bytecode_compile_wall'])} after that create started "
                f"(worker outcomes: {', '.join(bench.extra['bytecode_outcomes'])})."
            ),
        ]
    lines += ["", *targets(bench, set_names)]
    return "\n".join(lines) + "\n"


def targets(bench: Bench, set_names: Sequence[str]) -> list[str]:  # noqa: C901 - a row per target
    set_name = "medium" if "medium" in set_names else set_names[0]

    def value(what: str) -> float:
        return median(bench.samples.get((what, set_name, "warm"), []))

    rows = []
    floor, pip = value(RAW), value(PIP)
    rows.append(("new spec in-process <= 1.2x raw uv", value(NEW_API) / floor, 1.2, "x"))
    rows.append(("stored lock, venv not built <= 0.25 s", value(STORED), 0.25, "s"))
    rows.append(
        ("stored lock, venv not built >= 50x faster than pip", pip / value(STORED), 50, ">")
    )
    rows.append(("(lock, Python) built <= 0.05 s", value(BUILT), 0.05, "s"))
    rows.append(("(lock, Python) built <= 10 ms (issue 13)", value(BUILT) * 1000, 10.0, "ms"))
    rows.append(
        (
            "stored lock, venv not built <= 1.2x uv sync --frozen alone",
            value(STORED) / value(RAW_SYNC),
            1.2,
            "x",
        )
    )
    disk = bench.extra.get(f"disk_per_env_{set_name}", (float("nan"),) * 2)[1]
    rows.append(("(lock, Python) built < 1 MB new disk", disk / 1e6, 1.0, "MB"))
    threads = bench.extra.get(f"threads_{set_name}")
    if threads:
        rows.append(("16 same-key ensures <= 1.3x one", threads["many"] / threads["one"], 1.3, "x"))
    status = bench.extra.get("status")
    if status:
        rows.append(("status of one env <= 2 ms", status["median"] * 1000, 2.0, "ms"))
    if "list" in bench.extra:
        rows.append(("list of 10,000 envs <= 1 s", bench.extra["list"], 1.0, "s"))
    if "liveness_scan" in bench.extra:
        rows.append(("/proc scan, 500 processes <= 0.5 s", bench.extra["liveness_scan"], 0.5, "s"))
    bytecode = bench.extra.get("bytecode")
    if bytecode:
        rows.append(
            (
                "first import, background-compiled <= 1.1x install-time compiled",
                bytecode["background"]["first_import"] / bytecode["install"]["first_import"],
                1.1,
                "x",
            )
        )
        rows.append(
            (
                "create, background compile on <= 1.1x off",
                bytecode["background"]["create"] / bytecode["none"]["create"],
                1.1,
                "x",
            )
        )
        rows.append(
            (
                "create during a background compile <= 1.1x none running",
                bench.extra["bytecode_during"] / bytecode["none"]["create"],
                1.1,
                "x",
            )
        )
    lines = [
        f"## Targets ({set_name} set, warm cache)",
        "",
        "| target | measured | verdict |",
        "|---|---|---|",
    ]
    for label, measured, limit, unit in rows:
        met = measured >= limit if unit == ">" else measured <= limit
        shown = f"{measured:.0f}x" if unit == ">" else f"{measured:.3g} {unit}".replace(" x", "x")
        verdict = "met" if met else f"missed by {measured / limit:.2f}x the limit"
        if unit == ">" and not met:
            verdict = f"missed ({measured:.0f}x < {limit}x)"
        if measured != measured:  # noqa: PLR0124 - NaN
            verdict = "not measured"
        lines.append(f"| {label} | {shown} | {verdict} |")
    if threads:
        lines.append(f"| 16 same-key ensures: exactly one install | {threads['counts']} | |")
    for what, wanted in ((BUILT, 0), (STORED, 1)):
        runs = bench.extra.get(f"uv_runs {what} {set_name} warm")
        if runs is not None:
            verdict = "met" if runs == [wanted] else "missed"
            shown = ", ".join(map(str, runs))
            lines.append(f"| {what}: {wanted} uv run(s) | {shown} uv run(s) | {verdict} |")
    return lines
