"""`gpuforge validate` on a real cpu-llm host: passes when it serves, fails (exit 2, JUnit
failure) when the runtime is stopped; the gateway's limits, TLS, certificate pinning,
sandbox and tested configuration on the same host."""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import secrets
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from xml.etree import ElementTree as ET

import openai
import pytest

from tests.sandbox import Sandbox
from toolkit.models.client import answer_text, chat, request

pytestmark = [pytest.mark.sandbox, pytest.mark.slow, pytest.mark.llama_build]


@pytest.fixture(scope="module")
def served(make_sandbox: Callable[..., Sandbox]) -> Sandbox:
    box = make_sandbox("val")
    box.env["GPUFORGE_API_KEY"] = "gf-test-" + secrets.token_hex(16)
    # First, plan the serving profile on the fresh host: it must fail nothing (no role may
    # need what base has not installed yet) and change nothing.
    host = box.state["hosts"][0]["name"]
    box.plan_changes_nothing(["-i", box.inventory], "cpu-llm", host, "nginx python3-apt",
                             "/etc/gpuforge")
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


def test_the_history_is_the_one_record_of_a_validate_run(served: Sandbox, tmp_path: Path) -> None:
    """The checks and what each host measured are kept with the run; no file beside it."""
    rc, data, _, err = _validate(served, tmp_path / "record.xml")
    assert rc == 0, err
    host = served.state["hosts"][0]["name"]
    shown = json.loads(served.gpuforge("runs", "show", str(data["run_id"]), "--json").stdout)
    assert shown["status"] == "successful" and shown["exit_code"] == 0
    assert shown["checks"] == data["checks"]
    measured = shown["facts"][host]["validate_measurements"]
    assert measured["host"] == host and measured["health"] and set(measured["health"]) == {200}
    assert served.env["GPUFORGE_API_KEY"] not in json.dumps(shown)
    state = Path(served.env["GPUFORGE_STATE_DIR"])
    assert not (state / "validate").exists()
    assert not list(state.glob("validate-*"))
    page = tmp_path / "report.html"
    report = served.gpuforge("report", str(data["run_id"]), "-o", str(page))
    assert report.returncode == 0, report.stderr
    assert "gateway.tokens_per_s" in page.read_text(encoding="utf-8")


def test_cpu_llm_is_a_no_op_under_mitogen(served: Sandbox) -> None:
    """The serving profile converged by the linear strategy changes nothing when applied
    again with `--strategy mitogen` (issue 16: the idempotence test under mitogen)."""
    host = served.state["hosts"][0]["name"]
    proc = served.gpuforge("apply", "-i", served.inventory, "--profile", "cpu-llm", "--yes",
                           "--json", "--strategy", "mitogen", timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = json.loads(proc.stdout)["hosts"][host]
    assert (counts["changed"], counts["failed"], counts["unreachable"]) == (0, 0, 0), counts


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


# Flip one byte of the model file in place and put its mtime back: size, mtime and inode
# unchanged. Argument: the file. Prints nothing; a second call restores the byte.
FLIP = """
import os, sys
path = sys.argv[1]
st = os.stat(path)
with open(path, "r+b") as fh:
    fh.seek(st.st_size - 1)
    byte = fh.read(1)
    fh.seek(st.st_size - 1)
    fh.write(bytes([byte[0] ^ 0xFF]))
os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
"""


def _model_checks(data: dict) -> dict[str, dict]:  # type: ignore[type-arg]
    return {c["name"]: c for c in data["checks"] if c["name"].startswith("model.")}


def test_validate_trusts_the_recorded_sha256_until_the_file_changes_or_deep(
        served: Sandbox, tmp_path: Path) -> None:
    """Model files are hashed once (issue 16): the sha256 recorded at download is trusted
    while size, mtime and inode are unchanged, so an in-place edit that keeps all three is
    seen only by `validate --deep`; a touched file is hashed again and its mismatch fails."""
    host = served.state["hosts"][0]["name"]
    record = served.exec(host, "cat", "/srv/gpuforge/models/.gpuforge-sha256.json")
    assert record.returncode == 0, "apply left no sha256 record beside the model store"
    entries = json.loads(record.stdout)["files"]
    path, entry = next((p, e) for p, e in entries.items() if p.endswith(".gguf"))
    assert re.fullmatch(r"[0-9a-f]{64}", entry["sha256"]) and entry["size"] > 0
    flip = served.exec(host, "python3", "-c", FLIP, path)
    assert flip.returncode == 0, flip.stderr
    try:
        # Only the model checks are judged here: the speed checks depend on the machine's
        # load, and the model checks decide the exit code on their own when they fail.
        _, data, _, err = _validate(served, tmp_path / "trusted.xml")
        models = _model_checks(data)
        assert models and all(c["status"] == "pass" for c in models.values()), err

        proc = served.gpuforge("validate", "-i", served.inventory, "--profile", "cpu-llm",
                               "--deep", "--json", timeout=600)
        assert proc.returncode == 2, proc.stderr[-3000:]
        failed = [c for c in _model_checks(json.loads(proc.stdout)).values()
                  if c["status"] == "fail"]
        assert len(failed) == 1 and failed[0]["measured"] != entry["sha256"], failed
        assert f"{path} has sha256" in failed[0]["message"]

        touch = served.exec(host, "touch", path)  # mtime changes: the file is hashed again
        assert touch.returncode == 0, touch.stderr
        rc, data, _, err = _validate(served, tmp_path / "touched.xml")
        assert rc == 2, err
        assert [c["status"] for c in _model_checks(data).values()] == ["fail"]
    finally:
        assert served.exec(host, "python3", "-c", FLIP, path).returncode == 0
    _, data, _, err = _validate(served, tmp_path / "restored.xml")
    assert all(c["status"] == "pass" for c in _model_checks(data).values()), err


# The gateway on the same serving host (issue 12): limits before the key check, TLS at
# Mozilla's intermediate level, pinned certificate, sandboxed nginx, tested configuration,
# runtimes closed to local users. These run after the validate tests (file order): they
# exhaust rate buckets and restart nothing.

FLOOD = """
import http.client, ssl, sys
path, key = sys.argv[1], sys.stdin.read().strip()
ctx = ssl._create_unverified_context()  # loopback of the host itself; TLS is checked elsewhere
statuses, conn = [], None
for _ in range(300):
    for _attempt in range(3):
        try:
            conn = conn or http.client.HTTPSConnection("127.0.0.1", 443, context=ctx)
            conn.request("GET", path, headers={"Authorization": "Bearer " + key})
            resp = conn.getresponse()
            resp.read()
            statuses.append(resp.status)
            if resp.getheader("Connection", "").lower() == "close":
                conn.close(); conn = None
            break
        except (OSError, http.client.HTTPException):
            conn = None
print(" ".join(map(str, statuses)))
"""


def _host(box: Sandbox) -> str:
    return str(box.state["hosts"][0]["name"])


def _url(box: Sandbox) -> str:
    return f"https://127.0.0.1:{box.state['hosts'][0]['ports']['443']}/v1"


def _flood(box: Sandbox, path: str, key: str) -> list[int]:
    proc = subprocess.run(["podman", "exec", "-i", box.container(_host(box)), "python3", "-c",
                           FLOOD, path], input=key, capture_output=True, text=True,
                          timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr
    return [int(s) for s in proc.stdout.split()]


def _sandbox_key(box: Sandbox) -> str:
    path = box.gpuforge("endpoints", "-i", box.inventory, "--json")
    assert path.returncode == 0, path.stderr
    (host,) = json.loads(path.stdout)["hosts"].values()
    return Path(host["api_key_file"]).read_text(encoding="utf-8").strip()


def _wait_until_served(box: Sandbox, key: str) -> None:
    """The previous test restarted the runtime: wait (bounded) until a completion goes through."""
    for _ in range(60):
        status, _body = chat(_url(box), key, MODEL, "Say OK.", max_tokens=1, verify=False)
        if status == 200:
            return
        time.sleep(2)
    pytest.fail(f"no completion through the gateway after the runtime restart (last {status})")


MODEL = "smollm2-135m-instruct"


def test_gateway_serves_with_hsts_and_caps_max_tokens(served: Sandbox) -> None:
    key = served.env["GPUFORGE_API_KEY"]
    _wait_until_served(served, key)
    status, body = chat(_url(served), key, MODEL, "Name a colour.", max_tokens=8)
    assert status == 200 and answer_text(body), body
    status, body = chat(_url(served), key, MODEL, "Count to ten.", max_tokens=100000)
    assert status == 400, body
    assert "max_tokens must be an integer from 0 to 4096" in body["error"]["message"]
    status, body = request(_url(served), "/chat/completions", key,
                           {"model": MODEL, "messages": [], "n_predict": -1})
    assert status == 400 and "n_predict" in body["error"]["message"], body
    conn = http.client.HTTPSConnection("127.0.0.1", served.state["hosts"][0]["ports"]["443"],
                                       context=ssl._create_unverified_context())
    conn.request("GET", "/v1/models")
    resp = conn.getresponse()
    assert resp.status == 401 and json.loads(resp.read())["error"]["type"] == "invalid_api_key"
    assert resp.getheader("Strict-Transport-Security") == "max-age=63072000"


USAGE_REQUESTS = 6  # half plain, half streamed


def test_usage_counts_the_requests_and_tokens_the_client_saw(served: Sandbox) -> None:
    """Issue 14: each completion is logged with its key's name, model, status and the tokens
    of its usage (streamed or not); `gpuforge usage` sums exactly what the client was told."""
    key = served.env["GPUFORGE_API_KEY"]
    _wait_until_served(served, key)
    pin = Path(served.env["GPUFORGE_STATE_DIR"]) / "gateway-certs" / f"{_host(served)}.pem"
    client = openai.OpenAI(base_url=_url(served), api_key=key, max_retries=0, timeout=120,
                           http_client=openai.DefaultHttpxClient(
                               verify=ssl.create_default_context(cafile=str(pin))))
    # The log has whole seconds: start on a fresh one, after every earlier request.
    start = int(time.time()) + 1
    time.sleep(start - time.time() + 0.05)
    seen = {"prompt_tokens": 0, "completion_tokens": 0}
    for i in range(USAGE_REQUESTS):
        messages = [{"role": "user", "content": f"Name {i + 1} colour(s)."}]
        if i % 2 == 0:
            answer = client.chat.completions.create(model=MODEL, max_tokens=6, messages=messages)
            assert answer.choices[0].message.content and answer.usage
            got = answer.usage
        else:
            # No stream_options: the gateway asks for usage itself (one chunk carries it).
            chunks = list(client.chat.completions.create(model=MODEL, max_tokens=6,
                                                         messages=messages, stream=True))
            assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            usage = [c.usage for c in chunks if c.usage is not None]
            assert len(usage) == 1, chunks[-2:]
            got = usage[0]
        seen["prompt_tokens"] += got.prompt_tokens
        seen["completion_tokens"] += got.completion_tokens
    since = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(start))
    proc = served.gpuforge("usage", "-i", served.inventory, "--since", since, "--json",
                           timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    name = "key-" + hashlib.sha256(key.encode()).hexdigest()[:8]
    groups = {g["key"]: g for g in report["groups"]}
    print(f"usage: client saw {USAGE_REQUESTS} requests, {seen}; gpuforge usage --json: "
          f"{groups}")
    assert set(groups) == {name}, groups
    mine = groups[name]
    assert (mine["requests"], mine["failed"], mine["without_usage"]) == (USAGE_REQUESTS, 0, 0)
    assert {k: mine[k] for k in seen} == seen
    assert mine["mean_latency_s"] > 0 and mine["mean_ttft_s"] > 0
    # The log names the key, never holds it; by model and host the same totals.
    log = served.exec(_host(served), "cat", "/var/log/nginx/gpuforge-metrics.log").stdout
    assert key not in log and f'"key":"{name}"' in log
    by_host = served.gpuforge("usage", "-i", served.inventory, "--since", since, "--by", "host",
                              "--csv", timeout=600)
    assert by_host.returncode == 0, by_host.stderr[-3000:]
    assert by_host.stdout.splitlines()[1].startswith(
        f"{_host(served)},{USAGE_REQUESTS},0,{seen['prompt_tokens']},"
        f"{seen['completion_tokens']},0,"), by_host.stdout


def _add_key(box: Sandbox, name: str, *args: str) -> str:
    """`gpuforge keys add`: the key is printed once; the store keeps its hash."""
    proc = box.gpuforge("keys", "add", name, *args, "--json")
    assert proc.returncode == 0, proc.stderr
    return str(json.loads(proc.stdout)["key"])


def test_named_keys_scopes_quotas_and_names_in_usage(served: Sandbox) -> None:
    """Issue 14: keys made by `gpuforge keys add`; one limited to model A gets 403 (JSON) for
    model B; a named key's name, not its hash prefix, is what the log and `gpuforge usage`
    show; unnamed keys still work; a daily token quota gives 429 saying when it resets."""
    scoped = _add_key(served, "team-smol", "--models", MODEL)
    elsewhere = _add_key(served, "team-other", "--models", "another-model")
    quota = _add_key(served, "team-quota", "--tokens-per-day", "1")
    slow = _add_key(served, "team-slow", "--requests-per-minute", "3")
    single = _add_key(served, "team-single", "--max-concurrent", "1")
    store = Path(served.env["GPUFORGE_STATE_DIR"]) / "api-keys.json"
    assert oct(store.stat().st_mode & 0o777) == "0o600"
    assert not any(k in store.read_text(encoding="utf-8")
                   for k in (scoped, elsewhere, quota, slow, single))
    proc = served.gpuforge("apply", "-i", served.inventory, "--profile", "cpu-llm",
                           "--tags", "gateway_configure", "--yes", timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    hashes = served.exec(_host(served), "cat", "/etc/nginx/gpuforge/key-names.map").stdout
    assert scoped not in hashes and "team-smol" in hashes
    _wait_until_served(served, served.env["GPUFORGE_API_KEY"])
    start = int(time.time()) + 1
    time.sleep(start - time.time() + 0.05)
    status, body = chat(_url(served), scoped, MODEL, "Say OK.", max_tokens=4, verify=False)
    assert status == 200 and answer_text(body), body
    status, body = chat(_url(served), elsewhere, MODEL, "Say OK.", max_tokens=4, verify=False)
    print(f"key limited to another-model asking for {MODEL}: {status} {body}")
    assert status == 403 and body["error"]["type"] == "model_not_allowed", body
    assert "team-other" in body["error"]["message"] and elsewhere not in json.dumps(body)
    assert request(_url(served), "/models", elsewhere, verify=False)[1]["data"] == []
    status, body = chat(_url(served), served.env["GPUFORGE_API_KEY"], MODEL, "Say OK.",
                        max_tokens=4, verify=False)
    assert status == 200, body  # an unnamed key: every model, as before
    since = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(start))
    proc = served.gpuforge("usage", "-i", served.inventory, "--since", since, "--json",
                           timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    groups = {g["key"]: g for g in json.loads(proc.stdout)["groups"]}
    print(f"usage by key after the scoped requests: {groups}")
    assert groups["team-smol"]["requests"] == 1 and groups["team-smol"]["prompt_tokens"] > 0
    assert "team-other" not in groups  # refused before routing: not usage
    # A daily token quota of 1: the first request passes (nothing used yet), the next is
    # refused with the time it resets (next 00:00 UTC).
    status, body = chat(_url(served), quota, MODEL, "Say OK.", max_tokens=4, verify=False)
    assert status == 200, body
    status, body = chat(_url(served), quota, MODEL, "Say OK.", max_tokens=4, verify=False)
    print(f"quota key, second request: {status} {body}")
    tomorrow = time.strftime("%Y-%m-%dT00:00:00Z", time.gmtime(time.time() + 86400))
    assert status == 429 and body["error"]["type"] == "quota_exceeded", body
    assert body["error"]["resets_at"] == tomorrow and tomorrow in body["error"]["message"]
    # A key's own rate: a minute's worth (3) at once, then 429, while other keys still pass.
    codes = [request(_url(served), "/models", slow)[0] for _ in range(5)]
    status, body = request(_url(served), "/models", slow)
    print(f"key with 3 requests/minute, 6 requests at once: {[*codes, status]}")
    assert codes == [200, 200, 200, 429, 429], codes
    assert status == 429 and body["error"]["type"] == "rate_limit_exceeded", body
    assert request(_url(served), "/models", scoped)[0] == 200
    # A key's own concurrency limit: with one request in progress, the next is refused; other
    # keys pass; once it ends the key passes again.
    port = int(served.state["hosts"][0]["ports"]["443"])
    held = _hold(port, single, 1)
    try:
        assert _status_until(served, single, 429) == 429
        assert request(_url(served), "/models", scoped)[0] == 200
    finally:
        for sock in held:
            sock.close()
    assert _status_until(served, single, 200) == 200


def test_gateway_tls_is_mozilla_intermediate(served: Sandbox) -> None:
    if shutil.which("sslscan") is None or shutil.which("openssl") is None:
        pytest.skip("sslscan and openssl are needed (scripts/setup.sh installs them)")
    target = f"127.0.0.1:{served.state['hosts'][0]['ports']['443']}"
    scan = subprocess.run(["sslscan", "--no-colour", target], capture_output=True, text=True,
                          timeout=300, check=False)
    assert scan.returncode == 0, scan.stderr
    out = scan.stdout
    verdict = [line for line in out.splitlines()
               if re.match(r"(SSLv\d|TLSv1\.\d)\s+(enabled|disabled)$|Preferred|Accepted", line)]
    print("sslscan verdict:\n" + "\n".join(verdict))
    for proto, state in [("SSLv2", "disabled"), ("SSLv3", "disabled"), ("TLSv1.0", "disabled"),
                         ("TLSv1.1", "disabled"), ("TLSv1.2", "enabled"), ("TLSv1.3", "enabled")]:
        assert re.search(rf"^{re.escape(proto)}\s+{state}$", out, re.M), (proto, out)
    suites = re.findall(r"^(?:Preferred|Accepted)\s+(TLSv1\.[23])\s+\d+ bits\s+(\S+)", out, re.M)
    assert suites, out
    aead = re.compile(r"TLS_(AES_128_GCM_SHA256|AES_256_GCM_SHA384|CHACHA20_POLY1305_SHA256)"
                      r"|ECDHE-(ECDSA|RSA)-(AES128-GCM-SHA256|AES256-GCM-SHA384|CHACHA20-POLY1305)")
    for proto, suite in suites:
        assert aead.fullmatch(suite), (proto, suite)
        assert not re.search(r"CBC|CAMELLIA|ARIA|-SHA$|NULL|RC4|3DES|^DHE-|^AES", suite), suite
        assert proto == "TLSv1.3" or suite.startswith("ECDHE-"), suite
    # No session tickets: a TLS 1.2 handshake gets no ticket.
    hello = subprocess.run(["openssl", "s_client", "-connect", target, "-tls1_2"],
                           input="", capture_output=True, text=True, timeout=60, check=False)
    assert "Protocol  : TLSv1.2" in hello.stdout, hello.stdout
    assert "session ticket" not in hello.stdout.lower(), hello.stdout


def test_gateway_throttles_wrong_keys_and_the_model_list(served: Sandbox) -> None:
    wrong = _flood(served, "/v1/models", "gf-wrong-" + "0" * 24)
    print(f"300 wrong-key requests: {wrong.count(401)} x 401, {wrong.count(429)} x 429")
    assert len(wrong) == 300 and set(wrong) == {401, 429}
    # At most the keyless burst (10) plus one answer 401, then 429 (a 401 now and then as the
    # 30/minute rate refills).
    first = wrong.index(429)
    assert 1 <= first <= 11 and wrong[:first] == [401] * first
    assert wrong.count(429) >= 250
    # A valid key on the model list: the per-key burst (40) plus one, then 429.
    good = _flood(served, "/v1/models", _sandbox_key(served))
    print(f"300 valid-key /v1/models requests: {good.count(200)} x 200, {good.count(429)} x 429")
    first = good.index(429)
    assert 1 <= first <= 41 and good[:first] == [200] * first
    assert good.count(429) >= 100 and set(good) == {200, 429}


def _hold(port: int, key: str, count: int) -> list[ssl.SSLSocket]:
    """Requests in progress: headers sent, the body promised but not sent."""
    ctx = ssl._create_unverified_context()
    held = []
    for _ in range(count):
        sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=30),
                               server_hostname="localhost")
        sock.sendall((f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                      f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
                      "Content-Length: 1000\r\n\r\n{\"model\":").encode())
        held.append(sock)
    return held


def _status_until(box: Sandbox, key: str | None, wanted: int) -> int:
    """GET /v1/models until it answers `wanted` (nginx registers held requests asynchronously)."""
    status = 0
    for _ in range(50):
        status = request(_url(box), "/models", key)[0]
        if status == wanted:
            break
        time.sleep(0.2)
    return status


def test_gateway_caps_concurrent_requests_per_key_and_address(served: Sandbox) -> None:
    port = int(served.state["hosts"][0]["ports"]["443"])
    key_a, key_b = served.env["GPUFORGE_API_KEY"], _sandbox_key(served)
    held = _hold(port, key_a, 16)
    try:
        assert _status_until(served, key_a, 429) == 429  # 17th request of key A
        # Another key still passes (once its bucket, emptied by the flood above, refills).
        assert _status_until(served, key_b, 200) == 200
        held += _hold(port, key_b, 16)
        # 32 in progress from this address: even a keyless request is refused before its 401.
        assert _status_until(served, None, 429) == 429
    finally:
        for sock in held:
            sock.close()
    assert _status_until(served, key_a, 200) == 200


def _exposure(box: Sandbox, unit: str) -> float:
    proc = box.exec(_host(box), "systemd-analyze", "security", "--no-pager", unit)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\w+)", proc.stdout)
    assert match, proc.stdout + proc.stderr
    print(f"systemd-analyze security {unit}: {match.group(1)} {match.group(2)}")
    return float(match.group(1))


def test_nginx_and_runtimes_are_sandboxed_and_runtimes_need_their_key(served: Sandbox) -> None:
    host = _host(served)
    assert _exposure(served, "nginx.service") <= 3.0
    assert _exposure(served, f"llama-server@{MODEL}.service") <= 3.0
    dropin = served.exec(host, "systemctl", "show", "nginx", "-p", "DropInPaths",
                         "-p", "ProtectSystem", "-p", "NoNewPrivileges")
    assert "gpuforge-hardening.conf" in dropin.stdout and "ProtectSystem=strict" in dropin.stdout
    # The runtime refuses local users without its key; its health stays open for probes.
    probe = served.exec(host, "python3", "-c", (
        "import urllib.request as u, urllib.error as e\n"
        "for p in ('/health', '/v1/models'):\n"
        "    try: print(u.urlopen('http://127.0.0.1:8081' + p, timeout=10).status)\n"
        "    except e.HTTPError as x: print(x.code)\n"))
    assert probe.stdout.split() == ["200", "401"], probe.stdout + probe.stderr
    mode = served.exec(host, "stat", "-c", "%a %U %G", "/etc/gpuforge/llama-server/api.key")
    assert mode.stdout.strip() == "640 root llama-server"
    ps = served.exec(host, "sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '")
    key = served.exec(host, "cat", "/etc/gpuforge/llama-server/api.key").stdout.strip()
    assert key and key not in ps.stdout and "--api-key-file" in ps.stdout


def test_endpoints_verifies_the_pinned_certificate(served: Sandbox, tmp_path: Path) -> None:
    host = _host(served)
    ok = served.gpuforge("endpoints", "-i", served.inventory, "--json")
    assert ok.returncode == 0, ok.stderr
    found = json.loads(ok.stdout)["hosts"][host]
    assert found["models"] == [MODEL] and found["models_from"] == "gateway"
    pin = Path(found["tls_verified_with"].removeprefix("pinned certificate "))
    assert pin.is_file() and pin.parent.name == "gateway-certs"
    saved = pin.read_bytes()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=impostor", "-keyout", str(tmp_path / "k"), "-out", str(pin)],
                   check=True, capture_output=True)
    try:
        bad = served.gpuforge("endpoints", "-i", served.inventory, "--json")
    finally:
        pin.write_bytes(saved)
    assert bad.returncode == 4, bad.stderr
    assert f"host {host}: the gateway at {_url(served)} presented a certificate that does not " \
           "verify" in bad.stderr and "the API key was not sent" in bad.stderr


def test_a_config_nginx_rejects_fails_the_run_and_the_old_one_keeps_serving(
        served: Sandbox) -> None:
    host = _host(served)
    site = "/etc/nginx/conf.d/gpuforge-gateway.conf"
    before = served.exec(host, "cat", site).stdout
    host_vars = Path(served.inventory).parent / "host_vars"
    host_vars.mkdir(exist_ok=True)
    (host_vars / f"{host}.yml").write_text("gateway_tls_curves: [X25519, no-such-curve]\n")
    try:
        proc = served.gpuforge("apply", "-i", served.inventory, "--profile", "cpu-llm",
                               "--tags", "gateway_configure", "--yes", timeout=1200)
    finally:
        (host_vars / f"{host}.yml").unlink()
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "no-such-curve" in proc.stderr and "test failed" in proc.stderr, proc.stderr[-3000:]
    assert served.exec(host, "cat", site).stdout == before
    status, body = chat(_url(served), served.env["GPUFORGE_API_KEY"], MODEL, "Say OK.",
                        max_tokens=4)
    assert status == 200 and answer_text(body), body
