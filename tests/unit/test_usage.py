"""Per-key usage: the gateway_usage module sums recorded metrics-log lines (streamed and plain
completions, failed requests, responses without usage, requests refused before routing) per
key, model and status; toolkit.usage merges hosts and groups by key, model or host."""

from __future__ import annotations

import gzip
import json
import os
import re
import runpy
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.unit.test_monitoring_gateway import log_format
from toolkit.errors import InvalidInput
from toolkit.usage import group, host_rows, parse_since, table_rows, to_csv, totals

MODULE_PATH = Path(__file__).resolve().parents[2] / "plugins" / "modules" / "gateway_usage.py"
gu = SimpleNamespace(**runpy.run_path(str(MODULE_PATH)))  # its main() does not run

# Lines as nginx 1.22 + njs 0.7.9 wrote them (template's gf_metrics, a stand-in upstream).
RECORDED = [
    # plain completion with usage
    '{"status":200,"model":"m1","key":"key-7340673e","content_type":"application/json",'
    '"upstream_header_s":"0.003","upstream_s":"0.003","request_s":0.003,'
    '"time":"2026-12-03T05:06:19+00:00","prompt_tokens":"13","completion_tokens":"7"}',
    # streamed completion (usage in its last chunk)
    '{"status":200,"model":"m1","key":"key-7340673e","content_type":"text/event-stream",'
    '"upstream_header_s":"0.120","upstream_s":"1.500","request_s":1.501,'
    '"time":"2026-12-03T05:07:00+00:00","prompt_tokens":"21","completion_tokens":"8"}',
    # streamed, the client turned usage off: counted, tokens unknown
    '{"status":200,"model":"m2","key":"key-7340673e","content_type":"text/event-stream",'
    '"upstream_header_s":"0.001","upstream_s":"0.001","request_s":0.001,'
    '"time":"2026-12-03T05:08:19+00:00","prompt_tokens":"","completion_tokens":""}',
    # the runtime failed
    '{"status":500,"model":"m2","key":"key-0a1b2c3d","content_type":"",'
    '"upstream_header_s":"0.003","upstream_s":"0.003","request_s":0.002,'
    '"time":"2026-12-03T05:09:19+00:00","prompt_tokens":"","completion_tokens":""}',
    # refused before routing (unknown model, wrong key): not usage
    '{"status":404,"model":"-","key":"key-7340673e","content_type":"application/json",'
    '"upstream_header_s":"","upstream_s":"","request_s":0.000,'
    '"time":"2026-12-03T05:09:20+00:00","prompt_tokens":"","completion_tokens":""}',
    '{"status":401,"model":"-","key":"-","content_type":"application/json",'
    '"upstream_header_s":"","upstream_s":"","request_s":0.000,'
    '"time":"2026-12-03T05:09:21+00:00","prompt_tokens":"","completion_tokens":""}',
    # a line from before the usage fields (older gateway): counted, tokens unknown
    '{"status":200,"model":"m1","key":"key-0a1b2c3d","content_type":"application/json",'
    '"upstream_header_s":"0.5","upstream_s":"0.6","request_s":0.6}',
    "not json at all",
]


def log_line(fmt: str, **values: str) -> str:
    """What nginx writes: each $variable replaced by its value, JSON-escaped."""
    def sub(m: re.Match[str]) -> str:
        return json.dumps(values.get(m.group(1), ""))[1:-1]
    return re.sub(r"\$([a-z0-9_]+)", sub, fmt)


def by_key_model_status(found: dict) -> dict[tuple[str, str, int], dict]:  # type: ignore[type-arg]
    return {(r["key"], r["model"], r["status"]): r for r in found["rows"]}


def test_recorded_lines_are_summed_per_key_model_and_status() -> None:
    found = gu.summarise(RECORDED)
    rows = by_key_model_status(found)
    assert set(rows) == {("key-7340673e", "m1", 200), ("key-7340673e", "m2", 200),
                         ("key-0a1b2c3d", "m2", 500), ("key-0a1b2c3d", "m1", 200)}
    ok = rows[("key-7340673e", "m1", 200)]
    assert (ok["requests"], ok["prompt_tokens"], ok["completion_tokens"],
            ok["without_usage"]) == (2, 34, 15, 0)
    assert ok["ttft_n"] == 2 and ok["ttft_s"] == pytest.approx(0.123)
    assert ok["latency_s"] == pytest.approx(1.504)
    no_usage = rows[("key-7340673e", "m2", 200)]
    assert (no_usage["requests"], no_usage["prompt_tokens"], no_usage["without_usage"]) == (1, 0, 1)
    failed = rows[("key-0a1b2c3d", "m2", 500)]
    assert failed["requests"] == 1 and failed["without_usage"] == 1
    assert found["lines"] == 8 and found["skipped"] == 1


def test_since_keeps_later_requests_and_drops_undated_ones() -> None:
    since = datetime(2026, 12, 3, 5, 7, tzinfo=UTC)
    rows = by_key_model_status(gu.summarise(RECORDED, since))
    assert rows[("key-7340673e", "m1", 200)]["requests"] == 1  # 05:07:00 kept, 05:06:19 not
    assert ("key-0a1b2c3d", "m1", 200) not in rows  # no time: cannot be placed after `since`
    # An offset other than UTC is compared as the same instant.
    line = RECORDED[0].replace("05:06:19+00:00", "07:06:19+02:00")
    assert gu.summarise([line], since)["rows"] == []


def test_the_templates_log_format_is_what_the_module_reads() -> None:
    fmt = log_format()
    line = log_line(fmt, status="200", gf_model="smol", gf_key_name="team-a",
                    sent_http_content_type="text/event-stream", upstream_header_time="0.2",
                    upstream_response_time="1.0", request_time="1.001",
                    time_iso8601="2026-12-03T05:00:00+00:00", gf_prompt_tokens="30",
                    gf_completion_tokens="12", gf_ttft="0.35")
    entry = gu.parse_line(line)
    # TTFT: the first token's time njs measured, not the runtime's headers (sent earlier).
    assert entry == {"time": "2026-12-03T05:00:00+00:00", "key": "team-a", "model": "smol",
                     "status": 200, "prompt_tokens": 30, "completion_tokens": 12,
                     "latency_s": pytest.approx(1.001), "ttft_s": pytest.approx(0.35)}
    assert gu.parse_line(line.replace('"0.35"', '""'))["ttft_s"] is None


def test_lines_without_the_gateways_ttft_use_the_upstream_header_time() -> None:
    # Lines from before ttft_s; a retried request's times ("0.1, 0.3"): the answering upstream's.
    assert gu.parse_line(RECORDED[1])["ttft_s"] == pytest.approx(0.12)
    retried = RECORDED[1].replace('"upstream_header_s":"0.120"', '"upstream_header_s":"0.1, 0.3"')
    assert gu.parse_line(retried)["ttft_s"] == pytest.approx(0.3)


def test_rotated_logs_are_read_oldest_first_gzip_included(tmp_path: Path) -> None:
    log = tmp_path / "gpuforge-metrics.log"
    log.write_text(RECORDED[0] + "\n", encoding="utf-8")
    (tmp_path / "gpuforge-metrics.log.1").write_text(RECORDED[1] + "\n", encoding="utf-8")
    with gzip.open(tmp_path / "gpuforge-metrics.log.2.gz", "wt", encoding="utf-8") as fh:
        fh.write(RECORDED[3] + "\n")
    (tmp_path / "gpuforge-metrics.log.bak").write_text(RECORDED[2] + "\n", encoding="utf-8")
    files = gu.log_files(str(log))
    assert [Path(f).name for f in files] == ["gpuforge-metrics.log.2.gz",
                                             "gpuforge-metrics.log.1", "gpuforge-metrics.log"]
    assert sum(r["requests"] for r in gu.summarise(gu.read_lines(files))["rows"]) == 3
    assert gu.log_files(str(tmp_path / "absent.log")) == []


def _hosts() -> dict[str, dict]:  # type: ignore[type-arg]
    return {"h1": gu.summarise(RECORDED[:4]), "h2": gu.summarise(RECORDED[:2]),
            "h3": {"rows": [], "log_found": False}}


def test_hosts_are_grouped_by_key_model_or_host() -> None:
    rows = host_rows(_hosts())
    by_key = {g["key"]: g for g in group(rows, "key")}
    assert by_key["key-7340673e"]["requests"] == 5
    assert by_key["key-7340673e"]["prompt_tokens"] == 68
    assert by_key["key-7340673e"]["completion_tokens"] == 30
    assert by_key["key-7340673e"]["without_usage"] == 1
    assert by_key["key-0a1b2c3d"]["failed"] == 1
    by_host = {g["host"]: g for g in group(rows, "host")}
    assert set(by_host) == {"h1", "h2"} and by_host["h2"]["requests"] == 2
    by_model = group(rows, "model")
    assert [g["model"] for g in by_model] == ["m1", "m2"]  # most tokens first
    assert by_model[0]["mean_ttft_s"] == pytest.approx((0.123 * 2) / 4, abs=1e-3)
    assert totals(by_model) == {"requests": 6, "failed": 1, "prompt_tokens": 68,
                                "completion_tokens": 30, "without_usage": 2}
    with pytest.raises(InvalidInput, match="--by 'user'"):
        group(rows, "user")


def test_table_and_csv_say_the_same() -> None:
    groups = group(host_rows(_hosts()), "model")
    csv_lines = to_csv(groups, "model").splitlines()
    assert csv_lines[0] == ("model,requests,failed,prompt_tokens,completion_tokens,"
                            "without_usage,mean_latency_s,mean_ttft_s")
    assert csv_lines[1].startswith("m1,4,0,68,30,0,")
    assert table_rows(groups, "model")[1][:6] == ["m2", "2", "1", "0", "0", "2"]


def test_since_accepts_spans_and_iso_times_and_names_bad_input() -> None:
    now = datetime(2026, 12, 3, 6, 0, tzinfo=UTC)
    assert parse_since("1h", now) == datetime(2026, 12, 3, 5, 0, tzinfo=UTC)
    assert parse_since("1d", now) == datetime(2026, 12, 2, 6, 0, tzinfo=UTC)
    assert parse_since("30m", now) == datetime(2026, 12, 3, 5, 30, tzinfo=UTC)
    assert parse_since("2026-12-03T04:00:00", now) == datetime(2026, 12, 3, 4, 0, tzinfo=UTC)
    assert parse_since("2026-12-03T06:00:00+02:00", now) == datetime(2026, 12, 3, 4, 0,
                                                                       tzinfo=UTC)
    assert parse_since(None) is None
    with pytest.raises(InvalidInput, match="--since 'yesterday'"):
        parse_since("yesterday", now)


def test_usage_json_names_no_key(tmp_path: Path) -> None:
    # The sums carry the logged key name only; a key or a hash never reaches them.
    found = gu.summarise(RECORDED)
    assert all(set(r) == {"key", "model", "status", *gu.SUM_FIELDS} for r in found["rows"])
    assert "Bearer" not in json.dumps(found)


def _documented(command: str) -> object:
    text = (Path(__file__).resolve().parents[2] / "docs" / "json-contract.md").read_text(
        encoding="utf-8")
    section = text.split(f"## `gpuforge {command} --json`", 1)[1]
    block = re.search(r"```json\n(.*?)```", section, re.S)
    assert block
    return json.loads(block.group(1))


def test_usage_command_reads_each_hosts_log_through_a_recorded_run(tmp_path: Path) -> None:
    """The playbook, the module and the CLI together, on two local 'hosts' (one with a log, one
    without); the document has the keys docs/json-contract.md shows."""
    log = tmp_path / "gpuforge-metrics.log"
    log.write_text("\n".join(RECORDED) + "\n", encoding="utf-8")
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    inv = tmp_path / "inventory.yml"
    inv.write_text(json.dumps({"all": {"hosts": {
        "gw1": {**local, "gpuforge_usage_log": str(log)},
        "gw2": {**local, "gpuforge_usage_log": str(tmp_path / "absent.log")}}}}),
        encoding="utf-8")
    env = {**os.environ, "NO_COLOR": "1", "GPUFORGE_STATE_DIR": str(tmp_path / "state")}
    proc = subprocess.run([sys.executable, "-m", "toolkit.cli.app", "usage", "-i", str(inv),
                           "--since", "2026-12-03T05:07:00", "--json"],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)
    assert set(doc) == set(_documented("usage"))  # type: ignore[arg-type]
    assert set(doc["groups"][0]) == set(_documented("usage")["groups"][0])  # type: ignore[index]
    assert doc["since"] == "2026-12-03T05:07:00+00:00" and doc["hosts_without_gateway_log"] == [
        "gw2"]
    # From 05:07:00: the streamed completion, the one without usage and the failed one.
    assert doc["totals"] == {"requests": 3, "failed": 1, "prompt_tokens": 21,
                             "completion_tokens": 8, "without_usage": 2}
    runs = subprocess.run([sys.executable, "-m", "toolkit.cli.app", "runs", "list", "--json"],
                          capture_output=True, text=True, env=env, timeout=120, check=True)
    assert json.loads(runs.stdout)[0]["command"] == "usage"  # recorded like every run
