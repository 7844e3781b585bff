"""Every role's molecule scenarios, discovered from roles/*/molecule/*/molecule.yml.

Each runs the shared sequence (syntax, create, check, converge, idempotence, verify,
destroy) on podman hosts with systemd; a scenario passes only if molecule says so,
which includes idempotence (a second converge with 0 changed)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Scenarios that serve a real model need the llama.cpp build (compiled on the first run,
# minutes): they go first, so the build overlaps the other scenarios instead of ending last.
LLAMA_BUILD = {"llama_cpp"}
# Scenarios that build real nvidia DKMS modules (3-6 minutes a build on 2 cores; the upgrade
# scenario took 16.5 minutes, the module one 7.5): outside
# the test command's time budget, run with `pytest -m dkms_build`.
DKMS_BUILD = {("nvidia_driver", "upgrade"), ("nvidia_driver", "module")}
SCENARIOS = sorted(
    ((p.parts[-4], p.parts[-2]) for p in (ROOT / "roles").glob("*/molecule/*/molecule.yml")),
    key=lambda rs: (rs[0] not in LLAMA_BUILD, rs))

pytestmark = [
    pytest.mark.molecule,
    pytest.mark.skipif(shutil.which("podman") is None or os.geteuid() != 0,
                       reason="molecule scenarios need rootful podman (see .ci/run)"),
]


@pytest.mark.parametrize(("role", "scenario"), [
    pytest.param(r, s, id=f"{r}-{s}",
                 marks=([pytest.mark.llama_build] if r in LLAMA_BUILD else [])
                 + ([pytest.mark.dkms_build] if (r, s) in DKMS_BUILD else []))
    for r, s in SCENARIOS])
def test_molecule_scenario(role: str, scenario: str) -> None:
    # The llama_cpp scenario compiles llama.cpp on an empty cache (about 15 minutes on a quiet
    # 2-core machine, past 40 on a loaded one); the others take 3-10 minutes.
    limit = 3600 if role in LLAMA_BUILD or (role, scenario) in DKMS_BUILD else 2400
    report = ROOT / ".cache" / "molecule" / f"{role}-{scenario}.log"
    report.parent.mkdir(parents=True, exist_ok=True)
    try:
        proc = subprocess.run(
            [str(ROOT / "tests" / "molecule" / "run.sh"), role, scenario, "test"],
            capture_output=True, text=True, timeout=limit, check=False,
            env={**os.environ, "PY_COLORS": "0", "ANSIBLE_FORCE_COLOR": "0", "NO_COLOR": "1"})
    except subprocess.TimeoutExpired as exc:
        partial = b"".join(o if isinstance(o, bytes) else o.encode()
                           for o in (exc.stdout, exc.stderr) if o)
        report.write_text(re.sub(r"\x1b\[[0-9;]*m", "", partial.decode(errors="replace")))
        pytest.fail(f"molecule {role}/{scenario} still running after {limit} s; "
                    f"what it printed: {report}")
    log = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr)
    report.write_text(log)
    assert proc.returncode == 0, f"molecule failed for {role}/{scenario}; log: {report}\n" \
                                 + log[-4000:]
    for step in ("check", "converge", "idempotence", "verify"):
        assert re.search(rf"{step}: Executed: Successful", log), f"{step} did not run"
