"""Where sandboxes keep their inventory, keys and state (under the state dir).

The inventory and state.json live in sandbox/NAME/; the SSH key, the gateway API key and
the hosts' known_hosts in sandbox-keys/NAME/, outside any directory `-i` may point at (a
key file in an inventory directory is read by Ansible as an inventory)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from toolkit.paths import state_dir

DEFAULT_NAME = "default"


def sandbox_dir(name: str) -> Path:
    return state_dir() / "sandbox" / name


def keys_dir(name: str) -> Path:
    """The sandbox's secrets and host keys (0700): never inside its inventory directory."""
    return state_dir() / "sandbox-keys" / name


def load_state(name: str) -> dict[str, Any] | None:
    path = sandbox_dir(name) / "state.json"
    if not path.is_file():
        return None
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def all_states() -> list[dict[str, Any]]:
    root = state_dir() / "sandbox"
    states = []
    for path in sorted(root.glob("*/state.json")) if root.is_dir() else []:
        states.append(json.loads(path.read_text(encoding="utf-8")))
    return states


def default_inventory() -> Path | None:
    """The embedded default target: the `default` sandbox, or the only sandbox that is up."""
    state = load_state(DEFAULT_NAME)
    if state is None:
        states = all_states()
        state = states[0] if len(states) == 1 else None
    if state is None:
        return None
    path = Path(state["inventory"])
    return path if path.is_file() else None
