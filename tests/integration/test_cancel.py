"""Ctrl-C during `gpuforge apply` on a sandbox host: ansible-playbook is interrupted (SIGINT,
its own way out) before anything is killed, the run is recorded `cancelled`, exit 130,
and nothing of the run is left running on the controller."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.conftest import Sandbox
from tests.sandbox import GPUFORGE, wait_for_line

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module")
def box(make_sandbox: Callable[..., Sandbox]) -> Sandbox:
    return make_sandbox("cancel", hosts=1)


def _ansible_below(pid: int) -> list[str]:
    out = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(pid)], capture_output=True,
                         text=True, check=False).stdout
    return [line for line in out.splitlines() if "ansible" in line]


def test_ctrl_c_interrupts_ansible_records_cancelled_and_exits_130(box: Sandbox) -> None:
    # Started here with SIGINT's default action: a test run from a background job inherits
    # SIGINT ignored, and Python would then never see the Ctrl-C.
    proc = subprocess.Popen(
        [*GPUFORGE, "apply", "-i", box.inventory, "--profile", "base", "--yes", "--json"],
        env=box.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    wait_for_line(proc, "Preflight", timeout=300)
    assert _ansible_below(proc.pid), "ansible-playbook runs below gpuforge"
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert time.monotonic() - t0 < 20, err
    assert proc.returncode == 130, err
    data = json.loads(out)
    assert data["status"] == "cancelled" and data["exit_code"] == 130
    assert "recorded as cancelled" in err
    shown = json.loads(box.gpuforge("runs", "show", str(data["run_id"]), "--json").stdout)
    assert shown["status"] == "cancelled" and shown["exit_code"] == 130
    # ansible-playbook was interrupted, not killed: it wrote its own interrupt message.
    stdout = Path(shown["artifact_dir"]) / "stdout"
    assert "User interrupted execution" in stdout.read_text(encoding="utf-8")
    # The whole tree went with it (workers run in process groups of their own).
    time.sleep(1)
    leftovers = subprocess.run(["pgrep", "-f", f"ansible-playbook.*{box.inventory}"],
                               capture_output=True, text=True, check=False).stdout.split()
    assert leftovers == []
