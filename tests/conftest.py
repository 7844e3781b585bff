"""Shared fixtures: an isolated state dir per test session, the repository root."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.sandbox import GPUFORGE, Sandbox, cli_env

ROOT = Path(__file__).resolve().parent.parent

pytest_plugins = ["tests.ci_strict"]


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private GPUFORGE_STATE_DIR: history, artifacts, locks for this test only."""
    path = tmp_path / "state"
    monkeypatch.setenv("GPUFORGE_STATE_DIR", str(path))
    return path


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session", autouse=True)
def _no_colour() -> Iterator[None]:
    os.environ.setdefault("NO_COLOR", "1")
    yield


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if shutil.which("podman") is None or os.geteuid() != 0:
        skip = pytest.mark.skip(reason="sandbox tests need rootful podman (see .ci/run)")
        for item in items:
            if "sandbox" in item.keywords:
                item.add_marker(skip)


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
