"""`gpuforge demo` from a clean state dir: a sandbox host serves SmolLM2 behind the gateway,
and what it prints (endpoint, model, answer, key file) works from the controller."""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path

import pytest

from tests.sandbox import GPUFORGE, cli_env
from toolkit.models.client import answer_text, chat, request

pytestmark = [pytest.mark.sandbox, pytest.mark.slow, pytest.mark.llama_build]


def test_demo_serves_a_chat_completion_through_the_gateway(tmp_path: Path) -> None:
    env = cli_env(tmp_path / "state")
    name = "t-demo"
    try:
        proc = subprocess.run([*GPUFORGE, "demo", "--name", name, "--json"], env=env,
                              capture_output=True, text=True, timeout=3600, check=False)
        assert proc.returncode == 0, proc.stderr[-4000:]
        out = json.loads(proc.stdout)
        assert out["endpoint"].startswith("https://127.0.0.1:") and out["endpoint"].endswith("/v1")
        assert out["model"] == "smollm2-135m-instruct"
        assert out["answer"]
        key_file = Path(out["api_key_file"])
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        key = key_file.read_text().strip()

        # What the demo printed is enough to verify the gateway: its pinned certificate.
        pin = out["certificate"]
        status, body = chat(out["endpoint"], key, out["model"], "Name a colour.", max_tokens=8,
                            ca_file=pin)
        assert status == 200 and answer_text(body), body
        status, body = request(out["endpoint"], "/models", None)
        assert status == 401 and body["error"]["type"] == "invalid_api_key"

        runs = subprocess.run([*GPUFORGE, "runs", "list", "--json"], env=env,
                              capture_output=True, text=True, timeout=60, check=False)
        assert any(r.get("command") == "demo" and r.get("profile") == "cpu-llm"
                   for r in json.loads(runs.stdout)), runs.stdout

        ep = subprocess.run([*GPUFORGE, "endpoints", "-i", out["inventory"], "--json"], env=env,
                            capture_output=True, text=True, timeout=120, check=False)
        assert ep.returncode == 0, ep.stderr
        (host,) = json.loads(ep.stdout)["hosts"].values()
        assert host["url"] == out["endpoint"] and host["models"] == [out["model"]]
        assert host["api_key_file"] == str(key_file)
    finally:
        subprocess.run([*GPUFORGE, "sandbox", "down", "--name", name], env=env,
                       capture_output=True, timeout=300, check=False)
