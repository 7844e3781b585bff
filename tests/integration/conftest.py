"""Sandbox fixtures: real podman hosts with systemd, reached over SSH like real machines."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

GPUFORGE = [sys.executable, "-m", "toolkit.cli.app"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if shutil.which("podman") is None or os.geteuid() != 0:
        skip = pytest.mark.skip(reason="sandbox tests need rootful podman (see .ci/run)")
        for item in items:
            if "sandbox" in item.keywords:
                item.add_marker(skip)


@dataclass
class Sandbox:
    name: str
    env: dict[str, str]
    state: dict[str, Any]

    @property
    def inventory(self) -> str:
        return str(self.state["inventory"])

    def container(self, host: str) -> str:
        return next(h["container"] for h in self.state["hosts"] if h["name"] == host)

    def gpuforge(self, *args: str, timeout: float = 900,
                 **kw: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*GPUFORGE, *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout, check=False, **kw)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([*GPUFORGE, *args], env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def exec(self, host: str, *cmd: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["podman", "exec", self.container(host), *cmd],
                              capture_output=True, text=True, check=False)


def cli_env(state: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPUFORGE_")}
    env.update({"GPUFORGE_STATE_DIR": str(state), "NO_COLOR": "1", "CI": "true"})
    return env


@pytest.fixture(scope="session")
def make_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        Callable[..., Sandbox]]:
    made: list[Sandbox] = []

    def make(name: str, hosts: int = 1, distro: str = "debian12",
             connection: str = "ssh") -> Sandbox:
        state_dir = tmp_path_factory.mktemp(f"state-{name}")
        env = cli_env(state_dir)
        proc = subprocess.run(
            [*GPUFORGE, "sandbox", "up", "--name", name, "--hosts", str(hosts),
             "--distro", distro, "--connection", connection, "--json"],
            env=env, capture_output=True, text=True, timeout=900, check=False)
        assert proc.returncode == 0, proc.stderr
        box = Sandbox(name, env, json.loads(proc.stdout))
        made.append(box)
        return box

    yield make
    for box in made:
        subprocess.run([*GPUFORGE, "sandbox", "down", "--name", box.name], env=box.env,
                       capture_output=True, check=False, timeout=120)
