"""The prometheus role's rules and configuration, rendered with the role's defaults, pass
Debian's promtool (check rules, test rules, check config), and every alert has unit tests
with series that fire it and series that do not."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "prometheus"
PROMTOOL_TESTS = Path(__file__).parent / "promtool" / "gpuforge_test.yml"

needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None,
                                    reason="promtool (Debian package prometheus) is not installed")


def render(template: str, **extra: Any) -> str:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(ROLE / "templates"),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters["to_json"] = json.dumps
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text(encoding="utf-8"))
    return env.get_template(template).render(ansible_managed="managed by gpuforge",
                                             **{**defaults, **extra})


def alerts(rules_text: str) -> list[str]:
    rules = yaml.safe_load(rules_text)
    return [r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r]


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False)


def test_every_alert_has_firing_and_quiet_tests() -> None:
    names = alerts(render("gpuforge.rules.yml.j2"))
    assert len(names) == len(set(names)) >= 16
    firing: set[str] = set()
    quiet: set[str] = set()
    for test in yaml.safe_load(PROMTOOL_TESTS.read_text(encoding="utf-8"))["tests"]:
        for case in test.get("alert_rule_test", []):
            (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    assert sorted(set(names) - firing) == [], "alerts without a test where they fire"
    assert sorted(set(names) - quiet) == [], "alerts without a test where they stay quiet"
    assert sorted((firing | quiet) - set(names)) == [], "tests of alerts that do not exist"


@needs_promtool
def test_promtool_checks_and_tests_the_rules(tmp_path: Path) -> None:
    (tmp_path / "gpuforge.yml").write_text(render("gpuforge.rules.yml.j2"), encoding="utf-8")
    shutil.copy(PROMTOOL_TESTS, tmp_path / "gpuforge_test.yml")
    checked = promtool("check", "rules", "gpuforge.yml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 22 rules found" in checked.stdout, checked.stdout
    tested = promtool("test", "rules", "gpuforge_test.yml", cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


@needs_promtool
def test_promtool_test_fails_when_an_alert_misbehaves(tmp_path: Path) -> None:
    """The tests can fail: with the runtime-down alert's threshold inverted they do."""
    text = render("gpuforge.rules.yml.j2").replace('up{job="runtime"} == 0',
                                                  'up{job="runtime"} == 1')
    (tmp_path / "gpuforge.yml").write_text(text, encoding="utf-8")
    shutil.copy(PROMTOOL_TESTS, tmp_path / "gpuforge_test.yml")
    tested = promtool("test", "rules", "gpuforge_test.yml", cwd=tmp_path)
    assert tested.returncode != 0
    assert "GpuforgeRuntimeDown" in tested.stdout + tested.stderr


def _targets(**hosts: dict[str, Any]) -> dict[str, Any]:
    return {h: {"inventory_hostname": h, "monitoring_agent_targets": t} for h, t in hosts.items()}


def test_file_sd_targets_come_from_the_inventory() -> None:
    hostvars = _targets(
        serve1={"address": "10.88.0.5", "port": "9443", "node": "/metrics/node",
                "dcgm": "", "gateway": "/metrics/gateway", "runtimes": ["smol", "big"]},
        gpu1={"address": "fd00::7", "port": "9443", "node": "/metrics/node",
              "dcgm": "/metrics/dcgm", "runtimes": []})
    def sd(job: str) -> list[dict[str, Any]]:
        return json.loads(render("file_sd.json.j2", __job=job, hostvars=hostvars,
                                 __prometheus_targets=["serve1", "gpu1"]))
    assert sd("node") == [
        {"targets": ["[fd00::7]:9443"],
         "labels": {"host": "gpu1", "instance": "gpu1", "__metrics_path__": "/metrics/node"}},
        {"targets": ["10.88.0.5:9443"],
         "labels": {"host": "serve1", "instance": "serve1", "__metrics_path__": "/metrics/node"}}]
    assert [g["labels"]["instance"] for g in sd("runtime")] == ["serve1/big", "serve1/smol"]
    assert sd("runtime")[1]["labels"]["__metrics_path__"] == "/metrics/smol"
    assert [g["labels"]["host"] for g in sd("dcgm")] == ["gpu1"]
    # Only hosts running a gateway have a gateway target (gpu1's fact predates the field).
    assert sd("gateway") == [
        {"targets": ["10.88.0.5:9443"],
         "labels": {"host": "serve1", "instance": "serve1",
                    "__metrics_path__": "/metrics/gateway"}}]


@needs_promtool
def test_promtool_checks_the_configuration(tmp_path: Path) -> None:
    cert = tmp_path / "targets-ca.pem"
    made = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=10.88.0.5", "-keyout", str(tmp_path / "k.pem"), "-out", str(cert)],
        capture_output=True, text=True, check=False)
    assert made.returncode == 0, made.stderr
    (tmp_path / "metrics-token").write_text("x" * 32 + "\n", encoding="utf-8")
    (tmp_path / "rules.d").mkdir()
    (tmp_path / "rules.d" / "gpuforge.yml").write_text(render("gpuforge.rules.yml.j2"),
                                                       encoding="utf-8")
    (tmp_path / "file_sd").mkdir()
    for job in ("node", "runtime", "gateway", "dcgm"):
        (tmp_path / "file_sd" / f"{job}.json").write_text("[]", encoding="utf-8")
    config = tmp_path / "prometheus.yml"
    config.write_text(render("prometheus.yml.j2", prometheus_config_dir=str(tmp_path)),
                      encoding="utf-8")
    checked = promtool("check", "config", str(config), cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 1 rule files found" in checked.stdout, checked.stdout
    jobs = [j["job_name"] for j in yaml.safe_load(config.read_text())["scrape_configs"]]
    assert jobs == ["prometheus", "node", "runtime", "gateway", "dcgm"]


def test_dashboard_panels_query_prometheus() -> None:
    """The shipped Grafana dashboard: every panel has a Prometheus query, refIds are unique
    per panel, and it uses the dashboard's datasource variable (the integration test runs
    each query against a real Prometheus)."""
    dashboard = json.loads((ROLE / "files" / "dashboards" / "gpuforge-fleet.json")
                           .read_text(encoding="utf-8"))
    assert dashboard["uid"] == "gpuforge-fleet"
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        assert all(t["expr"].strip() for t in panel["targets"]), panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}"
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    for needed in ("llamacpp:tokens_predicted_total", "gpuforge:validate_ttft_seconds",
                   "DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_FB_USED"):
        assert needed in exprs
