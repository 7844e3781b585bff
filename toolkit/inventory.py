"""Load an inventory and resolve each host's variables the way Ansible layers them,
remembering which file gave each variable its final value.

Layers, lowest precedence first (Ansible's order for inventory variables):
group vars from the inventory source (all, then child groups by depth/priority/name),
group_vars/ files beside the inventory, host vars from the inventory source,
host_vars/ files beside the inventory.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.errors import InvalidInput

VARS_EXTENSIONS = ("", ".yml", ".yaml", ".json")


@dataclass(frozen=True)
class SourcedValue:
    value: Any
    source: str


@dataclass
class ResolvedInventory:
    paths: list[Path]
    hosts: dict[str, dict[str, SourcedValue]]
    groups: dict[str, list[str]]  # host -> its groups (without "all")


def _loader() -> Any:
    from ansible.cli import CLI
    from ansible.parsing.dataloader import DataLoader
    from ansible.parsing.vault import VaultSecretsContext

    loader = DataLoader()
    password_file = os.environ.get("ANSIBLE_VAULT_PASSWORD_FILE")
    if password_file:
        # ansible-core keeps the secrets in a process-wide context that may be set only
        # once: a second inventory read in the same process (validate reads it after its
        # run) reuses it instead of failing with "context is already initialized".
        ambient = VaultSecretsContext.current(optional=True)
        secrets = ambient.secrets if ambient else CLI.setup_vault_secrets(
            loader, vault_ids=[], vault_password_files=[password_file])
        loader.set_vault_secrets(secrets)
    return loader


def _vars_files(base: Path, kind: str, name: str) -> list[Path]:
    """group_vars/NAME(.yml|.yaml|.json) or every file in group_vars/NAME/, sorted."""
    found: list[Path] = []
    for ext in VARS_EXTENSIONS:
        candidate = base / kind / f"{name}{ext}"
        if candidate.is_file():
            found.append(candidate)
        elif ext == "" and candidate.is_dir():
            found.extend(sorted(
                p for p in candidate.rglob("*")
                if p.is_file() and p.suffix in (".yml", ".yaml", ".json", "")
                and not p.name.startswith(".")))
    return found


def _load_vars_file(loader: Any, path: Path) -> Mapping[str, Any]:
    try:
        data = loader.load_from_file(str(path), unsafe=True)
    except Exception as exc:
        raise InvalidInput(
            f"cannot read variables file {path}: {str(exc).splitlines()[0]}",
            hint="fix the YAML (or give the vault password with ANSIBLE_VAULT_PASSWORD_FILE)",
        ) from exc
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise InvalidInput(f"variables file {path} is not a mapping",
                           hint="a group_vars/host_vars file holds `name: value` pairs")
    return data


def resolve(paths: list[Path]) -> ResolvedInventory:
    """Resolve every host's variables; raises InvalidInput for unreadable inventories."""
    from ansible.inventory.helpers import sort_groups
    from ansible.inventory.manager import InventoryManager

    for path in paths:
        if not path.exists():
            raise InvalidInput(f"inventory {path} does not exist",
                               hint="pass -i with an inventory file or directory "
                                    "(`gpuforge sandbox up` writes one)")
    loader = _loader()
    try:
        inventory = InventoryManager(loader=loader, sources=[str(p) for p in paths])
    except Exception as exc:
        raise InvalidInput(f"cannot parse inventory: {exc}", hint="check the inventory YAML") \
            from exc
    hosts = inventory.get_hosts()
    if not hosts:
        raise InvalidInput(
            f"inventory {', '.join(map(str, paths))} has no hosts",
            hint="check the path and the YAML (an unparsable inventory looks empty to Ansible)")
    bases = [p if p.is_dir() else p.parent for p in paths]
    sources = ", ".join(str(p) for p in paths)
    resolved: dict[str, dict[str, SourcedValue]] = {}
    groups_of: dict[str, list[str]] = {}
    for host in hosts:
        layer: dict[str, SourcedValue] = {}
        groups = sort_groups(host.get_groups())
        groups_of[host.name] = [g.name for g in groups if g.name != "all"]
        for group in groups:
            for key, value in group.get_vars().items():
                layer[key] = SourcedValue(value, f"{sources} (group {group.name})")
        for group in groups:
            for base in bases:
                for path in _vars_files(base, "group_vars", group.name):
                    for key, value in _load_vars_file(loader, path).items():
                        layer[key] = SourcedValue(value, str(path))
        for key, value in host.get_vars().items():
            if key in ("inventory_file", "inventory_dir", "inventory_hostname",
                       "inventory_hostname_short", "group_names"):
                continue
            layer[key] = SourcedValue(value, f"{sources} (host {host.name})")
        for base in bases:
            for path in _vars_files(base, "host_vars", host.name):
                for key, value in _load_vars_file(loader, path).items():
                    layer[key] = SourcedValue(value, str(path))
        resolved[host.name] = layer
    return ResolvedInventory(paths=paths, hosts=resolved, groups=groups_of)
