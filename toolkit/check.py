"""`check`: every problem with an inventory, before any host is touched."""

from __future__ import annotations

from pathlib import Path

from toolkit.compat_gate import host_compat_problems
from toolkit.inventory import ResolvedInventory, resolve
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
    return resolved, problems
