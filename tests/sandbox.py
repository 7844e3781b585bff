"""Sandbox hosts for tests: real podman hosts with systemd, reached over SSH."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GPUFORGE = [sys.executable, "-m", "toolkit.cli.app"]


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
        # Started with SIGINT's default action, as from a terminal: a test command run as a
        # background job inherits SIGINT ignored, and the CLI would never see a Ctrl-C.
        return subprocess.Popen([*GPUFORGE, *args], env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

    def exec(self, host: str, *cmd: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["podman", "exec", self.container(host), *cmd],
                              capture_output=True, text=True, check=False)

    def plan_changes_nothing(self, inventory: list[str], profile: str, host: str,
                             packages: str, path: str) -> None:
        """`gpuforge plan` of a profile on a fresh host: exit 0, no task failed, and the host
        still has none of `packages` installed and no `path`."""
        plan = self.gpuforge("plan", *inventory, "--profile", profile, "--json", timeout=1200)
        assert plan.returncode == 0, plan.stderr[-3000:]
        assert json.loads(plan.stdout)["hosts"][host]["failed"] == 0
        untouched = self.exec(host, "sh", "-c", f"test ! -e {path} && "
                              f"! dpkg-query -W -f='${{db:Status-Status}}\\n' {packages} "
                              "2>/dev/null | grep -qx installed")
        assert untouched.returncode == 0, f"plan --profile {profile} changed the fresh host"


def cli_env(state: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPUFORGE_")}
    env.update({"GPUFORGE_STATE_DIR": str(state), "NO_COLOR": "1", "CI": "true"})
    return env




def wait_for_line(proc: subprocess.Popen[str], needle: str, timeout: float) -> list[str]:
    assert proc.stderr is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        if needle in line:
            return seen
    raise AssertionError(f"{needle!r} never appeared in:\n{''.join(seen)}")
