"""A fleet behind one endpoint, on real hosts: two sandbox hosts serve SmolLM2 (cpu-llm profile:
llama.cpp on CPU behind their host gateways), a third runs the front gateway. The OpenAI client
gets answers through the front; during a bounded load loop one runtime is stopped: no request
that had not started streaming fails, the host leaves its pool and rejoins once restarted."""

from __future__ import annotations

import json
import secrets
import ssl
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml

from tests.sandbox import Sandbox

pytestmark = [pytest.mark.sandbox, pytest.mark.slow, pytest.mark.llama_build]

MODEL = "smollm2-135m-instruct"
REQUESTS = 200
CONCURRENCY = 4
STOP_AFTER = 40  # requests finished before the runtime is stopped
WAIT_S = 180
HEALTH_LOG = "/var/log/gpuforge-front/health.log"


@pytest.fixture(scope="module")
def fleet(make_sandbox: Callable[..., Sandbox], tmp_path_factory: pytest.TempPathFactory,
          ) -> dict[str, Any]:
    box = make_sandbox("fleet", hosts=3)
    one, two, front = (h["name"] for h in box.state["hosts"])
    extra = tmp_path_factory.mktemp("fleet-inventory")
    fleet_key = extra / "fleet-key"
    # Created private (0600) before the credential is written into it.
    fleet_key.touch(mode=0o600)
    fleet_key.write_text(f"gf-fleet-{secrets.token_hex(16)}\n", encoding="utf-8")
    (extra / "inventory").mkdir()
    overlay = extra / "inventory" / "fleet.yml"
    # The fleet's models come from its placement (two replicas: one per inference host),
    # which `apply` hands to the roles; the hosts' memory is declared, as a site without
    # recorded facts declares it.
    inference = {one: {"gpuforge_memory_mb": 4096}, two: {"gpuforge_memory_mb": 4096}}
    overlay.write_text(yaml.safe_dump({"all": {
        "children": {"inference": {"hosts": inference},
                     "front_gateway": {"hosts": {front: {}}}},
        "vars": {"gateway_fleet_key_file": str(fleet_key),
                 "gpuforge_placement": [{"model": MODEL, "replicas": 2}],
                 "front_gateway_health_interval": 2}}}), encoding="utf-8")
    inv = ["-i", box.inventory, "-i", str(overlay)]
    # Named keys in the controller key store, before the applies take it to every gateway.
    named = {}
    for name, args in (("fleet-team", ("--models", MODEL)),
                       ("fleet-other", ("--models", "another-model")),
                       ("fleet-slow", ("--requests-per-minute", "2"))):
        proc = box.gpuforge("keys", "add", name, *args, "--json")
        assert proc.returncode == 0, proc.stderr
        named[name] = json.loads(proc.stdout)["key"]
    proc = box.gpuforge("apply", *inv, "--profile", "cpu-llm", "--limit", f"{one},{two}",
                        "--yes", timeout=3600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # The front profile planned on its fresh host: nothing fails, nothing changes there.
    box.plan_changes_nothing(inv, "front-gateway", front, "nginx", "/var/lib/gpuforge-front")
    proc = box.gpuforge("apply", *inv, "--profile", "front-gateway", "--yes", timeout=3600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sandbox_inv = yaml.safe_load(Path(box.inventory).read_text(encoding="utf-8"))
    key_file = sandbox_inv["all"]["children"]["sandbox"]["vars"]["gateway_api_key_file"]
    port = next(h["ports"]["443"] for h in box.state["hosts"] if h["name"] == front)
    pin = Path(box.env["GPUFORGE_STATE_DIR"]) / "gateway-certs" / f"{front}.pem"
    return {"box": box, "one": one, "two": two, "front": front, "inv": inv,
            "url": f"https://127.0.0.1:{port}/v1", "pin": pin,
            "key": Path(key_file).read_text(encoding="utf-8").split()[0], "named": named}


def _client(fleet: dict[str, Any], key: str | None = None, keepalive: bool = True,
            ) -> openai.OpenAI:
    # The front's certificate is verified against the copy pinned at apply time.
    context = ssl.create_default_context(cafile=str(fleet["pin"]))
    return openai.OpenAI(base_url=fleet["url"], api_key=key or fleet["key"], max_retries=0,
                         timeout=120, http_client=openai.DefaultHttpxClient(verify=context),
                         default_headers={} if keepalive else {"Connection": "close"})


def _unit(fleet: dict[str, Any], host: str) -> str:
    listing = fleet["box"].exec(host, "sh", "-c",
                                "cat \"$(ls /etc/gpuforge/endpoints.d/*.json | head -n 1)\"")
    return str(json.loads(listing.stdout)["unit"])


def _health_log(fleet: dict[str, Any]) -> list[str]:
    proc = fleet["box"].exec(fleet["front"], "sh", "-c", f"cat {HEALTH_LOG} 2>/dev/null || true")
    return list(proc.stdout.splitlines())


def _served_requests(fleet: dict[str, Any], host: str) -> int:
    proc = fleet["box"].exec(host, "sh", "-c",
                             "grep -c 'POST /v1/chat/completions' "
                             "/var/log/nginx/gpuforge-access.log || true")
    return int(proc.stdout.strip() or 0)


def _wait(what: str, probe: Callable[[], Any]) -> float:
    start = time.monotonic()
    while not probe():
        if time.monotonic() - start > WAIT_S:
            raise AssertionError(f"{what}: not within {WAIT_S} s")
        time.sleep(1)
    return time.monotonic() - start


def test_models_and_answers_through_the_front(fleet: dict[str, Any]) -> None:
    client = _client(fleet)
    assert [m.id for m in client.models.list()] == [MODEL]
    before = {h: _served_requests(fleet, h) for h in (fleet["one"], fleet["two"])}
    answers = [client.chat.completions.create(
        model=MODEL, max_tokens=8,
        messages=[{"role": "user", "content": "What is the capital of France?"}])
        for _ in range(6)]
    assert all(a.choices[0].message.content for a in answers)
    after = {h: _served_requests(fleet, h) for h in before}
    # least_conn over two idle members: both host gateways served some of the six.
    assert all(after[h] > before[h] for h in before), (before, after)
    with pytest.raises(openai.AuthenticationError):
        _client(fleet, key="gf-wrong-" + secrets.token_hex(16)).models.list()
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", max_tokens=1,
                                       messages=[{"role": "user", "content": "hi"}])


def test_the_placement_is_what_the_front_pools(fleet: dict[str, Any]) -> None:
    """`gpuforge place` on the fleet's inventory puts the model's two replicas on the two
    inference hosts, and the applied hosts serve exactly what it placed: each host gateway
    lists the model (the front's pools are built from those lists)."""
    proc = fleet["box"].gpuforge("place", *fleet["inv"], "--json")
    assert proc.returncode == 0, proc.stderr
    placed = json.loads(proc.stdout)
    assert sorted(placed["pools"][MODEL]) == sorted([fleet["one"], fleet["two"]])
    for host in (fleet["one"], fleet["two"]):
        served = fleet["box"].exec(host, "cat", "/etc/gpuforge/gateway.json")
        assert json.loads(served.stdout)["models"] == placed["hosts"][host]["models"]


def test_named_keys_through_the_front_keep_their_scope_and_usage(fleet: dict[str, Any]) -> None:
    """Issue 14: a key from `gpuforge keys` works through the front; one limited to another
    model gets 403 and an empty model list there; the host gateways log the key's name (the
    front forwards its hash with the fleet credential), so `gpuforge usage` counts exactly the
    requests and tokens the client sent through the front."""
    team, other = fleet["named"]["fleet-team"], fleet["named"]["fleet-other"]
    assert [m.id for m in _client(fleet, team).models.list()] == [MODEL]
    assert list(_client(fleet, other).models.list()) == []
    with pytest.raises(openai.PermissionDeniedError, match="may not use model"):
        _client(fleet, other).chat.completions.create(
            model=MODEL, max_tokens=1, messages=[{"role": "user", "content": "hi"}])
    start = int(time.time()) + 1  # the log has whole seconds
    time.sleep(start - time.time() + 0.05)
    seen = {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0}
    for i in range(4):
        answer = _client(fleet, team).chat.completions.create(
            model=MODEL, max_tokens=6, messages=[{"role": "user", "content": f"Count to {i + 2}."}])
        assert answer.choices[0].message.content and answer.usage
        seen["requests"] += 1
        seen["prompt_tokens"] += answer.usage.prompt_tokens
        seen["completion_tokens"] += answer.usage.completion_tokens
    since = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(start))
    proc = fleet["box"].gpuforge("usage", *fleet["inv"], "--since", since, "--json", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    groups = {g["key"]: g for g in json.loads(proc.stdout)["groups"]}
    print(f"named key through the front: client sent {seen}; gpuforge usage: {groups}")
    assert {k: groups["fleet-team"][k] for k in seen} == seen, groups
    assert "fleet-other" not in groups  # refused at the front: never reached a host
    for host in (fleet["one"], fleet["two"]):
        log = fleet["box"].exec(host, "cat", "/var/log/nginx/gpuforge-metrics.log").stdout
        assert team not in log and other not in log
    # A key's own rate holds at the front, across the whole pool: 2 a minute, then 429.
    slow = _client(fleet, fleet["named"]["fleet-slow"])
    assert [m.id for m in slow.models.list()] == [MODEL]
    assert slow.chat.completions.create(
        model=MODEL, max_tokens=2, messages=[{"role": "user", "content": "hi"}]).choices
    with pytest.raises(openai.RateLimitError):
        slow.chat.completions.create(
            model=MODEL, max_tokens=2, messages=[{"role": "user", "content": "hi"}])


def test_failover_while_one_runtime_stops(fleet: dict[str, Any]) -> None:
    box, one = fleet["box"], fleet["one"]
    unit = _unit(fleet, one)
    log_before = len(_health_log(fleet))
    # A connection per request: the pool change reloads the front's nginx, which closes its idle
    # keep-alive connections, and a request sent on one at that instant fails before any answer
    # whatever the front does (HTTP/1.1 leaves that race to clients; the OpenAI SDK's default
    # retries cover it). What is measured here is the front's retry of requests it accepted.
    client = _client(fleet, keepalive=False)
    lock = threading.Lock()
    done = {"n": 0}
    stopped = threading.Event()
    results: list[dict[str, Any]] = []

    def one_request(i: int) -> None:
        started = False
        try:
            stream = client.chat.completions.create(
                model=MODEL, max_tokens=6, stream=True,
                messages=[{"role": "user", "content": f"Say a number near {i}."}])
            started = True  # the response began: nginx may no longer retry it
            text = "".join((c.choices[0].delta.content or "") for c in stream if c.choices)
            outcome: dict[str, Any] = {"ok": True, "text": text}
        except openai.OpenAIError as exc:
            outcome = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        outcome.update({"i": i, "started": started, "after_stop": stopped.is_set()})
        with lock:
            results.append(outcome)
            done["n"] += 1
            if done["n"] == STOP_AFTER:
                assert box.exec(one, "systemctl", "stop", unit).returncode == 0
                stopped.set()

    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=CONCURRENCY) as pool:
        list(pool.map(one_request, range(REQUESTS)))
    elapsed = time.monotonic() - start
    try:
        down_s = _wait(f"{one} leaves its pool", lambda: any(
            f"{one} down" in line for line in _health_log(fleet)[log_before:]))
    finally:
        assert box.exec(one, "systemctl", "start", unit).returncode == 0
    up_s = _wait(f"{one} rejoins its pool", lambda: any(
        f"{one} up" in line for line in _health_log(fleet)[log_before:]))
    changes = _health_log(fleet)[log_before:]
    failed = [r for r in results if not r["ok"]]
    not_started = [r for r in failed if not r["started"]]
    print(f"failover: {len(results)} requests ({CONCURRENCY} at a time) in {elapsed:.0f} s, "
          f"{len(failed)} failed, {len(not_started)} of them before streaming; "
          f"{sum(r['after_stop'] for r in results)} sent after the stop; pool changes: {changes}; "
          f"rejoined {up_s:.0f} s after the restart (left within {down_s:.0f} s of the end)")
    assert len(results) == REQUESTS
    assert not_started == [], not_started[:3]
    assert all(r["text"] for r in results if r["ok"])
    assert [line.split(" ", 1)[1].split(" (")[0] for line in changes] == [
        f"pool {MODEL}: {one} down", f"pool {MODEL}: {one} up"], changes
    # Back in the pool, the restarted host serves again.
    before = _served_requests(fleet, one)
    for _ in range(6):
        _client(fleet).chat.completions.create(
            model=MODEL, max_tokens=4, messages=[{"role": "user", "content": "Hi"}])
    assert _served_requests(fleet, one) > before


def test_second_apply_changes_nothing(fleet: dict[str, Any]) -> None:
    proc = fleet["box"].gpuforge("apply", *fleet["inv"], "--profile", "front-gateway", "--yes",
                                 "--json", timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    hosts = json.loads(proc.stdout)["hosts"]
    assert hosts[fleet["front"]]["changed"] == 0, hosts


def test_fleet_credential_stays_out_of_history(fleet: dict[str, Any]) -> None:
    overlay = Path(fleet["inv"][3])
    key_file = yaml.safe_load(overlay.read_text(encoding="utf-8"))["all"]["vars"][
        "gateway_fleet_key_file"]
    key = Path(key_file).read_text(encoding="utf-8").strip()
    state = Path(fleet["box"].env["GPUFORGE_STATE_DIR"])
    leaked = [p for p in state.rglob("*") if p.is_file() and p.stat().st_size < 50_000_000
              and key.encode() in p.read_bytes()]
    assert leaked == []
    listing = fleet["box"].exec(fleet["front"], "ps", "-eo", "args")
    assert key not in listing.stdout

