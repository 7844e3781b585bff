"""`gpuforge validate` on a real cpu-llm host: passes when it serves, fails (exit 2, JUnit
failure) when the runtime is stopped."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from tests.sandbox import Sandbox

pytestmark = [pytest.mark.sandbox, pytest.mark.slow, pytest.mark.llama_build]


@pytest.fixture(scope="module")
def served(make_sandbox: Callable[..., Sandbox]) -> Sandbox:
    box = make_sandbox("val")
    box.env["GPUFORGE_API_KEY"] = "gf-test-" + secrets.token_hex(16)
    # First, plan the serving profile on the fresh host: it must fail nothing (no role may
    # need what base has not installed yet) and change nothing.
    host = box.state["hosts"][0]["name"]
    plan = box.gpuforge("plan", "-i", box.inventory, "--profile", "cpu-llm", "--json",
                        timeout=1200)
    assert plan.returncode == 0, plan.stderr[-3000:]
    assert json.loads(plan.stdout)["hosts"][host]["failed"] == 0
    untouched = box.exec(host, "sh", "-c", "test ! -e /etc/gpuforge && "
                         "! dpkg-query -W -f='${db:Status-Status}\\n' nginx python3-apt "
                         "2>/dev/null | grep -qx installed")
    assert untouched.returncode == 0, "plan changed the fresh host"
    proc = box.gpuforge("apply", "-i", box.inventory, "--profile", "cpu-llm", "--yes",
                        timeout=3600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return box


def _validate(box: Sandbox, junit: Path) -> tuple[int, dict, ET.Element, str]:  # type: ignore[type-arg]
    proc = box.gpuforge("validate", "-i", box.inventory, "--profile", "cpu-llm", "--json",
                        "--junit", str(junit), timeout=600)
    return proc.returncode, json.loads(proc.stdout), ET.parse(junit).getroot(), proc.stderr


def test_validate_passes_on_a_serving_host(served: Sandbox, tmp_path: Path) -> None:
    rc, data, junit, err = _validate(served, tmp_path / "pass.xml")
    assert rc == 0, err
    names = {c["name"] for c in data["checks"]}
    assert {"host.measured", "gateway.chat", "gateway.ttft_s", "gateway.tokens_per_s"} <= names
    assert any(n.startswith("runtime.") and n.endswith(".health") for n in names)
    assert all(c["status"] == "pass" for c in data["checks"])
    rate = next(c for c in data["checks"] if c["name"] == "gateway.tokens_per_s")
    assert isinstance(rate["measured"], float) and rate["measured"] > 0
    assert junit.get("failures") == "0"
    assert len(junit.findall(".//testcase")) == len(data["checks"])
    assert "PASS" in err and "gateway.tokens_per_s" in err
    # The key never reaches the output or the history.
    assert served.env["GPUFORGE_API_KEY"] not in err + json.dumps(data)
    runs = json.loads(served.gpuforge("runs", "list", "--json").stdout)
    assert runs[0]["command"] == "validate"


def test_validate_fails_when_the_runtime_is_stopped(served: Sandbox, tmp_path: Path) -> None:
    host = served.state["hosts"][0]["name"]
    listing = served.exec(host, "sh", "-c",
                          "cat \"$(ls /etc/gpuforge/endpoints.d/*.json | head -n 1)\"")
    assert listing.returncode == 0, listing.stderr
    unit = json.loads(listing.stdout)["unit"]
    stop = served.exec(host, "systemctl", "stop", unit)
    assert stop.returncode == 0, stop.stderr
    try:
        rc, data, junit, err = _validate(served, tmp_path / "fail.xml")
        assert rc == 2, err
        failed = {c["name"]: c for c in data["checks"] if c["status"] == "fail"}
        active = next(c for n, c in failed.items() if n.endswith(".active"))
        assert active["measured"] in ("inactive", "failed")
        assert "gateway.chat" in failed
        failures = junit.findall(".//testcase/failure")
        assert int(junit.get("failures") or 0) == len(failures) == len(failed)
        messages = [f.get("message") or "" for f in failures]
        assert any(".active: measured inactive, threshold == active" in m for m in messages)
        assert "FAIL" in err
        # The history records validate's verdict, not just the playbook's exit code.
        shown = json.loads(served.gpuforge("runs", "show", str(data["run_id"]), "--json").stdout)
        assert shown["exit_code"] == 2 and shown["status"] == "failed"
    finally:
        served.exec(host, "systemctl", "start", unit)
