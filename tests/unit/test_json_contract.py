"""docs/json-contract.md matches what the commands really print with --json."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from toolkit.errors import ExitCode
from toolkit.history import History
from toolkit.recorded_run import Outcome
from toolkit.runner import RunResult
from toolkit.summary import Failure, HostCounts, RunSummary, TaskTiming
from toolkit.validate import judge_host, to_json

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "json-contract.md"
RECORDED = ROOT / "tests" / "fixtures" / "runs" / "apply-base.json"


def documented(command: str) -> Any:
    """The first JSON example under the heading `## \\`gpuforge COMMAND ... --json\\``."""
    text = DOC.read_text(encoding="utf-8")
    sections = re.split(r"^## ", text, flags=re.M)
    for section in sections:
        heading = section.splitlines()[0]
        if re.search(rf"`gpuforge {re.escape(command)}\b[^`]*--json`", heading):
            block = re.search(r"```json\n(.*?)```", section, re.S)
            assert block, f"no JSON example for {command}"
            return json.loads(block.group(1))
    raise AssertionError(f"docs/json-contract.md has no section for gpuforge {command}")


def keys(value: Any) -> set[str]:
    return set(value) if isinstance(value, dict) else set()


def _summary() -> tuple[dict[str, Any], RunSummary]:
    data = json.loads(RECORDED.read_text())
    summary = RunSummary(
        hosts={h: HostCounts(**c) for h, c in data["hosts"].items()},
        failures=[Failure("node2", "Install | x", "boom", "failed")],
        timings=[TaskTiming(**t) for t in data["timings"]], changes=[],
        reboot_required=[], warnings=[])
    return data, summary


def _cli(*args: str, env: dict[str, str], codes: tuple[int, ...] = (0, 3)) -> Any:
    proc = subprocess.run([sys.executable, "-m", "toolkit.cli.app", *args, "--json"],
                          capture_output=True, text=True, check=False, cwd=ROOT,
                          env={**os.environ, "NO_COLOR": "1", **env}, timeout=120)
    assert proc.returncode in codes, proc.stderr
    return json.loads(proc.stdout)  # exactly one document: json.loads rejects a second


@pytest.fixture
def history_env(tmp_path: Path) -> dict[str, str]:
    data, summary = _summary()
    db = tmp_path / "history.sqlite3"
    history = History(db)
    run_id = history.start(command="apply", inventory=data["inventory"], profile="base",
                           playbook=data["playbook"], limit=None, tags=None, check_mode=False,
                           started_at=data["started_at"])
    history.finish(run_id, status="failed", rc=2, exit_code=2, ended_at=data["ended_at"],
                   duration_s=1.0, artifact_dir=None, summary=summary)
    return {"GPUFORGE_STATE_DIR": str(tmp_path / "state"), "GPUFORGE_HISTORY_DB": str(db)}


def test_check(tmp_path: Path) -> None:
    real = _cli("check", "-i", str(ROOT / "tests/fixtures/inventories/wrong_types/hosts.yml"),
                env={"GPUFORGE_STATE_DIR": str(tmp_path)})
    doc = documented("check")
    assert keys(real) == keys(doc)
    assert real["problems"] and keys(real["problems"][0]) == keys(doc["problems"][0])
    assert isinstance(real["hosts"], dict) and real["hosts"]
    for host, verdict in real["hosts"].items():
        assert keys(verdict) == keys(next(iter(doc["hosts"].values())))
        assert verdict["problems"] == sum(p["host"] == host for p in real["problems"])


def test_runs_list_and_show(history_env: dict[str, str]) -> None:
    real_list = _cli("runs", "list", env=history_env)
    assert keys(real_list[0]) == keys(documented("runs list")[0])
    assert real_list[0]["run_id"] == 1 and "id" not in real_list[0]
    real = _cli("runs", "show", "1", env=history_env)
    doc = documented("runs show")
    assert keys(real) == keys(doc)
    assert real["run_id"] == 1
    assert keys(real["timings"][0]) == keys(doc["timings"][0])
    host = next(iter(real["hosts"]))
    assert keys(real["hosts"][host]) == keys(next(iter(doc["hosts"].values())))
    assert keys(real["failures"][0]) == {"host", "task", "message", "kind"}


def test_plan_and_apply() -> None:
    _, summary = _summary()
    result = RunResult(status="failed", rc=2, started_at="a", ended_at="b", duration_s=1.0,
                       summary=summary, artifact_dir="/tmp/x")
    real = Outcome(run_id=1, result=result, exit_code=ExitCode.FAILED_HOSTS).to_dict(
        "apply", "base")
    doc = documented("apply")
    assert keys(real) == keys(doc)
    assert keys(real["failures"][0]) == keys(doc["failures"][0])
    assert keys(doc["changes"][0]) == {"host", "task", "diff"}


def test_validate() -> None:
    real = to_json(judge_host("node1", None, {}), run_id=1, exit_code=2)
    doc = documented("validate")
    assert keys(real) == keys(doc)
    assert keys(real["checks"][0]) == keys(doc["checks"][0])
    assert keys(real["hosts"]["node1"]) == keys(doc["hosts"]["node1"])


def test_profiles(tmp_path: Path) -> None:
    real = _cli("profiles", env={"GPUFORGE_STATE_DIR": str(tmp_path)})
    assert keys(real[0]) == keys(documented("profiles")[0])


def test_sandbox_up(state_dir: Path, monkeypatch: pytest.MonkeyPatch,
                    capsys: pytest.CaptureFixture[str]) -> None:
    """No podman here: the real command's rendering of the state `up` returns."""
    from toolkit.cli.app import main
    from toolkit.sandbox import hosts as sandbox_hosts

    def fake_up(name: str, count: int, distro: str, connection: str) -> dict[str, Any]:
        names = sandbox_hosts.host_names(name, count)
        return {"name": name, "distro": distro, "connection": connection, "image": "img",
                "inventory": str(state_dir / "inventory.yml"), "key": "k", "created": "t",
                "hosts": [{"name": h, "container": f"gpuforge-{h}",
                           "ports": {"22": 30000 + i, "443": 31000 + i}}
                          for i, h in enumerate(names)]}

    monkeypatch.setattr(sandbox_hosts, "up", fake_up)
    assert main(["sandbox", "up", "--name", "demo", "--hosts", "11", "--json"]) == 0
    real = json.loads(capsys.readouterr().out)
    doc = documented("sandbox up")
    assert keys(real) == keys(doc)
    # The one list of hosts (docs: Conventions): in creation order, each with its name.
    assert [h["name"] for h in real["hosts"]] == [f"demo-{i}" for i in range(1, 12)]
    assert keys(real["hosts"][0]) == keys(doc["hosts"][0])


def test_endpoints(tmp_path: Path) -> None:
    inv = tmp_path / "hosts.yml"
    inv.write_text("all:\n  hosts:\n    node1:\n      ansible_host: 192.0.2.1\n"
                   "      llama_cpp_instances: [{name: smollm2-135m-instruct}]\n")
    env = {"GPUFORGE_STATE_DIR": str(tmp_path / "state"), "GPUFORGE_API_KEY": "",
           "GPUFORGE_API_KEYS": ""}
    real = _cli("endpoints", "-i", str(inv), env=env, codes=(0,))
    doc = documented("endpoints")
    assert keys(real) == keys(doc)
    assert keys(real["hosts"]["node1"]) == keys(doc["hosts"]["node1"])
    assert real["hosts"]["node1"]["models"] == ["smollm2-135m-instruct"]


def test_error_object(tmp_path: Path) -> None:
    real = _cli("runs", "show", "nope", env={"GPUFORGE_STATE_DIR": str(tmp_path)},
                codes=(3,))
    doc = documented("COMMAND")
    assert keys(real) == keys(doc) == {"error", "hint", "exit_code"}
    assert real["exit_code"] == 3 and real["hint"]


def test_every_json_command_is_documented() -> None:
    for command in ("check", "plan", "apply", "validate", "runs list", "runs show",
                    "profiles", "sandbox up", "facts", "endpoints", "COMMAND"):
        documented(command)
