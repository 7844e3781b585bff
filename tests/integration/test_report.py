"""`gpuforge report` renders a real recorded run as one self-contained page in headless Chromium.

The run is `tests/fixtures/runs/apply-base.json`: `gpuforge runs show --json` of a real
`apply --profile base` on a 1-host sandbox. It is written into a fresh history database
through `History`, exactly as `apply` records runs, and a second run adds a failed host.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from dataclasses import replace
from pathlib import Path

import pytest

from toolkit.history import History
from toolkit.summary import Failure, HostCounts, RunSummary, TaskTiming
from toolkit.validate import Check, judge_host

ROOT = Path(__file__).resolve().parents[2]
RECORDED = ROOT / "tests" / "fixtures" / "runs" / "apply-base.json"
# What the validate role really measured on a sandbox host with a corrupted model file.
MEASURED = json.loads((ROOT / "tests" / "fixtures" / "validate" /
                       "fail-model-checksum.json").read_text())
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (see .ci/run)")


def _summary(data: dict) -> RunSummary:  # type: ignore[type-arg]
    return RunSummary(
        hosts={h: HostCounts(**c) for h, c in data["hosts"].items()},
        failures=[Failure(**f) for f in data["failures"]],
        timings=[TaskTiming(**t) for t in data["timings"]],
        changes=[], reboot_required=data["reboot_required"], warnings=data["warnings"])


def _record(history: History, data: dict, summary: RunSummary, exit_code: int,  # type: ignore[type-arg]
            checks: list[Check] | None = None) -> int:
    run_id = history.start(command=data["command"], inventory=data["inventory"],
                           profile=data["profile"], playbook=data["playbook"], limit=None,
                           tags=None, check_mode=False, started_at=data["started_at"])
    history.finish(run_id, status=data["status"] if exit_code == 0 else "failed", rc=exit_code,
                   exit_code=exit_code, ended_at=data["ended_at"],
                   duration_s=data["duration_s"], artifact_dir=None, summary=summary,
                   checks=checks)
    return run_id


def _chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={profile}", "--window-size=1280,900", *args],
        capture_output=True, text=True, timeout=120, check=False)


def _png_colours(path: Path, sample_rows: int = 60) -> set[bytes]:
    """Distinct pixel colours of an 8-bit RGB/RGBA PNG (every 15th row), stdlib only."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour_type = struct.unpack(">IIBB", header[:10])
    assert depth == 8 and colour_type in (2, 6)
    bpp = 3 if colour_type == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    prev = bytearray(stride)
    colours: set[bytes] = set()
    step = max(height // sample_rows, 1)
    for y in range(height):
        ftype = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 0xFF
            elif ftype == 2:
                line[i] = (line[i] + b) & 0xFF
            elif ftype == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
        if y % step == 0:
            colours.update(bytes(line[x:x + 3]) for x in range(0, stride, bpp))
        prev = line
    return colours


@pytest.fixture
def rendered(tmp_path: Path) -> tuple[Path, Path, dict]:  # type: ignore[type-arg]
    data = json.loads(RECORDED.read_text())
    env = {**os.environ, "GPUFORGE_STATE_DIR": str(tmp_path / "state"), "NO_COLOR": "1",
           "GPUFORGE_HISTORY_DB": str(tmp_path / "history.sqlite3")}
    history = History(tmp_path / "history.sqlite3")
    good = _record(history, data, _summary(data), 0)
    broken = _summary(data)
    host = next(iter(broken.hosts))
    broken.hosts[host] = replace(broken.hosts[host], failed=1)
    broken.failures.append(Failure(host, "Install | Install base packages",
                                   "No package matching 'pciutilz' is available", "failed"))
    # `gpuforge validate` records its checks with the run; the report shows them.
    bad = _record(history, data, broken, 2, checks=judge_host(host, MEASURED, {
        "min_tokens_per_s": 1, "max_ttft_s": 30, "max_restarts": 3}))
    pages = []
    for run_id in (good, bad):
        out = tmp_path / f"run-{run_id}.html"
        proc = subprocess.run([sys.executable, "-m", "toolkit.cli.app", "report", str(run_id),
                               "-o", str(out)], env=env, capture_output=True, text=True,
                              check=False, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert f"wrote {out}" in proc.stderr
        pages.append(out)
    return pages[0], pages[1], data


def test_report_is_self_contained(rendered: tuple[Path, Path, dict]) -> None:  # type: ignore[type-arg]
    for page in rendered[:2]:
        html = page.read_text()
        urls = set(re.findall(r"https?://[^\s\"'<>)]+", html))
        assert urls <= {"http://www.w3.org/2000/svg"}, urls
        assert not re.search(r"<(link|img|iframe)\b|\bsrc=", html)


def test_report_renders_in_headless_chromium(rendered: tuple[Path, Path, dict],  # type: ignore[type-arg]
                                             tmp_path: Path) -> None:
    good, bad, data = rendered
    shot = tmp_path / "good.png"
    proc = _chromium(f"--screenshot={shot}", good.as_uri(), profile=tmp_path / "chr1")
    assert shot.is_file() and shot.stat().st_size > 10_000, proc.stderr[-2000:]
    colours = _png_colours(shot)
    assert len(colours) > 20, f"screenshot is (nearly) one colour: {len(colours)}"
    assert b"\x15\x80\x3d" in colours  # the green header of a successful run

    dom = _chromium("--dump-dom", good.as_uri(), profile=tmp_path / "chr2").stdout
    assert f"Run 1: gpuforge apply --profile {data['profile']}" in dom
    host = next(iter(data["hosts"]))
    assert f'<tr data-host="{host}">' in dom
    assert dom.count('class="bar"') == len(data["timings"]) > 10
    assert "No task failed and every host was reachable." in dom
    slowest = max(data["timings"], key=lambda t: t["duration_s"])
    assert slowest["task"] in dom

    dom = _chromium("--dump-dom", bad.as_uri(), profile=tmp_path / "chr3").stdout
    assert "Failures (1)" in dom
    assert "No package matching 'pciutilz' is available" in dom
    assert '<span class="pill bad">failed</span>' in dom
    assert "Acceptance checks" in dom and '<span class="pill fail">fail</span>' in dom
    assert "SmolLM2-135M-Instruct.Q4_1.gguf has sha256" in dom
