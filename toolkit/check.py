"""`check`: every problem with an inventory, before any host is touched."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from toolkit.compat_gate import host_compat_problems
from toolkit.errors import InvalidInput
from toolkit.inventory import ResolvedInventory, SourcedValue, resolve
from toolkit.keys import KEY_FILE_VARS, key_file_path, read_key_file
from toolkit.keystore import default_store
from toolkit.keystore import load as load_key_store
from toolkit.names import host_problem, name_problem, ollama_problem, relative_path_problem
from toolkit.paths import cache_dir, content_root
from toolkit.placement import cached_facts, placement_problems
from toolkit.profiles import Profile
from toolkit.ranges import range_problems
from toolkit.specs import (
    Problem,
    check_host,
    is_templated,
    is_vaulted,
    load_role_rules,
    load_role_specs,
)


def check_inventory(inventories: list[Path], profile: Profile | None,
                    roles_dir: Path | None = None) -> tuple[ResolvedInventory, list[Problem]]:
    resolved = resolve(inventories)
    roles_dir = roles_dir or content_root() / "roles"
    specs = load_role_specs(roles_dir)
    rules = load_role_rules(roles_dir)
    roles = profile.roles if profile else ()
    problems = vault_problems(resolved)
    # What `gpuforge facts` or an earlier run recorded of each host (GPUs for the toolkit gate).
    recorded = cached_facts(cache_dir() / "facts", sorted(resolved.hosts))
    for host, hostvars in sorted(resolved.hosts.items()):
        if (bad := host_problem(host)):
            problems.append(Problem(host, "inventory_hostname", bad,
                                    ", ".join(map(str, inventories))))
        problems.extend(check_host(host, hostvars, specs, roles, rules))
        problems.extend(host_compat_problems(
            host, hostvars, recorded=recorded.get(host),
            builds_llama_cpp=not roles or "llama_cpp" in roles))
        problems.extend(key_file_problems(host, hostvars))
        problems.extend(input_problems(host, hostvars))
    if profile is None or PLACED_BY & set(roles):
        problems.extend(placement_problems(resolved))
    problems.extend(key_store_problems(resolved, roles))
    return resolved, problems


# The roles that deploy what the placement decides: a profile without them (base, the
# read-only `facts` run that records the memory the placement needs) is not refused for it.
PLACED_BY = {"model_store", "llama_cpp", "front_gateway"}

# The roles that read the controller key store, and the variable naming it for each.
KEY_STORE_VARS = {"gateway": "gateway_key_store", "front_gateway": "front_gateway_key_store"}


def key_store_problems(resolved: ResolvedInventory, roles: tuple[str, ...]) -> list[Problem]:
    """The key store the gateways will read must be private and well formed: refused here,
    once per file, before any host is touched (the roles check it again)."""
    problems: list[Problem] = []
    seen: set[Path] = set()
    for host, hostvars in sorted(resolved.hosts.items()):
        for role, name in KEY_STORE_VARS.items():
            if roles and role not in roles:
                continue
            sourced = hostvars.get(name)
            if sourced is not None and (is_templated(sourced.value) or sourced.value == ""):
                continue
            path = Path(os.path.expanduser(str(sourced.value))) if sourced else default_store()
            if path in seen or not path.exists():
                continue
            seen.add(path)
            source = sourced.source if sourced else "the state dir's default"
            if (shared := _shared_with_others(path)):
                problems.append(Problem(host, name, f"key store {path} {shared}", source))
                continue
            try:
                load_key_store(path)
            except InvalidInput as exc:
                problems.append(Problem(host, name, str(exc), source))
    return problems


def _vaulted(value: Any) -> list[Any]:
    if is_vaulted(value):
        return [value]
    if isinstance(value, Mapping):
        return [v for item in value.values() for v in _vaulted(item)]
    if isinstance(value, list):
        return [v for item in value for v in _vaulted(item)]
    return []


def _decrypts(value: Any) -> bool:
    try:
        str(value)  # ansible decrypts an inline vault value when it is read
    except Exception:  # AnsibleVaultError and kin: wrong password, damaged value
        return False
    return True


def vault_problems(resolved: ResolvedInventory) -> list[Problem]:
    """Inline `!vault` values must decrypt with the vault password when one is given.
    Without one they are judged still encrypted (CI's check stage runs without secrets)
    and never compared: comparing decrypts."""
    password_file = os.environ.get("ANSIBLE_VAULT_PASSWORD_FILE")
    if not password_file:
        return []
    problems = []
    for host, hostvars in sorted(resolved.hosts.items()):
        for name, sourced in sorted(hostvars.items()):
            if not all(_decrypts(v) for v in _vaulted(sourced.value)):
                problems.append(Problem(
                    host, name, f"cannot be decrypted with the vault password in "
                    f"ANSIBLE_VAULT_PASSWORD_FILE ({password_file})", sourced.source))
    return problems


# --- Names that become paths, values that reach a command line, secrets in plain text ---

# Connection variables Ansible itself reads: never in plain text in an inventory.
CONNECTION_SECRETS = ("ansible_password", "ansible_ssh_pass", "ansible_become_password",
                      "ansible_become_pass", "ansible_sudo_pass")
# Environment dictionaries handed to services: a key named like a secret holds one.
ENV_DICTS = ("vllm_env", "ollama_env", "base_proxy_env")
SECRET_ENV_RE = re.compile(r"(TOKEN|KEY|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.IGNORECASE)
URL_CREDENTIALS_RE = re.compile(r"://[^/@\s]*:[^/@\s]*@")
DNS_NAME_RE = re.compile(r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?"
                         r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*")
PLAIN_SECRET_HINT = ("is a secret in plain text; encrypt it with ansible-vault or read it from "
                     "the environment ({{ lookup('ansible.builtin.env', 'NAME') }})")


def _literal(value: Any) -> bool:
    """A value given as written (neither a template resolved on the host nor vaulted)."""
    return not is_vaulted(value) and not is_templated(value)


def _names(value: Any, key: str | None, check: Callable[[Any], str | None]) -> list[str]:
    """Problems of each name in a list (of strings, or of dicts' `key`)."""
    if not isinstance(value, list):
        return []
    out = []
    for index, item in enumerate(value):
        name = item.get(key) if key and isinstance(item, Mapping) else item
        if key and name is None:
            continue
        if _literal(name) and (problem := check(name)):
            out.append(f"[{index}]{'.' + key if key else ''}: {problem}")
    return out


def _catalog_names(value: Any) -> list[str]:
    """model_store_catalog / model_store_overrides: model -> {revision, files: [{name}]}."""
    if not isinstance(value, Mapping):
        return []
    inner = value.get("models")
    models: Mapping[Any, Any] = inner if isinstance(inner, Mapping) else value
    out = []
    for model, entry in models.items():
        if (problem := name_problem(model)):
            out.append(f"model {problem}")
        if not isinstance(entry, Mapping):
            continue
        revision = entry.get("revision")
        if revision is not None and _literal(revision) and (problem := name_problem(revision)):
            out.append(f"{model}.revision: {problem}")
        out.extend(f"{model}.files{p}" for p in _names(entry.get("files"), "name",
                                                       relative_path_problem))
    return out


def _model_path_problem(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    if not value.startswith("/") or any(c.isspace() for c in value) \
            or ".." in value.split("/"):
        return (f"{value!r} must be an absolute path without spaces or '..' (it is passed "
                "to llama-server as one argument)")
    return None


def _address_problem(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        ipaddress.ip_address(value)
        return None
    except ValueError:
        pass
    if DNS_NAME_RE.fullmatch(value):
        return None
    return f"{value!r} is not an IP address or a DNS name (it is used in a shell command)"


def _plain_env_secrets(name: str, value: Any) -> list[str]:
    if not isinstance(value, Mapping):
        return []
    out = []
    for key, item in value.items():
        if not isinstance(item, str) or not _literal(item) or not item:
            continue
        if URL_CREDENTIALS_RE.search(item):
            out.append(f"{key}: holds credentials in a URL in plain text")
        elif name != "base_proxy_env" and SECRET_ENV_RE.search(str(key)):
            out.append(f"{key}: is a secret in plain text")
    return out


def input_problems(host: str, hostvars: Mapping[str, SourcedValue]) -> list[Problem]:
    """What the argument specs cannot say: names that become paths, values that reach a
    command line, ranges (toolkit.ranges) and secrets in plain text outside any role."""
    problems: list[Problem] = []

    def add(variable: str, messages: list[str]) -> None:
        source = hostvars[variable].source
        problems.extend(Problem(host, variable, m, source) for m in messages)

    for name, sourced in sorted(hostvars.items()):
        value = sourced.value
        if is_vaulted(value):
            continue
        for variable, message in range_problems(name, value):
            problems.append(Problem(host, variable, message, sourced.source))
        if name in CONNECTION_SECRETS and value not in (None, "") and _literal(value):
            add(name, [PLAIN_SECRET_HINT])
        if name in ENV_DICTS:
            add(name, [f"{m}; {PLAIN_SECRET_HINT.removeprefix('is a secret in plain text; ')}"
                       for m in _plain_env_secrets(name, value)])
    checks: dict[str, Callable[[Any], list[str]]] = {
        "model_store_models": lambda v: _names(v, None, name_problem),
        "model_store_catalog": _catalog_names,
        "model_store_overrides": _catalog_names,
        "llama_cpp_instances": lambda v: [
            *_names(v, "name", name_problem), *_names(v, "model", name_problem),
            *_names(v, "model_path", _model_path_problem)],
        "ollama_models": lambda v: _names(v, "name", ollama_problem),
        "validate_gateway_address": lambda v: [p] if _literal(v) and (
            p := _address_problem(v)) else [],
    }
    for name, check in checks.items():
        if name in hostvars and not is_vaulted(hostvars[name].value):
            add(name, check(hostvars[name].value))
    return problems


def _key_file(hostvars: dict[str, SourcedValue], name: str) -> tuple[Path, str] | None:
    sourced = hostvars.get(name)
    path = key_file_path(sourced.value) if sourced else None
    return (path, sourced.source) if path and sourced else None


def _shared_with_others(path: Path) -> str | None:
    """Why a controller file holding keys or their hashes is not private, or None."""
    mode = path.stat().st_mode & 0o777
    return f"is readable by other users (mode {mode:o}); chmod 600 it" if mode & 0o077 else None


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
        elif (shared := _shared_with_others(path)):
            problems.append(Problem(host, name, f"{path} {shared}", source))
        elif not read_key_file(path):
            problems.append(Problem(host, name, f"{path} holds no key", source))
    return problems


def key_file_secrets(resolved: ResolvedInventory) -> list[str]:
    """Every key held in the inventory's key files: values no output may show."""
    values: set[str] = set()
    for hostvars in resolved.hosts.values():
        for name in KEY_FILE_VARS:
            found = _key_file(hostvars, name)
            if found:
                values.update(read_key_file(found[0]))
    return sorted(values)
