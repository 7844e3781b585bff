"""Shared fixtures: an isolated state dir per test session, the repository root."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


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
