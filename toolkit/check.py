"""`check`: every problem with an inventory, before any host is touched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from toolkit.compat_gate import host_compat_problems
from toolkit.inventory import ResolvedInventory, SourcedValue, resolve
from toolkit.paths import content_root
from toolkit.profiles import Profile
from toolkit.specs import Problem, check_host, load_role_rules, load_role_specs


def check_inventory(inventories: list[Path], profile: Profile | None,
                    roles_dir: Path | None = None) -> tuple[ResolvedInventory, list[Problem]]:
    resolved = resolve(inventories)
    roles_dir = roles_dir or content_root() / "roles"
    specs = load_role_specs(roles_dir)
    rules = load_role_rules(roles_dir)
    roles = profile.roles if profile else ()
    problems: list[Problem] = []
    for host, hostvars in sorted(resolved.hosts.items()):
        problems.extend(check_host(host, hostvars, specs, roles, rules))
        problems.extend(host_compat_problems(host, hostvars))
        problems.extend(key_file_problems(host, hostvars))
    return resolved, problems


# Variables naming a file on the controller that holds secrets (one per line).
KEY_FILE_VARS = ("gateway_api_key_file",)


def key_file_path(value: Any) -> Path | None:
    """The controller path a key-file variable names (None: unset, or a template)."""
    if not isinstance(value, str) or not value or "{{" in value:
        return None
    return Path(value).expanduser()


def _key_file(hostvars: dict[str, SourcedValue], name: str) -> tuple[Path, str] | None:
    sourced = hostvars.get(name)
    path = key_file_path(sourced.value) if sourced else None
    return (path, sourced.source) if path and sourced else None


def key_file_problems(host: str, hostvars: dict[str, SourcedValue]) -> list[Problem]:
    """A key file must exist on the controller, be private to its owner and hold a key."""
    problems = []
    for name in KEY_FILE_VARS:
        found = _key_file(hostvars, name)
        if found is None:
            continue
        path, source = found
        if not path.is_file():
            problems.append(Problem(host, name, f"{path} is not a file on the controller",
                                    source))
        elif (mode := path.stat().st_mode & 0o777) & 0o077:
            problems.append(Problem(host, name, f"{path} is readable by other users "
                                    f"(mode {mode:o}); chmod 600 it", source))
        elif not path.read_text(encoding="utf-8").strip():
            problems.append(Problem(host, name, f"{path} holds no key", source))
    return problems


def key_file_secrets(resolved: ResolvedInventory) -> list[str]:
    """Every key held in the inventory's key files: values no output may show."""
    values: set[str] = set()
    for hostvars in resolved.hosts.values():
        for name in KEY_FILE_VARS:
            found = _key_file(hostvars, name)
            if found and found[0].is_file():
                text = found[0].read_text(encoding="utf-8")
                values.update(line.strip() for line in text.splitlines() if line.strip())
    return sorted(values)
