"""Shared helpers for the benchmark scripts: timing interleaved runs, sandboxes, results.

Every figure is a ratio of runs taken side by side (A, B, A, B, ...) so that the noise of a
shared machine hits both sides alike; medians and the spread (min..max) are recorded with
the load average at the start and end of the measurement.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
VENV_BIN = Path(sys.executable).parent
GPUFORGE = [str(VENV_BIN / "gpuforge")]


def state_dir() -> Path:
    return Path(os.environ.setdefault("GPUFORGE_STATE_DIR", "/tmp/gf-bench"))


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text(encoding="utf-8").split()[:3])


def env(**extra: str) -> dict[str, str]:
    """The environment a gpuforge run gets, plus extras (ANSIBLE_* of the runner included)."""
    state_dir()
    from toolkit.run_env import base_envvars

    out = {**os.environ, "NO_COLOR": "1", "CI": "true"}
    out.update(base_envvars())
    out.update(extra)
    return out


def timed(cmd: Sequence[str], environ: dict[str, str], *, ok: Sequence[int] = (0,),
          timeout: float = 3600) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(list(cmd), env=environ, capture_output=True, text=True,
                          timeout=timeout, check=False)
    took = time.perf_counter() - t0
    if proc.returncode not in ok:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}:\n"
                         f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return took


def interleave(sides: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Run each side once per round, in turn, alternating which goes first."""
    names = list(sides)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for n in (names if r % 2 == 0 else names[::-1]):
            times[n].append(sides[n]())
            print(f"  round {r + 1}/{rounds} {n}: {times[n][-1]:.2f}s", file=sys.stderr)
    return times


def stats(values: list[float]) -> dict[str, Any]:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3), "n": len(values),
            "runs": [round(v, 3) for v in values]}


def ratio(a: list[float], b: list[float]) -> float:
    return round(statistics.median(a) / statistics.median(b), 3)


def sandbox_up(name: str, hosts: int, distro: str = "debian12") -> dict[str, Any]:
    proc = subprocess.run([*GPUFORGE, "sandbox", "up", "--name", name, "--hosts", str(hosts),
                           "--distro", distro, "--json"], env=env(), capture_output=True,
                          text=True, timeout=1800, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"sandbox up {name} failed:\n{proc.stderr[-2000:]}")
    return dict(json.loads(proc.stdout))


def sandbox_down(name: str) -> None:
    subprocess.run([*GPUFORGE, "sandbox", "down", "--name", name], env=env(),
                   capture_output=True, check=False, timeout=300)


def write(figure: str, data: dict[str, Any]) -> Path:
    """The run's JSON: `<figure>.json` (the latest, which docs/benchmarks.md quotes) and a
    copy under `history/` named by figure and time, so no run's figures are overwritten."""
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    data = {"figure": figure, "when": when, "cpus": os.cpu_count(), **data}
    text = json.dumps(data, indent=2) + "\n"
    (RESULTS / "history").mkdir(parents=True, exist_ok=True)
    (RESULTS / "history" / f"{figure}-{when.replace(':', '')}.json").write_text(
        text, encoding="utf-8")
    path = RESULTS / f"{figure}.json"
    path.write_text(text, encoding="utf-8")
    return path


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(c) for c in headers], *[[str(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
             for r in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)
