"""The ``uv-envs`` command line, run as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from uv_envs import Settings

KEY_ARGS = ["ml_pipeline", "rag", "v1"]


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    base = [
        sys.executable,
        "-m",
        "uv_envs",
        "--root",
        str(settings.root),
        "--no-index",
        *[arg for link in settings.index.find_links for arg in ("--find-links", link)],
    ]
    return subprocess.run([*base, *args], capture_output=True, text=True, timeout=300, check=False)


def test_lifecycle_through_the_cli(settings: Settings) -> None:
    created = cli(settings, "create", *KEY_ARGS, "-p", "alpha==1.0")
    assert created.returncode == 0, created.stderr
    python_path = created.stdout.strip()
    assert python_path == str(
        settings.root / "envs" / "ml_pipeline" / "rag" / "v1" / ".venv" / "bin" / "python"
    )
    assert subprocess.run([python_path, "-c", "import alpha"], check=False).returncode == 0

    status = json.loads(cli(settings, "--json", "status", *KEY_ARGS).stdout)
    assert status["status"] == "READY"
    assert status["has_venv"] is True
    digest = status["environment"]["digest"]
    assert digest.startswith("sha256:")
    assert f"digest: {digest}" in cli(settings, "status", *KEY_ARGS).stdout

    assert cli(settings, "add", *KEY_ARGS, "-p", "gamma").returncode == 0
    deps = json.loads(cli(settings, "--json", "deps", *KEY_ARGS).stdout)
    assert deps["locked"] == {"alpha": "1.0", "gamma": "1.0"}
    assert cli(settings, "update", *KEY_ARGS, "-p", "alpha>=2").returncode == 0
    assert cli(settings, "remove", *KEY_ARGS, "-p", "gamma").returncode == 0
    assert cli(settings, "sync", *KEY_ARGS).returncode == 0
    exported = cli(settings, "export", *KEY_ARGS, "--format", "requirements.txt")
    assert "alpha==2.0" in exported.stdout

    listed = json.loads(cli(settings, "--json", "list", "--workflow", "ml_pipeline").stdout)
    assert [entry["node_id"] for entry in listed] == ["rag"]
    ops = json.loads(cli(settings, "--json", "ops", "--workflow", "ml_pipeline").stdout)
    assert [item["operation"] for item in ops["items"]][::-1] == [
        "create",
        "add",
        "update",
        "remove",
        "sync",
    ]

    assert cli(settings, "delete", *KEY_ARGS).stdout.strip() == "DELETED"
    assert cli(settings, "delete", *KEY_ARGS).stdout.strip() == "NOT_FOUND"
    assert cli(settings, "cleanup", "--idle-hours", "1").returncode == 0


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["create", "../etc", "rag", "-p", "alpha"], 2),
        (["create", "wf", "rag", "--package=--index-url=http://evil"], 2),
        (["create", "wf", "rag", "--package=-e ."], 2),
        (["create", "wf", "rag", "-p", "alpha @ file:///etc"], 2),
        (["create", "wf", "rag", "-p", "alpha", "--python", "2.7"], 2),
        (["create", "wf", "rag", "-p", "alpha", "--python", "3.2"], 2),
        (["add", "wf", "missing", "-p", "alpha"], 3),
        (["create", "wf", "rag", "-p", "does-not-exist"], 1),
    ],
)
def test_exit_codes_tell_bad_input_from_failures(
    settings: Settings, args: list[str], code: int
) -> None:
    result = cli(settings, *args)
    assert result.returncode == code, result.stderr
    assert "uv-envs: error:" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (settings.root / "envs" / "wf" / "rag").exists()


def test_conflicting_create_exits_5(settings: Settings) -> None:
    assert cli(settings, "create", "wf", "n", "-p", "alpha").returncode == 0
    assert cli(settings, "create", "wf", "n", "-p", "gamma").returncode == 5
    assert cli(settings, "ensure", "wf", "n", "-p", "gamma").returncode == 0


def test_requirements_file(settings: Settings, tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("alpha==1.0\ngamma\n")
    result = cli(settings, "--json", "create", "wf", "n", "-r", str(requirements))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "READY"


def test_verify_force_delete_and_disk_budget_through_the_cli(settings: Settings) -> None:
    assert cli(settings, "create", "wf", "n", "-p", "alpha").returncode == 0
    verified = cli(settings, "--json", "verify", "wf", "n")
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["ok"] is True

    assert cli(settings, "delete", "wf", "n", "--force").stdout.strip() == "DELETED"
    assert cli(settings, "create", "wf", "m", "-p", "gamma", "--refresh").returncode == 0
    # The CLI keeps the servers' floor: an env made a moment ago survives a budget of 0 ...
    kept = json.loads(cli(settings, "--json", "cleanup", "--max-bytes", "0").stdout)
    assert kept["deleted"] == []
    # ... until the floor is lifted explicitly.
    lifted = cli(settings, "--json", "cleanup", "--max-bytes", "0", "--min-idle-hours", "0")
    budget = json.loads(lifted.stdout)
    assert [key["node_id"] for key in budget["deleted"]] == ["m"]
    assert cli(settings, "cleanup").returncode == 2  # needs a limit


def test_serve_refuses_a_remote_address_without_allow_remote(settings: Settings) -> None:
    result = cli(settings, "serve", "--host", "0.0.0.0", "--port", "0")  # noqa: S104 - refused, never bound
    assert result.returncode == 2
    assert "allow-remote" in result.stderr
    assert "Traceback" not in result.stderr


def test_global_options_after_the_subcommand(settings: Settings) -> None:
    # As in uv: --json, --root and the index options on either side of the subcommand.
    index = [
        "--no-index",
        *[arg for link in settings.index.find_links for arg in ("--find-links", link)],
    ]
    after = [sys.executable, "-m", "uv_envs", "create", "wf", "node", "v1", "-p", "alpha", "--json"]
    after += ["--root", str(settings.root), *index]
    created = subprocess.run(after, capture_output=True, text=True, timeout=300, check=False)
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["status"] == "READY"
    assert (settings.root / "envs" / "wf" / "node" / "v1").is_dir()

    # --json before (the cli helper puts --root and the index options before too) and after.
    before = json.loads(cli(settings, "--json", "status", "wf", "node", "v1").stdout)
    assert before["status"] == "READY"
    both = cli(settings, "--json", "status", "wf", "node", "v1", "--json")
    assert json.loads(both.stdout) == before
    assert cli(settings, "status", "wf", "node", "v1").stdout.startswith("wf/node/v1: READY")


def test_an_option_after_the_subcommand_wins(settings: Settings, tmp_path: Path) -> None:
    assert cli(settings, "create", "wf", "node", "-p", "alpha").returncode == 0
    elsewhere = [sys.executable, "-m", "uv_envs", "--root", str(tmp_path / "elsewhere"), "--json"]
    listed = subprocess.run(
        [*elsewhere, "list", "--root", str(settings.root)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    assert [entry["node_id"] for entry in json.loads(listed.stdout)] == ["node"]
    empty = subprocess.run(
        [*elsewhere, "list"], capture_output=True, text=True, timeout=300, check=False
    )
    assert json.loads(empty.stdout) == []


def test_serve_without_the_server_extra_says_how_to_get_it() -> None:
    # A None entry in sys.modules makes `import uv_envs_server` fail as if it were not installed.
    code = (
        "import sys; sys.modules['uv_envs_server'] = None\n"
        "from uv_envs._cli.main import main\n"
        "sys.exit(main(['serve', '--port', '0']))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 1
    assert "pip install 'uv-envs[server]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_export_writes_the_files_uv_reads_with_o(settings: Settings, tmp_path: Path) -> None:
    assert cli(settings, "create", "wf", "n", "v1", "-p", "alpha").returncode == 0
    project = cli(settings, "export", "wf", "n", "v1", "-o", str(tmp_path / "project"))
    assert project.returncode == 0, project.stderr
    assert sorted(p.name for p in (tmp_path / "project").iterdir()) == ["pyproject.toml", "uv.lock"]
    assert project.stdout.split() == [
        str(tmp_path / "project" / "pyproject.toml"),
        str(tmp_path / "project" / "uv.lock"),
    ]
    assert "alpha" in (tmp_path / "project" / "uv.lock").read_text()
    locked = cli(
        settings, "export", "wf", "n", "v1", "--format", "requirements.txt", "-o", str(tmp_path)
    )
    assert locked.returncode == 0, locked.stderr
    requirements = (tmp_path / "requirements.txt").read_text()
    assert "alpha==" in requirements
    assert "--cache-dir" not in requirements
    sbom = cli(settings, "export", "wf", "n", "v1", "--format", "cyclonedx", "-o", str(tmp_path))
    assert sbom.returncode == 0, sbom.stderr
    assert sbom.stdout.split() == [str(tmp_path / "sbom.cdx.json")]
    document = json.loads((tmp_path / "sbom.cdx.json").read_text())
    assert document["specVersion"] == "1.5"
    assert [c["name"] for c in document["components"]] == ["alpha"]
    digest = json.loads(cli(settings, "--json", "status", "wf", "n", "v1").stdout)
    assert {"name": "uv-envs:env-digest", "value": digest["environment"]["digest"]} in (
        document["metadata"]["properties"]
    )


def test_a_change_says_what_it_did_to_the_lock(settings: Settings) -> None:
    assert cli(settings, "create", "wf", "n", "v1", "-p", "alpha<2").returncode == 0
    added = cli(settings, "add", "wf", "n", "v1", "-p", "gamma")
    assert added.returncode == 0, added.stderr
    assert "  gamma: - -> 1.0" in added.stdout.splitlines()
    unchanged = cli(settings, "update", "wf", "n", "v1")
    assert unchanged.returncode == 0, unchanged.stderr
    assert unchanged.stdout.splitlines()[-1] == "  no locked version changed"
    assert unchanged.stdout.splitlines()[0] == "wf/n/v1: nothing changed, still generation 2"
    again = json.loads(cli(settings, "--json", "update", "wf", "n", "v1").stdout)
    assert (again["changed"], again["metadata"]["generation"]) == (False, 2)
    moved = cli(settings, "update", "wf", "n", "v1", "-p", "alpha>=2")
    assert "  alpha: 1.0 -> 2.0" in moved.stdout.splitlines()


def test_cleanup_dry_run_lists_what_would_go_and_deletes_nothing(settings: Settings) -> None:
    assert cli(settings, "create", "wf", "n", "v1", "-p", "alpha").returncode == 0
    env_dir = settings.root / "envs" / "wf" / "n" / "v1"
    before = sorted(str(p) for p in env_dir.rglob("*"))
    args = ("cleanup", "--idle-hours", "0", "--min-idle-hours", "0", "--dry-run")
    planned = cli(settings, *args)
    assert planned.returncode == 0, planned.stderr
    line, summary = planned.stdout.splitlines()
    assert line.startswith("would delete wf/n/v1: idle 0.0 h; ")
    assert line.endswith("K")  # its bytes, as du -h prints them
    assert summary.startswith("would delete 1 envs (")
    as_json = json.loads(cli(settings, "--json", *args).stdout)
    assert (as_json["dry_run"], as_json["deleted"]) == (True, [])
    assert [(r["key"], r["reason"]) for r in as_json["removals"]] == [
        ({"workflow_id": "wf", "node_id": "n", "version_id": "v1"}, "idle")
    ]
    assert as_json["removals"][0]["bytes"] > 0
    assert sorted(str(p) for p in env_dir.rglob("*")) == before
    assert cli(settings, "status", "wf", "n", "v1").returncode == 0


def test_the_empty_version_is_printed_as_at(settings: Settings) -> None:
    helped = cli(settings, "create", "--help")
    assert "printed as @" in " ".join(helped.stdout.split())
    assert cli(settings, "create", "wf", "nover", "-p", "alpha").returncode == 0
    assert cli(settings, "status", "wf", "nover").stdout.splitlines()[0] == "wf/nover/@: READY"
    assert cli(settings, "list").stdout.split("\t")[0] == "wf/nover/@"
    assert cli(settings, "sync", "wf", "nover").stdout.strip() == "wf/nover/@: synced"
    # Machine-readable output keeps the key's own spelling, as the other doors do.
    listed = json.loads(cli(settings, "--json", "list").stdout)
    assert listed[0]["version_id"] == ""
