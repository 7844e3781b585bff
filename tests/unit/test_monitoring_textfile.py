"""gpuforge's own run metrics: the textfile the monitoring_agent role writes (filter
gpuforge.infra.run_metrics_textfile) and the records the toolkit hands it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

from plugins.filter.run_metrics import run_metrics_textfile

RECORDS = {
    "apply/cpu-llm": {"kind": "apply", "profile": "cpu-llm", "success": True,
                      "timestamp": 1764680000.5, "duration_s": 212.25, "checks": {}},
    "validate/cpu-llm": {"kind": "validate", "profile": "cpu-llm", "success": False,
                         "timestamp": 1764680300, "duration_s": 30,
                         "checks": {"gateway.tokens_per_s": {"passed": True, "value": 93.5},
                                    "model.smol.sha256": {"passed": False, "value": None}}},
}


def test_renders_every_record_and_check() -> None:
    text = run_metrics_textfile(RECORDS)
    assert 'gpuforge_run_success{kind="apply",profile="cpu-llm"} 1\n' in text
    assert 'gpuforge_run_success{kind="validate",profile="cpu-llm"} 0\n' in text
    assert 'gpuforge_run_timestamp_seconds{kind="apply",profile="cpu-llm"} 1764680000.5\n' in text
    assert 'gpuforge_run_duration_seconds{kind="validate",profile="cpu-llm"} 30.0\n' in text
    assert ('gpuforge_validate_check_value{kind="validate",profile="cpu-llm",'
            'check="gateway.tokens_per_s"} 93.5\n') in text
    assert ('gpuforge_validate_check_passed{kind="validate",profile="cpu-llm",'
            'check="model.smol.sha256"} 0\n') in text
    # A check without a number has no value sample; every family has HELP and TYPE once.
    assert "model.smol.sha256\"} " not in text.split("gpuforge_validate_check_value", 1)[1]
    assert text.count("# TYPE ") == 5
    assert run_metrics_textfile(dict(reversed(RECORDS.items()))) == text  # stable bytes


def test_empty_records_render_an_empty_file() -> None:
    assert run_metrics_textfile({}) == ""


@pytest.mark.parametrize(("key", "value"), [
    ("profile", 'x"} 1\nevil{a="'), ("timestamp", float("nan")), ("duration_s", "12"),
])
def test_refuses_what_would_break_the_format(key: str, value: object) -> None:
    record = {**RECORDS["apply/cpu-llm"], key: value}
    with pytest.raises(AnsibleFilterError, match="run_metrics_textfile"):
        run_metrics_textfile({"apply/x": record})


@pytest.mark.skipif(shutil.which("promtool") is None,
                    reason="promtool (Debian package prometheus) is not installed")
def test_promtool_accepts_the_textfile(tmp_path: Path) -> None:
    prom = tmp_path / "gpuforge.prom"
    prom.write_text(run_metrics_textfile(RECORDS), encoding="utf-8")
    with prom.open("rb") as stdin:
        checked = subprocess.run(["promtool", "check", "metrics"], stdin=stdin,
                                 capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_apply_records_per_host() -> None:
    from toolkit.run_metrics import apply_records
    from toolkit.summary import HostCounts, RunSummary

    summary = RunSummary({"ok1": HostCounts(ok=9), "bad": HostCounts(ok=3, failed=1),
                          "gone": HostCounts(unreachable=1)}, [], [], [], [], [])
    records = apply_records(summary, profile="cpu-llm", status="failed", duration_s=12.3456,
                            now=100.0)
    assert {h: r["success"] for h, r in records.items()} == {
        "ok1": True, "bad": False, "gone": False}
    assert records["ok1"] == {"kind": "apply", "profile": "cpu-llm", "success": True,
                              "timestamp": 100.0, "duration_s": 12.346, "checks": {}}
    cancelled = apply_records(summary, profile="cpu-llm", status="cancelled", duration_s=1,
                              now=1)
    assert not cancelled["ok1"]["success"]
    assert "apply/cpu-llm" not in run_metrics_textfile({})  # nothing invented for no records


def test_validate_records_keep_numbers_and_verdicts() -> None:
    from toolkit.run_metrics import validate_records, wanted
    from toolkit.validate import Check

    checks = [Check("h1", "gateway.tokens_per_s", "pass", 93.5, ">= 5"),
              Check("h1", "gateway.chat", "pass", "200", "200"),
              Check("h2", "model.smol.sha256", "fail", "abc", "== def")]
    records = validate_records(checks, profile="cpu-llm", duration_s=30, now=5)
    assert records["h1"]["success"] and not records["h2"]["success"]
    assert records["h1"]["checks"] == {"gateway.tokens_per_s": {"passed": True, "value": 93.5},
                                       "gateway.chat": {"passed": True, "value": None}}
    text = run_metrics_textfile({"validate/cpu-llm": records["h1"]})
    assert 'check="gateway.tokens_per_s"} 93.5' in text
    assert wanted({"a": ["web"], "b": ["monitoring"]}) and not wanted({"a": ["web"]})
