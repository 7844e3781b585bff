"""model_store's download path, run by Ansible on the controller itself (the role's own
fetch tasks, over HTTP from a server in this test): a rate limit for a file's source
reaches the downloader (files/download-limited.py: the transfer takes as long as the rate
says) while a source without one is fetched by get_url at full speed, and the sha256 is checked
the same way on both paths: a mismatch fails the task and leaves neither the file nor a
partial file behind. The token-free path keeps its one get_url task."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from toolkit.paths import collections_dir

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="the fetch tasks install files owned by root")

SIZE = 200_000
RATE = 80_000  # bytes/s: SIZE takes 2.5 s at this rate
TOKEN = "hf_notinanylog0123456789"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """An HTTP server for tmp_path/www; the user agents of the requests it answered."""
    www = tmp_path / "www"
    www.mkdir()
    agents: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(www), **kwargs)

        def log_message(self, format: str, *args: Any) -> None:
            agents.append(f"{self.path} {self.headers.get('User-Agent', '')} "
                          f"{self.headers.get('Authorization', '-')}")

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", agents
    finally:
        httpd.shutdown()
        httpd.server_close()


def fetch_play(tmp_path: Path, files: list[dict[str, Any]], rates: dict[str, int]) -> Path:
    """A play that runs the role's fetch tasks for each file and writes, per file,
    whether it failed and what the paced downloader reported, to tmp_path/<name>.json."""
    tasks: list[dict[str, Any]] = []
    for f in files:
        tasks.append({"block": [
            {"ansible.builtin.include_role": {"name": "gpuforge.infra.model_store",
                                              "tasks_from": "fetch.yml"},
             "vars": {"__model_store_file": f}},
            {"ansible.builtin.copy": {
                "dest": str(tmp_path / f"{f['name']}.json"), "mode": "0644",
                # the paced downloader's own report ({bytes, seconds}), when it ran
                "content": '{"failed": false, "paced": '
                           '{{ __model_store_dl_fetched.stdout | default("null") }}}'}}],
            "rescue": [{"ansible.builtin.copy": {
                "dest": str(tmp_path / f"{f['name']}.json"), "mode": "0644",
                "content": '{"failed": true, "paced": null}'}}]})
    play = [{"hosts": "localhost", "connection": "local", "gather_facts": False,
             "vars": {"model_store_group": "root", "model_store_hf_token": TOKEN,
                      "model_store_download_timeout": 30,
                      "model_store_download_rate_limit": 0,
                      "model_store_download_rate_limits": rates},
             "tasks": tasks}]
    path = tmp_path / "play.yml"
    path.write_text(yaml.safe_dump(play), encoding="utf-8")
    return path


def model_file(tmp_path: Path, base: str, name: str, source: str, data: bytes,
               sha256: str | None = None) -> dict[str, Any]:
    (tmp_path / "www" / name).write_bytes(data)
    store = tmp_path / "store" / "m" / "r1"
    store.mkdir(parents=True, exist_ok=True)
    return {"name": name, "model": "m", "dir": str(store), "dest": str(store / name),
            "url": f"{base}/{name}", "sha256": sha256 or hashlib.sha256(data).hexdigest(),
            "source": {"type": source}}


def test_the_rate_limit_of_a_source_reaches_the_downloader_and_the_sha256_still_decides(
        tmp_path: Path, server: tuple[str, list[str]]) -> None:
    base, agents = server
    data = os.urandom(SIZE)
    files = [
        model_file(tmp_path, base, "limited.bin", "url", data),
        model_file(tmp_path, base, "free.bin", "mirror", data),
        model_file(tmp_path, base, "wrong.bin", "url", os.urandom(1000), sha256="0" * 64),
        model_file(tmp_path, base, "gated.bin", "huggingface", b"gated"),
    ]
    play = fetch_play(tmp_path, files, {"url": RATE, "huggingface": 10**9})
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(collections_dir()),
               ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="false")
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,",
         "-e", f"ansible_python_interpreter={sys.executable}", str(play)],
        capture_output=True, text=True, env=env, check=False, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:]
    result = {f["name"]: json.loads((tmp_path / f"{f['name']}.json").read_text())
              for f in files}
    store = tmp_path / "store" / "m" / "r1"
    # The limited source: the paced downloader fetched it at the rate (SIZE / RATE = 2.5 s,
    # less the first chunk of RATE / 8 bytes), and the file is in place, verified, 0640.
    assert not result["limited.bin"]["failed"]
    assert result["limited.bin"]["paced"]["bytes"] == SIZE
    assert result["limited.bin"]["paced"]["seconds"] >= (SIZE - RATE / 8) / RATE, result
    assert (store / "limited.bin").read_bytes() == data
    assert (store / "limited.bin").stat().st_mode & 0o777 == 0o640
    assert "/limited.bin gpuforge-model-store -" in agents, agents
    # The source without a limit: get_url itself, as before.
    assert not result["free.bin"]["failed"]
    assert (store / "free.bin").read_bytes() == data
    assert "/free.bin ansible-httpget -" in agents, agents
    assert result["free.bin"]["paced"] is None
    # A mismatch on the limited path fails and leaves nothing behind.
    assert result["wrong.bin"]["failed"]
    # A Hugging Face file on the paced path: the token reaches the source, and no output.
    assert (store / "gated.bin").read_bytes() == b"gated"
    assert f"/gated.bin gpuforge-model-store Bearer {TOKEN}" in agents, agents
    assert TOKEN not in proc.stdout + proc.stderr
    assert sorted(p.name for p in store.iterdir()) == ["free.bin", "gated.bin", "limited.bin"]
