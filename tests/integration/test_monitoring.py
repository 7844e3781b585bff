"""The monitoring profile on real hosts: a serving host (cpu-llm) and a monitoring host
(Prometheus). Every target is up through the TLS metrics endpoints, llama-server's token
counter grows after a completion, gpuforge's own run metrics arrive after apply and
validate, and stopping the runtime fires the runtime-down alert, which resolves after a
restart. The gateway's own metrics (mtail over its log) count a completion by model, status
and key id, a 401 and a 429."""

from __future__ import annotations

import hashlib
import http.client
import json
import secrets
import ssl
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.sandbox import Sandbox

pytestmark = [pytest.mark.sandbox, pytest.mark.slow, pytest.mark.llama_build]

ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 120  # bound on every wait for Prometheus (scrape and evaluation every 5 s here)


def _api(box: Sandbox, host: str, path: str) -> Any:
    """GET Prometheus's HTTP API on the monitoring host (it listens on its loopback)."""
    code = ("import sys, urllib.request; "
            "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=20).read().decode())")
    proc = box.exec(host, "python3", "-c", code, f"http://127.0.0.1:9090{path}")
    assert proc.returncode == 0, proc.stderr
    body = json.loads(proc.stdout)
    assert body["status"] == "success", body
    return body["data"]


def _query(box: Sandbox, host: str, promql: str) -> list[dict[str, Any]]:
    data = _api(box, host, "/api/v1/query?query=" + urllib.parse.quote(promql))
    return list(data["result"])


def _wait(what: str, probe: Callable[[], Any]) -> tuple[Any, float]:
    """Poll probe until it returns something truthy; (its value, seconds waited)."""
    start = time.monotonic()
    while True:
        value = probe()
        if value:
            return value, time.monotonic() - start
        if time.monotonic() - start > WAIT_S:
            raise AssertionError(f"{what}: not within {WAIT_S} s (last: {value!r})")
        time.sleep(2)


@pytest.fixture(scope="module")
def fleet(make_sandbox: Callable[..., Sandbox], tmp_path_factory: pytest.TempPathFactory,
          ) -> dict[str, Any]:
    box = make_sandbox("mon", hosts=2)
    box.env["GPUFORGE_API_KEY"] = "gf-test-" + secrets.token_hex(16)
    serving, monitor = (h["name"] for h in box.state["hosts"])
    extra = tmp_path_factory.mktemp("mon-inventory")
    token = extra / "metrics-token"
    token.write_text("gf-metrics-" + secrets.token_hex(16) + "\n", encoding="utf-8")
    token.chmod(0o600)
    overlay = extra / "inventory" / "monitoring.yml"
    overlay.parent.mkdir()
    overlay.write_text(yaml.safe_dump({"all": {
        "children": {"monitoring": {"hosts": {monitor: {}}}},
        "vars": {"monitoring_agent_metrics_token_file": str(token),
                 "prometheus_metrics_token_file": str(token),
                 "prometheus_scrape_interval": "5s", "prometheus_evaluation_interval": "5s",
                 # A short `for:` so the test sees the alert fire in seconds.
                 "prometheus_alert_down_for": "10s",
                 # A sandbox host's root is an overlay (the node exporter leaves it out); its
                 # disk shows as the /etc/hostname bind mount.
                 "prometheus_alert_disk_mountpoints": "/|/etc/hostname"}}}), encoding="utf-8")
    inv = ["-i", box.inventory, "-i", str(overlay)]
    for args in (("--profile", "cpu-llm", "--limit", serving), ("--profile", "monitoring")):
        proc = box.gpuforge("apply", *inv, *args, "--yes", timeout=3600)
        assert proc.returncode == 0, proc.stderr[-3000:]
    return {"box": box, "inv": inv, "serving": serving, "monitor": monitor, "token": token}


def _tokens_predicted(fleet: dict[str, Any]) -> float:
    rows = _query(fleet["box"], fleet["monitor"], "sum(llamacpp:tokens_predicted_total)")
    return float(rows[0]["value"][1]) if rows else -1.0


def test_every_target_is_up(fleet: dict[str, Any]) -> None:
    box, monitor, serving = fleet["box"], fleet["monitor"], fleet["serving"]

    def targets() -> list[dict[str, Any]] | None:
        active = _api(box, monitor, "/api/v1/targets?state=active")["activeTargets"]
        ready = len(active) == 5 and all(t["health"] == "up" for t in active)
        return active if ready else None

    active, waited = _wait("every target up", targets)
    seen = sorted((t["labels"]["job"], t["labels"]["instance"]) for t in active)
    print(f"targets up after {waited:.0f} s: {seen}")
    assert [s for s in seen if s[0] != "runtime"] == sorted([
        ("gateway", serving), ("node", monitor), ("node", serving),
        ("prometheus", "127.0.0.1:9090")])
    runtime = [t for t in active if t["labels"]["job"] == "runtime"]
    assert runtime[0]["labels"]["host"] == serving
    assert runtime[0]["scrapeUrl"].startswith("https://")  # TLS towards the other host
    ups = {(r["metric"]["job"], r["metric"]["instance"]): r["value"][1]
           for r in _query(box, monitor, "up")}
    assert set(ups.values()) == {"1"}, ups
    # The exporters themselves are on loopback; the endpoint refuses a scrape without the
    # credential.
    address = runtime[0]["scrapeUrl"].split("/")[2]
    closed = box.exec(monitor, "python3", "-c",
                      "import socket, sys\n"
                      "try:\n socket.create_connection((sys.argv[1], 9100), timeout=5)\n"
                      "except OSError:\n print('refused')", address.rsplit(":", 1)[0])
    assert closed.stdout.strip() == "refused", "the node exporter answers beyond loopback"
    refused = box.exec(monitor, "python3", "-c",
                       "import ssl, sys, urllib.request, urllib.error\n"
                       "ctx = ssl._create_unverified_context()\n"
                       "try:\n urllib.request.urlopen(sys.argv[1], context=ctx)\n"
                       "except urllib.error.HTTPError as e:\n print(e.code)",
                       f"https://{address}/metrics/node")
    assert refused.stdout.strip() == "401", refused.stdout + refused.stderr


def test_run_metrics_and_token_counter_after_validate(fleet: dict[str, Any]) -> None:
    box, monitor, serving = fleet["box"], fleet["monitor"], fleet["serving"]
    # The monitoring apply's own record reached both hosts.
    def applied_on_both() -> list[dict[str, Any]]:
        rows = _query(box, monitor, 'gpuforge_run_success{kind="apply",profile="monitoring"} == 1')
        return rows if len(rows) == 2 else []

    applied, _ = _wait("apply records on both hosts", applied_on_both)
    assert sorted(r["metric"]["host"] for r in applied) == sorted([monitor, serving])
    _wait("llama-server's token counter", lambda: _query(
        box, monitor, "llamacpp:tokens_predicted_total"))
    before = _tokens_predicted(fleet)
    # validate sends a real streamed completion through the gateway.
    proc = box.gpuforge("validate", *fleet["inv"], "--profile", "cpu-llm", "--limit", serving,
                        timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    after, _ = _wait("tokens_predicted_total grows",
                     lambda: _tokens_predicted(fleet) > before and _tokens_predicted(fleet))
    print(f"llamacpp:tokens_predicted_total {before} -> {after}")
    rate, _ = _wait("validate tokens/s", lambda: _query(
        box, monitor, 'gpuforge:validate_tokens_per_second{profile="cpu-llm"}'))
    assert rate[0]["metric"]["host"] == serving and float(rate[0]["value"][1]) > 0
    passed = _query(box, monitor, 'gpuforge_run_success{kind="validate",profile="cpu-llm"}')
    assert [(r["metric"]["host"], r["value"][1]) for r in passed] == [(serving, "1")]
    checksums = _query(box, monitor, 'gpuforge_validate_check_passed{check=~"model\\\\..+"}')
    assert checksums and all(r["value"][1] == "1" for r in checksums)


def _descriptor(fleet: dict[str, Any]) -> dict[str, Any]:
    """The serving host's (first) runtime endpoint descriptor."""
    listing = fleet["box"].exec(fleet["serving"], "sh", "-c",
                                "cat \"$(ls /etc/gpuforge/endpoints.d/*.json | head -n 1)\"")
    return dict(json.loads(listing.stdout))


def _gateway(fleet: dict[str, Any], method: str, path: str, key: str,
             body: dict[str, Any] | None = None, count: int = 1) -> list[int]:
    """Requests to the serving host's gateway (its port 443 published on this machine's
    loopback), on one connection; their statuses."""
    port = next(h["ports"]["443"] for h in fleet["box"].state["hosts"]
                if h["name"] == fleet["serving"])
    conn = http.client.HTTPSConnection("127.0.0.1", int(port), timeout=120,
                                       context=ssl._create_unverified_context())
    statuses = []
    try:
        for _ in range(count):
            conn.request(method, "/v1" + path, body=json.dumps(body) if body else None,
                         headers={"Authorization": f"Bearer {key}",
                                  "Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            statuses.append(response.status)
    finally:
        conn.close()
    return statuses


def _gateway_counts(fleet: dict[str, Any]) -> dict[tuple[str, str, str], float]:
    rows = _query(fleet["box"], fleet["monitor"], "gpuforge_gateway_requests_total")
    return {(r["metric"].get("model", ""), r["metric"]["status"], r["metric"].get("key", "")):
            float(r["value"][1]) for r in rows}


def test_gateway_metrics_count_completions_401_and_429(fleet: dict[str, Any]) -> None:
    """The gateway's log, read by mtail and scraped over TLS: a streamed and a plain completion
    count under the model, 200 and the key's id (never the key), a wrong key under 401 and
    no key id, a flood of one key's requests under 429 with its id; the streamed one lands
    in the TTFT histogram."""
    box, monitor, serving = fleet["box"], fleet["monitor"], fleet["serving"]
    key = box.env["GPUFORGE_API_KEY"]
    key_id = "key-" + hashlib.sha256(key.encode()).hexdigest()[:8]
    _wait("the gateway target up", lambda: _query(box, monitor, 'up{job="gateway"} == 1'))
    model = _descriptor(fleet)["name"]
    before = _gateway_counts(fleet)
    ttft_before = _query(box, monitor, f'gpuforge_gateway_ttft_seconds_count{{model="{model}"}}')
    chat = {"model": model, "max_tokens": 8,
            "messages": [{"role": "user", "content": "Name a colour."}]}
    assert _gateway(fleet, "POST", "/chat/completions", key, {**chat, "stream": True}) == [200]
    assert _gateway(fleet, "POST", "/chat/completions", key, chat) == [200]
    assert _gateway(fleet, "GET", "/models", "not-" + key) == [401]
    # The per-key limit (20 r/s, burst 40) refuses some of 100 quick requests of one key.
    flood = _gateway(fleet, "GET", "/models", key, count=100)
    assert 429 in flood and 200 in flood, flood

    def counted() -> dict[tuple[str, str, str], float] | None:
        now = _gateway_counts(fleet)
        grew = {k: now.get(k, 0) - before.get(k, 0) for k in now}
        ok = (grew.get((model, "200", key_id), 0) >= 2 and grew.get(("-", "401", "-"), 0) >= 1
              and grew.get(("-", "429", key_id), 0) >= flood.count(429))
        return grew if ok else None

    grew, waited = _wait("the gateway's requests counted", counted)
    print(f"gateway counters grew within {waited:.0f} s: "
          f"{ {'/'.join(k): v for k, v in sorted(grew.items()) if v} }")
    # The key itself (and its full hash) never reaches Prometheus.
    series = json.dumps(_query(box, monitor, '{__name__=~"gpuforge_gateway_.*"}'))
    assert key not in series and hashlib.sha256(key.encode()).hexdigest() not in series
    ttft = _wait("the streamed completion in the TTFT histogram", lambda: [
        r for r in _query(box, monitor, f'gpuforge_gateway_ttft_seconds_count{{model="{model}"}}')
        if float(r["value"][1]) > (float(ttft_before[0]["value"][1]) if ttft_before else 0)])[0]
    assert ttft[0]["metric"]["host"] == serving


def test_dashboard_panels_return_data(fleet: dict[str, Any]) -> None:
    """Every panel of the shipped dashboard, run against this Prometheus after the validate
    and the gateway's requests above, returns data; the GPU panels (dcgm-exporter) cannot on
    these CPU hosts. A rate() panel over a series born in the test above (the 429s) has data
    from that series' second scrape on, so each panel is given until WAIT_S to show it."""
    dashboard = json.loads((ROOT / "roles" / "prometheus" / "files" / "dashboards"
                            / "gpuforge-fleet.json").read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    cpu = [e for e in exprs if "DCGM_" not in e]
    start = time.monotonic()
    empty = [e for e in cpu if not _query(fleet["box"], fleet["monitor"], e)]
    while empty and time.monotonic() - start <= WAIT_S:
        time.sleep(2)
        empty = [e for e in empty if not _query(fleet["box"], fleet["monitor"], e)]
    print(f"dashboard: {len(cpu)} of {len(exprs)} panel queries run, {len(empty)} empty "
          f"after {time.monotonic() - start:.0f} s")
    names = [r["metric"]["__name__"] for r in _query(
        fleet["box"], fleet["monitor"], 'count by (__name__) ({__name__=~"llamacpp:.*"})')]
    assert empty == [], f"llama-server's metrics here: {sorted(names)}"


def test_runtime_down_alert_fires_and_resolves(fleet: dict[str, Any]) -> None:
    box, monitor, serving = fleet["box"], fleet["monitor"], fleet["serving"]
    unit = _descriptor(fleet)["unit"]

    def firing() -> list[dict[str, Any]]:
        alerts = _api(box, monitor, "/api/v1/alerts")["alerts"]
        return [a for a in alerts
                if a["labels"]["alertname"] == "GpuforgeRuntimeDown" and a["state"] == "firing"]

    assert firing() == []
    assert box.exec(serving, "systemctl", "stop", unit).returncode == 0
    try:
        alerts, fired_s = _wait("GpuforgeRuntimeDown fires", firing)
        assert alerts[0]["labels"]["host"] == serving
    finally:
        assert box.exec(serving, "systemctl", "start", unit).returncode == 0
    _, resolved_s = _wait("GpuforgeRuntimeDown resolves", lambda: not firing())
    print(f"GpuforgeRuntimeDown fired {fired_s:.0f} s after the stop, "
          f"resolved {resolved_s:.0f} s after the restart")


def test_metrics_credential_stays_out_of_history(fleet: dict[str, Any]) -> None:
    token = Path(fleet["token"]).read_text(encoding="utf-8").strip()
    state = Path(fleet["box"].env["GPUFORGE_STATE_DIR"])
    leaked = [p for p in state.rglob("*") if p.is_file() and p.stat().st_size < 50_000_000
              and token.encode() in p.read_bytes()]
    assert leaked == []
