"""The CLI's contract: exit codes, Error/Hint lines, --json shapes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from toolkit.cli.app import main
from toolkit.errors import ExitCode
from toolkit.history import History
from toolkit.summary import HostCounts, RunSummary

# typer's rich help forces terminal styling whenever PY_COLORS, FORCE_COLOR or GITHUB_ACTIONS
# is set to anything (PY_COLORS=0 included, as the test command sets it): read it plain.
ANSI = re.compile(r"\x1b\[[0-9;]*m")

GPUFORGE = [sys.executable, "-m", "toolkit.cli.app"]


def test_help_lists_commands_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for word in ("apply", "plan", "check", "runs", "sandbox", "130 cancelled", "4 unreachable"):
        assert word in out


def test_help_does_not_import_ansible() -> None:
    code = ("import sys; from toolkit.cli.app import main; "
            "rc = main(['--help']); "
            "assert 'ansible' not in sys.modules and 'ansible_runner' not in sys.modules, "
            "sorted(m for m in sys.modules if m.startswith('ansible')); sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr


def test_unknown_profile_exits_3_with_hint(state_dir: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    inv = tmp_path / "hosts.yml"
    inv.write_text("all:\n  hosts:\n    web1: {ansible_host: 192.0.2.1}\n")
    assert main(["apply", "--yes", "--profile", "nope", "-i", str(inv)]) == 3
    err = capsys.readouterr().err
    assert "Error: unknown profile 'nope'" in err and "Hint:" in err and "base" in err
    assert History().list() == []  # nothing ran, nothing touched


def test_wrongly_typed_variable_exits_3_naming_variable_and_file(
        state_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "hosts.yml").write_text(
        "all:\n  children:\n    gpu_nodes:\n      hosts:\n"
        "        node1: {ansible_host: 192.0.2.7}\n")
    gv = tmp_path / "group_vars" / "gpu_nodes.yml"
    gv.write_text("base_apt_lock_timeout: soon\nbase_kernel_headerz: true\n")
    rc = main(["apply", "--yes", "--profile", "base", "-i", str(tmp_path / "hosts.yml")])
    err = capsys.readouterr().err
    assert rc == ExitCode.INVALID_INPUT
    assert "node1: base_apt_lock_timeout:" in err and "int" in err and str(gv) in err
    assert "base_kernel_headerz: unknown variable of role base; did you mean " \
           "base_kernel_headers?" in err
    assert "no host was touched" in err


def test_missing_inventory_exits_3(state_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "-i", "/nonexistent/inv.yml"]) == 3
    assert "does not exist" in capsys.readouterr().err


def test_no_inventory_and_no_sandbox_exits_3(state_dir: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["apply", "--yes"]) == 3
    assert "gpuforge sandbox up" in capsys.readouterr().err


def test_usage_error_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["apply", "--no-such-flag"]) == 3
    assert "Error:" in capsys.readouterr().err


def test_runs_list_and_show_json(state_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    history = History()
    run_id = history.start(command="apply", inventory="inv", profile="base", playbook="p",
                           limit=None, tags=None, check_mode=False, started_at="t0")
    history.finish(run_id, status="successful", rc=0, exit_code=0, ended_at="t1",
                   duration_s=1.0, artifact_dir=None,
                   summary=RunSummary({"h1": HostCounts(ok=2)}, [], [], [], [], []))
    assert main(["runs", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed[0]["run_id"] == run_id and listed[0]["status"] == "successful"
    assert main(["runs", "show", str(run_id), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["hosts"]["h1"]["ok"] == 2 and shown["exit_code"] == 0
    assert main(["runs", "show", "999"]) == 3
    assert "no run 999" in capsys.readouterr().err


def test_check_json_shape(state_dir: Path, tmp_path: Path,
                          capsys: pytest.CaptureFixture[str]) -> None:
    inv = tmp_path / "hosts.yml"
    inv.write_text("all:\n  hosts:\n    n1:\n      base_packages: curl\n"
                   "      base_timesync_enabled: maybe\n")
    assert main(["check", "-i", str(inv), "--json"]) == 3
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False and data["hosts"] == {"n1": {"ok": False, "problems": 1}}
    assert [p["variable"] for p in data["problems"]] == ["base_timesync_enabled"]
    assert set(data["problems"][0]) == {"host", "variable", "message", "source"}


def test_profiles_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profiles", "--json"]) == 0
    names = {p["name"] for p in json.loads(capsys.readouterr().out)}
    assert "base" in names


def test_sandbox_without_podman_exits_5(state_dir: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path), "GPUFORGE_STATE_DIR": str(state_dir)}
    proc = subprocess.run([*GPUFORGE, "sandbox", "up"], env=env, capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 5, proc.stderr
    assert "podman" in proc.stderr and "Hint: install" in proc.stderr


def test_help_is_fast() -> None:
    t0 = time.monotonic()
    subprocess.run([*GPUFORGE, "--help"], capture_output=True, check=True)
    # Not a timing assertion on the machine's speed: a generous bound that only an
    # accidental heavy import (ansible) at start-up would break. bench/ measures it.
    assert time.monotonic() - t0 < 5


def _json_error(out: str) -> dict[str, object]:
    data = json.loads(out)  # one document, nothing else on stdout
    assert set(data) == {"error", "hint", "exit_code"}, data
    return dict(data)


@pytest.mark.parametrize("argv", [
    ["apply", "--no-such-flag", "--json"],          # unknown option
    ["runs", "show", "--json"],                     # missing argument
    ["runs", "show", "twelve", "--json"],           # bad value
    ["runs", "list", "--limit", "many", "--json"],  # bad option value
    ["sandbox", "up", "--json", "--hosts", "99"],   # out of range, before podman is asked
])
def test_usage_errors_with_json_are_an_error_object(
        argv: list[str], state_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == ExitCode.INVALID_INPUT
    captured = capsys.readouterr()
    data = _json_error(captured.out)
    assert data["exit_code"] == 3 and data["error"] and data["hint"]
    assert f"Error: {data['error']}" in captured.err and f"Hint: {data['hint']}" in captured.err


def test_unknown_profile_with_json(state_dir: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    inv = tmp_path / "hosts.yml"
    inv.write_text("all:\n  hosts:\n    web1: {ansible_host: 192.0.2.1}\n")
    assert main(["plan", "--profile", "nope", "-i", str(inv), "--json"]) == 3
    captured = capsys.readouterr()
    data = _json_error(captured.out)
    assert data["error"] == "unknown profile 'nope'" and "base" in str(data["hint"])
    assert data["exit_code"] == 3 and "Error: unknown profile 'nope'" in captured.err


@pytest.mark.parametrize("command", ["plan", "check", "facts", "endpoints", "validate"])
def test_bad_inventory_with_json(command: str, state_dir: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command, "-i", "/nonexistent/inv.yml", "--json"]) == 3
    data = _json_error(capsys.readouterr().out)
    assert data["exit_code"] == 3 and "does not exist" in str(data["error"])


def test_no_sandbox_with_json(state_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["apply", "--yes", "--json"]) == 3
    data = _json_error(capsys.readouterr().out)
    assert "gpuforge sandbox up" in str(data["hint"])


def test_errors_without_json_leave_stdout_empty(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["apply", "--no-such-flag"]) == 3
    assert capsys.readouterr().out == ""


def test_json_after_double_dash_is_not_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "show", "--", "--json"]) == 3
    assert capsys.readouterr().out == ""


def test_internal_error_with_json_exits_1(state_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    import toolkit.profiles

    def broken() -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(toolkit.profiles, "load_profiles", broken)
    assert main(["profiles", "--json"]) == ExitCode.INTERNAL
    captured = capsys.readouterr()
    data = _json_error(captured.out)
    assert data == {"error": "internal error: RuntimeError: boom", "exit_code": 1,
                    "hint": "run again with --debug for the traceback, and report it"}
    assert "Error: internal error: RuntimeError: boom" in captured.err


def test_prerequisite_missing_with_json(state_dir: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path), "GPUFORGE_STATE_DIR": str(state_dir)}
    proc = subprocess.run([*GPUFORGE, "sandbox", "up", "--json"], env=env,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 5, proc.stderr
    data = _json_error(proc.stdout)
    assert data["exit_code"] == 5 and "podman" in str(data["error"])


def test_a_document_already_printed_gets_no_error_object(
        state_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inv = tmp_path / "hosts.yml"
    inv.write_text("all:\n  hosts:\n    n1:\n      base_timesync_enabled: maybe\n")
    assert main(["check", "-i", str(inv), "--json"]) == 3
    data = json.loads(capsys.readouterr().out)  # check's own document, and only it
    assert data["ok"] is False and "error" not in data


def test_bare_gpuforge_prints_help_and_exits_0() -> None:
    proc = subprocess.run(GPUFORGE, capture_output=True, text=True, check=False,
                          env={**os.environ, "NO_COLOR": "1"})
    assert proc.returncode == 0, proc.stderr
    text = ANSI.sub("", proc.stdout)
    assert "Usage: gpuforge" in text and "apply" in text
    assert "Error" not in proc.stderr


def test_bare_group_prints_its_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs"]) == 0
    captured = capsys.readouterr()
    assert "list" in captured.out and "show" in captured.out and "Error" not in captured.err


def test_help_offers_completion(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = ANSI.sub("", capsys.readouterr().out)
    assert "--install-completion" in out and "--show-completion" in out


def test_show_completion_prints_a_bash_script() -> None:
    proc = subprocess.run([*GPUFORGE, "--show-completion", "bash"], capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    script = proc.stdout
    assert "_gpuforge_completion()" in script
    assert "_GPUFORGE_COMPLETE=complete_bash" in script
    assert "complete -o default -F _gpuforge_completion gpuforge" in script
    check = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True,
                           check=False)
    assert check.returncode == 0, check.stderr


def _complete(words: str, cword: int) -> list[str]:
    env = {**os.environ, "_GPUFORGE_COMPLETE": "complete_bash", "COMP_WORDS": words,
           "COMP_CWORD": str(cword)}
    proc = subprocess.run(GPUFORGE, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_completion_of_subcommands() -> None:
    top = _complete("gpuforge ", 1)
    for name in ("apply", "plan", "check", "facts", "profiles", "validate", "report",
                 "runs", "sandbox", "models", "endpoints", "demo"):
        assert name in top, top
    assert _complete("gpuforge ru", 1) == ["runs"]
    assert sorted(_complete("gpuforge runs ", 2)) == ["import", "list", "show"]
    assert set(_complete("gpuforge sandbox ", 2)) == {"up", "list", "down", "image"}
    assert "--profile" in _complete("gpuforge apply --pro", 2)
