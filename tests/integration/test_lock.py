"""Two applies against the same hosts: the second is refused (exit 3), the first is unharmed.

The lock is keyed on the hosts, so a second inventory file naming the same hosts is refused
as well as the same inventory given twice."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.sandbox import Sandbox

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]


def _holds_lock(state: Path, pid: int) -> bool:
    for lock in (state / "locks").glob("host-*.lock"):
        try:
            if json.loads(lock.read_text() or "{}").get("pid") == pid:
                return True
        except (OSError, ValueError):
            continue
    return False


def test_second_apply_is_refused_while_the_first_runs(make_sandbox: Callable[..., Sandbox],
                                                     tmp_path: Path) -> None:
    box = make_sandbox("lock")
    state = Path(box.env["GPUFORGE_STATE_DIR"])
    first = box.popen("apply", "-i", box.inventory, "--profile", "base", "--yes")
    deadline = time.monotonic() + 60
    while not _holds_lock(state, first.pid):
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline, "the first apply never took the lock"
        time.sleep(0.2)

    second = box.gpuforge("apply", "-i", box.inventory, "--profile", "base", "--yes",
                          timeout=120)
    assert second.returncode == 3, second.stderr
    assert "Error: another gpuforge run holds host" in second.stderr
    assert f"pid {first.pid}" in second.stderr
    assert "Hint: wait for it to finish" in second.stderr
    # Another inventory file (another path) naming the same hosts is refused too.
    copy = tmp_path / "same-hosts.yml"
    copy.write_text(Path(box.inventory).read_text())
    other = box.gpuforge("apply", "-i", str(copy), "--profile", "base", "--yes", timeout=120)
    assert other.returncode == 3, other.stderr
    assert "Error: another gpuforge run holds host" in other.stderr, other.stderr
    assert first.poll() is None, "the refused apply must not disturb the running one"

    _, err = first.communicate(timeout=900)
    assert first.returncode == 0, err
    runs = json.loads(box.gpuforge("runs", "list", "--json").stdout)
    assert [(r["command"], r["status"], r["exit_code"]) for r in runs] == [
        ("apply", "successful", 0)], "the refused apply touched nothing and is not a run"
    # The lock is released: a third apply goes through.
    third = box.gpuforge("apply", "-i", box.inventory, "--profile", "base", "--yes")
    assert third.returncode == 0, third.stderr
