"""The gateway's metrics path without a host: the log line nginx writes with the gateway's
log_format gf_metrics (taken from roles/gateway's template, variables filled in as nginx's
escape=json does) is read by Debian's mtail running the program monitoring_agent installs,
and gives requests by model, status and key id, upstream latency and streamed TTFT."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GATEWAY_CONF = ROOT / "roles" / "gateway" / "templates" / "gateway.conf.j2"
PROGRAM = ROOT / "roles" / "monitoring_agent" / "files" / "gpuforge-gateway.mtail"

needs_mtail = pytest.mark.skipif(shutil.which("mtail") is None,
                                 reason="mtail (Debian package mtail) is not installed")


def log_format() -> str:
    """The gf_metrics log_format of the gateway's nginx template, its quoted parts joined."""
    text = GATEWAY_CONF.read_text(encoding="utf-8")
    block = re.search(r"log_format gf_metrics escape=json\n(.*?);\n", text, re.S)
    assert block, "log_format gf_metrics not found in " + str(GATEWAY_CONF)
    return "".join(re.findall(r"'([^']*)'", block.group(1)))


def log_line(fmt: str, **values: str) -> str:
    """What nginx writes: each $variable replaced by its value, JSON-escaped."""
    def sub(m: re.Match[str]) -> str:
        return json.dumps(values.get(m.group(1), ""))[1:-1]
    return re.sub(r"\$([a-z_]+)", sub, fmt)


def mtail_one_shot(tmp_path: Path, lines: list[str]) -> dict[str, float]:
    progs = tmp_path / "progs"
    progs.mkdir()
    shutil.copy(PROGRAM, progs)
    log = tmp_path / "gpuforge-metrics.log"
    log.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    proc = subprocess.run(["mtail", "--progs", str(progs), "--logs", str(log), "--one_shot",
                           "--one_shot_format", "prometheus", "--emit_prog_label=false",
                           "--logtostderr"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    samples = {}
    for line in proc.stdout.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def request(status: int, model: str = "-", key: str = "-", content_type: str = "application/json",
            header_s: str = "", upstream_s: str = "", ttft_s: str = "",
            tokens: tuple[str, str] = ("", "")) -> dict[str, str]:
    return {"status": str(status), "gf_model": model, "gf_key_name": key,
            "sent_http_content_type": content_type, "upstream_header_time": header_s,
            "upstream_response_time": upstream_s, "request_time": "0.001",
            "time_iso8601": "2026-12-03T06:00:00+00:00", "gf_prompt_tokens": tokens[0],
            "gf_completion_tokens": tokens[1], "gf_ttft": ttft_s}


def test_log_format_is_json_and_names_no_key() -> None:
    fmt = log_format()
    line = log_line(fmt, **request(200, 'we"ird', "key-0a1b2c3d", header_s="0.2", upstream_s="1.0"))
    entry = json.loads(line)
    assert entry["model"] == 'we"ird' and entry["key"] == "key-0a1b2c3d"
    # Only the key id reaches the log: never the Authorization header or the key's hash.
    assert "$http_authorization" not in fmt and "$gf_key_hash" not in fmt


@needs_mtail
def test_mtail_counts_requests_latency_and_ttft(tmp_path: Path) -> None:
    fmt = log_format()
    lines = [log_line(fmt, **r) for r in (
        # Streamed: headers at 0.02 s (before any token), first text at 0.120 s.
        request(200, "smol", "key-0a1b2c3d", "text/event-stream", "0.020", "1.500", "0.120",
                ("30", "12")),
        request(200, "smol", "team-a", "application/json", "2.000", "2.000", "2.000", ("7", "5")),
        request(401),
        request(429, key="key-0a1b2c3d"),
        request(502, "smol", "key-0a1b2c3d", "text/html", "0.001", "0.001"),
    )]
    got = mtail_one_shot(tmp_path, lines)
    req = "gpuforge_gateway_requests_total"
    assert got[f'{req}{{key="key-0a1b2c3d",model="smol",status="200"}}'] == 1
    assert got[f'{req}{{key="team-a",model="smol",status="200"}}'] == 1
    assert got[f'{req}{{key="-",model="-",status="401"}}'] == 1
    assert got[f'{req}{{key="key-0a1b2c3d",model="-",status="429"}}'] == 1
    assert got[f'{req}{{key="key-0a1b2c3d",model="smol",status="502"}}'] == 1
    # Upstream latency: the three answers from the runtime, not the 401 or the 429.
    assert got['gpuforge_gateway_upstream_seconds_count{model="smol"}'] == 3
    assert got['gpuforge_gateway_upstream_seconds_sum{model="smol"}'] == pytest.approx(3.501)
    # TTFT: the streamed answer only, its first text (not its header time, 0.02 s).
    assert got['gpuforge_gateway_ttft_seconds_count{model="smol"}'] == 1
    assert got['gpuforge_gateway_ttft_seconds_bucket{model="smol",le="0.1"}'] == 0
    assert got['gpuforge_gateway_ttft_seconds_bucket{model="smol",le="0.25"}'] == 1
    # Tokens per key from the responses' usage; the 401, 429 and 502 had none.
    assert got['gpuforge_gateway_prompt_tokens_total{key="key-0a1b2c3d",model="smol"}'] == 30
    assert got['gpuforge_gateway_completion_tokens_total{key="key-0a1b2c3d",model="smol"}'] == 12
    assert got['gpuforge_gateway_completion_tokens_total{key="team-a",model="smol"}'] == 5
