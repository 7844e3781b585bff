"""`gpuforge runs import`: a job run elsewhere (AWX: `ansible-runner process`) recorded
in the history from its artifacts, shown by `runs show` and `report` like a local run.

The two jobs under tests/unit/data/runner_artifacts were recorded with
`ansible-runner transmit | ansible-runner worker | ansible-runner process OUT` (ansible-runner
2.4.3, ansible-core 2.19) against local hosts; only OUT/artifacts' job_events/, status, rc
and stdout are kept. base_job: one host, ok/changed/skipped/ignored tasks, successful.
failed_job (playbook cpu_llm.yml): node1 failed a task, node2 was unreachable."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from toolkit.cli.app import main

DATA = Path(__file__).resolve().parent / "data" / "runner_artifacts"


@pytest.fixture
def history(state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("GPUFORGE_HISTORY_DB", raising=False)
    return state_dir


def events(job: str) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in (DATA / job / "artifacts" / "job_events")
            .glob("*.json")]


def recap(job: str) -> dict[str, Any]:
    (final,) = [e["event_data"] for e in events(job) if e["event"] == "playbook_on_stats"]
    return dict(final)


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, json.loads(captured.out) if captured.out.strip() else None, captured.err


def test_an_awx_job_is_recorded_like_a_local_run(
        history: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job = tmp_path / "job"
    shutil.copytree(DATA / "base_job", job)
    # runner's `command` file holds the job's environment: it is never kept.
    (job / "artifacts" / "command").write_text(json.dumps(
        {"command": ["ansible-playbook"], "env": {"HF_TOKEN": "hf_notkeptanywhere123"}}))
    code, imported, err = run_cli(capsys, "runs", "import", str(job), "--json")
    assert code == 0, err
    code, shown, _ = run_cli(capsys, "runs", "show", str(imported["run_id"]), "--json")
    assert code == 0 and shown == imported
    stats = recap("base_job")
    assert shown["source"] == "awx" and shown["profile"] == "base"
    assert shown["command"] == "apply" and shown["status"] == "successful"
    assert shown["exit_code"] == 0 and shown["rc"] == 0
    assert shown["hosts"] == {"node1": {
        "ok": stats["ok"]["node1"], "changed": stats["changed"]["node1"], "failed": 0,
        "unreachable": 0, "skipped": stats["skipped"]["node1"], "rescued": 0,
        "ignored": stats["ignored"]["node1"]}}
    assert [t["task"] for t in shown["timings"]] == [
        "Say hello", "Touch a file", "Skip this", "Fail but ignored"]
    assert shown["started_at"] <= shown["ended_at"] and shown["duration_s"] > 0
    kept = Path(shown["artifact_dir"])
    assert sorted(p.name for p in kept.iterdir()) == ["job_events", "rc", "status", "stdout"]
    assert not [p for p in history.rglob("*") if p.is_file()
                and b"hf_notkeptanywhere123" in p.read_bytes()]
    # The text view says where it ran.
    assert run_cli(capsys, "runs", "show", str(imported["run_id"]))[2].splitlines()[0] \
        .endswith("(imported from awx)")


def test_failures_and_unreachable_hosts_come_back_with_the_exit_code_gpuforge_gives(
        history: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, shown, err = run_cli(capsys, "runs", "import", str(DATA / "failed_job"),
                               "--source", "runner", "--json")
    assert code == 0, err
    assert shown["profile"] == "cpu-llm" and shown["source"] == "runner"
    assert shown["status"] == "failed" and shown["exit_code"] == 4
    assert {(f["host"], f["kind"]) for f in shown["failures"]} == {
        ("node1", "failed"), ("node2", "unreachable")}
    assert "Connection refused" in next(
        f["message"] for f in shown["failures"] if f["kind"] == "unreachable")
    report = tmp_path / "report.html"
    assert main(["report", str(shown["run_id"]), "-o", str(report)]) == 0
    html = report.read_text()
    assert "imported from runner" in html and "node2" in html and "Check the disk" in html


def test_profile_option_names_the_profile(
        history: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, shown, err = run_cli(capsys, "runs", "import", str(DATA / "base_job" / "artifacts"),
                               "--profile", "validate", "--json")
    assert code == 0, err
    assert shown["profile"] == "validate" and shown["command"] == "validate"


def bad(tmp_path: Path) -> dict[str, Path]:
    no_events = tmp_path / "no_events"
    (no_events / "artifacts").mkdir(parents=True)
    (no_events / "artifacts" / "status").write_text("successful")
    torn = tmp_path / "torn"
    shutil.copytree(DATA / "base_job", torn)
    next((torn / "artifacts" / "job_events").glob("*.json")).write_text('{"event": ')
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    return {"missing": tmp_path / "nope", "a_file": a_file, "no_events": no_events,
            "torn": torn}


@pytest.mark.parametrize("case, message", [
    ("missing", "does not exist"), ("a_file", "is not a directory"),
    ("no_events", "is not an ansible-runner artifact directory"),
    ("torn", "is not a readable ansible-runner event")])
def test_bad_input_is_refused_with_exit_3_and_nothing_recorded(
        history: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str,
        message: str) -> None:
    path = bad(tmp_path)[case]
    code, error, err = run_cli(capsys, "runs", "import", str(path), "--json")
    assert code == 3 and error["exit_code"] == 3 and message in error["error"], err
    assert str(path) in error["error"] and "Traceback" not in err
    assert run_cli(capsys, "runs", "list", "--json")[1] == []


def test_a_job_is_recorded_once(history: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = run_cli(capsys, "runs", "import", str(DATA / "base_job"), "--json")[1]
    code, error, err = run_cli(capsys, "runs", "import", str(DATA / "base_job"), "--json")
    assert code == 3 and "already in the history as run " + str(first["run_id"]) \
        in error["error"], err
    assert len(run_cli(capsys, "runs", "list", "--json")[1]) == 1


@pytest.mark.parametrize("args, message", [
    (["--profile", "nope"], "unknown profile 'nope'"),
    (["--source", "jenkins"], "unknown source 'jenkins'")])
def test_unknown_profile_or_source_is_exit_3(
        history: Path, capsys: pytest.CaptureFixture[str], args: list[str],
        message: str) -> None:
    code, error, _ = run_cli(capsys, "runs", "import", str(DATA / "base_job"), *args, "--json")
    assert code == 3 and message in error["error"]
    assert run_cli(capsys, "runs", "list", "--json")[1] == []


def test_only_a_validate_job_is_judged_and_thresholds_need_an_inventory(
        history: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  hosts:\n    node1: {ansible_host: 192.0.2.1}\n")
    code, error, err = run_cli(capsys, "runs", "import", str(DATA / "base_job"), "-i",
                               str(inventory), "--json")
    assert code == 3 and "-i judges a validate job" in error["error"] \
        and "is a base job" in error["error"], err
    code, error, err = run_cli(capsys, "runs", "import", str(DATA / "base_job"),
                               "--thresholds", "cpu-llm", "--json")
    assert code == 3 and "give its inventory with -i" in error["error"], err
    assert run_cli(capsys, "runs", "list", "--json")[1] == []


def _validate_job(tmp_path: Path, measured: dict[str, Any]) -> Path:
    """base_job made into a validate job: its playbook renamed, and the validate role's
    set_fact of the measurements (the shape of tests/unit/test_validate.py's HEALTHY)."""
    job = tmp_path / "validate-job"
    shutil.copytree(DATA / "base_job", job)
    directory = job / "artifacts"
    last = 0
    template: dict[str, Any] = {}
    for path in (directory / "job_events").glob("*.json"):
        event = json.loads(path.read_text())
        event["event_data"]["playbook"] = "validate.yml"
        if event["event"] == "playbook_on_stats":
            event["counter"] = 100
        elif event["event"] == "runner_on_ok":
            template = event
        last = max(last, event["counter"])
        path.write_text(json.dumps(event))
    fact = json.loads(json.dumps(template))
    fact["counter"] = 99
    fact["event_data"].update(task="Publish the measurements", task_action="set_fact",
                              resolved_action="ansible.builtin.set_fact",
                              res={"ansible_facts": {"validate_measurements": measured}})
    (directory / "job_events" / "99-measured.json").write_text(json.dumps(fact))
    return job


def test_a_validate_job_imported_with_its_inventory_is_judged(
        history: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.unit.test_validate import HEALTHY

    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  hosts:\n    node1: {ansible_host: 192.0.2.1}\n")
    good = _validate_job(tmp_path / "good", HEALTHY)
    code, shown, err = run_cli(capsys, "runs", "import", str(good), "-i", str(inventory),
                               "--thresholds", "cpu-llm", "--json")
    assert code == 0, err
    assert shown["command"] == "validate" and shown["exit_code"] == 0
    checks = {c["name"]: c for c in shown["checks"]}
    assert checks["gateway.tokens_per_s"]["status"] == "pass" and checks["gateway.chat"]
    # The same job with a stopped runtime: the verdict fails the imported run.
    stopped = json.loads(json.dumps(HEALTHY))
    stopped["units"] = ["ActiveState=inactive\nNRestarts=0"]
    bad = _validate_job(tmp_path / "bad", stopped)
    directory = bad / "artifacts"
    for path in (directory / "job_events").glob("*.json"):  # another job: another ident
        event = json.loads(path.read_text())
        event["runner_ident"] = "another-job"
        path.write_text(json.dumps(event))
    code, shown, err = run_cli(capsys, "runs", "import", str(bad), "-i", str(inventory),
                               "--json")
    # The import itself succeeded (exit 0); the run it recorded failed its checks.
    assert code == 0 and shown["exit_code"] != 0 and shown["status"] == "failed", err
    assert [c["name"] for c in shown["checks"] if c["status"] == "fail"] == [
        "runtime.smollm2.active"]
