"""CI=true turns every skip into a failure that names the reason; elsewhere skips stay skips."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SAMPLE = '''
import pytest

@pytest.mark.skipif(True, reason="needs rootful podman")
def test_marked():
    pass

def test_called():
    pytest.skip("chromium not installed")

@pytest.mark.xfail(reason="known")
def test_expected_failure():
    assert False

def test_plain():
    pass
'''


def _run(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_sample.py").write_text(SAMPLE, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.ci_strict", "-p", "no:cacheprovider",
         "-p", "no:xdist", "-q", "-rA", "--rootdir", str(tmp_path), str(tmp_path)],
        capture_output=True, text=True, cwd=tmp_path, env=env, check=False, timeout=120)


def test_under_ci_every_skip_fails_and_says_why(tmp_path: Path) -> None:
    proc = _run(tmp_path, "true")
    assert proc.returncode == 1, proc.stdout
    # A skip marker acts in setup (reported as an error), pytest.skip() in the call.
    assert "1 failed, 1 passed, 1 xfailed, 1 error" in proc.stdout
    assert "needs rootful podman" in proc.stdout
    assert "chromium not installed" in proc.stdout
    assert "under CI=true every tool a test needs must be installed" in proc.stdout


def test_outside_ci_skips_stay_skips(tmp_path: Path) -> None:
    proc = _run(tmp_path, None)
    assert proc.returncode == 0, proc.stdout
    assert "1 passed, 2 skipped, 1 xfailed" in proc.stdout
