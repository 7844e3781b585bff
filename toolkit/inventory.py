"""Load an inventory and resolve each host's variables the way Ansible layers them,
remembering which file gave each variable its final value.

Layers, lowest precedence first (Ansible's order for inventory variables):
group vars from the inventory source (all, then child groups by depth/priority/name),
group_vars/ files beside the inventory, host vars from the inventory source,
host_vars/ files beside the inventory.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.errors import InvalidInput, PrerequisiteMissing
from toolkit.names import HOST_RE, name_problem

VARS_EXTENSIONS = ("", ".yml", ".yaml", ".json")

# Connection plugins that reach a host over SSH (its address and port identify it).
SSH_CONNECTIONS = ("ssh", "ansible.builtin.ssh", "smart", "paramiko", "paramiko_ssh",
                   "ansible.builtin.paramiko_ssh")


@dataclass(frozen=True)
class Reach:
    """How and where an inventory host is reached: the one reading of ansible_connection,
    ansible_host and ansible_port (and their ansible_ssh_* aliases)."""

    connection: str
    address: str
    port: int

    @property
    def ssh(self) -> bool:
        return self.connection in SSH_CONNECTIONS


def reach(name: str, hostvars: Mapping[str, object]) -> Reach:
    """A host's connection, address (ansible_host, else its name) and port (22 by default,
    also when the value is not a number: `check` reports that one)."""
    connection = str(hostvars.get("ansible_connection") or "ssh")
    address = str(hostvars.get("ansible_host") or hostvars.get("ansible_ssh_host") or name)
    port_value = hostvars.get("ansible_port") or hostvars.get("ansible_ssh_port")
    try:
        port = int(str(port_value)) if port_value is not None else 22
    except ValueError:
        port = 22
    return Reach(connection, address, port)
YAML_EXTENSIONS = (".yml", ".yaml", ".json")
# Inventory files are small; a bigger one is a mistake (or an attack) read before anything runs.
MAX_FILE_BYTES = 10 * 1024 * 1024
# Values a YAML file may expand to once its aliases are followed ("billion laughs" bound).
MAX_YAML_NODES = 200_000
# Files that hold keys, not hosts: Ansible would read each as an INI inventory and turn its
# content into a host name.
KEY_NAME_RE = re.compile(
    r"(^id_(rsa|dsa|ecdsa|ed25519)|\.(pem|key|pub|p12|pfx|crt|der|csr|gpg|asc)$|^known_hosts|"
    r"api[-_]?keys?|token|secret|passw|vault[-_]?pass)", re.IGNORECASE)
KEY_CONTENT_PREFIXES = ("-----BEGIN", "ssh-", "ecdsa-sha2-", "sk-ssh-", "$ANSIBLE_VAULT")
SECRET_LIKE_RE = re.compile(r"[A-Za-z0-9+/=_-]{20,}")
# Ansible's IGNORED_ALWAYS and the defaults of inventory_ignore_patterns/_extensions.
IGNORED_RE = re.compile(r"^\.|^host_vars$|^group_vars$|^vars_plugins$|artifacts|credentials|"
                        r"\.ssh|(\.pyc|\.pyo|\.swp|\.bak|~|\.rpm|\.md|\.txt|\.rst|\.orig|"
                        r"\.cfg|\.retry)$")


@dataclass(frozen=True)
class SourcedValue:
    value: Any
    source: str


@dataclass
class ResolvedInventory:
    paths: list[Path]
    hosts: dict[str, dict[str, SourcedValue]]
    groups: dict[str, list[str]]  # host -> its groups (without "all")


def looks_like_secret(text: str) -> bool:
    """A word that is more likely a key or token than a host name: long, no dot, letters
    and digits mixed (host names are short labels or dotted)."""
    text = text.strip()
    return (text.startswith(KEY_CONTENT_PREFIXES)
            or (bool(SECRET_LIKE_RE.fullmatch(text)) and "." not in text
                and any(c.isdigit() for c in text) and any(c.isalpha() for c in text)))


def looks_like_key_file(path: Path) -> bool:
    """A file in an inventory directory that holds a key or token rather than hosts."""
    if KEY_NAME_RE.search(path.name):
        return True
    try:
        with path.open("rb") as fh:
            head = fh.read(4096).decode("utf-8", errors="replace")
    except OSError:
        return False
    lines = [line for line in head.splitlines() if line.strip()]
    return bool(lines) and (lines[0].lstrip().startswith(KEY_CONTENT_PREFIXES)
                            or (len(lines) == 1 and looks_like_secret(lines[0])))


def _ignored(path: Path) -> bool:
    """What Ansible's directory source skips whatever the configuration: hidden files,
    group_vars/host_vars and its default ignored extensions and patterns. A key file is
    not among them: gpuforge refuses it (ansible.cfg also ignores such names, but an
    inventory read from another working directory would not)."""
    return bool(IGNORED_RE.search(path.name))


def _source_files(path: Path) -> Iterator[Path]:
    """The files Ansible reads as inventory sources for `path` (a file, or a directory)."""
    if path.is_file():
        yield path
        return
    for child in sorted(path.iterdir()):
        if _ignored(child):
            continue
        if child.is_dir():
            yield from _source_files(child)
        elif child.is_file():
            yield child


def _vars_tree(base: Path) -> Iterator[Path]:
    """Every file Ansible may read as group or host variables beside an inventory."""
    for kind in ("group_vars", "host_vars"):
        if (base / kind).is_dir():
            yield from sorted(p for p in (base / kind).rglob("*")
                              if p.is_file() and p.suffix in VARS_EXTENSIONS
                              and not p.name.startswith("."))


def _too_big(path: Path) -> None:
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise InvalidInput(
            f"inventory file {path} is {size / 1e6:.1f} MB; gpuforge reads inventory and "
            f"variables files up to {MAX_FILE_BYTES // (1024 * 1024)} MiB",
            hint="an inventory this large is a mistake: check the path given to -i")


def _yaml_problem(path: Path) -> str | None:
    """Syntax errors, duplicate keys and alias bombs in one YAML file, found by composing
    it (linear in its size, tags such as !vault left alone); None if it is sound."""
    import yaml

    loader_class = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        with path.open("rb") as fh:
            documents = list(yaml.compose_all(fh, Loader=loader_class))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        return f"is not valid YAML{where}: {exc.problem or exc}"
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError) as exc:
        return f"is not valid YAML: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    sizes: dict[int, int] = {}

    def expanded(node: yaml.Node, depth: int) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        if depth > 500:
            raise InvalidInput(f"{path} nests values more than 500 levels deep",
                               hint="flatten the data")
        total = 1
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                    if key.value in seen:
                        raise InvalidInput(
                            f"{path}: key {key.value!r} is defined twice (lines "
                            f"{seen[key.value]} and {key.start_mark.line + 1})",
                            hint="keep one definition; YAML silently keeps the last")
                    seen[key.value] = key.start_mark.line + 1
                total += expanded(key, depth + 1) + expanded(value, depth + 1)
        elif isinstance(node, yaml.SequenceNode):
            total += sum(expanded(item, depth + 1) for item in node.value)
        sizes[id(node)] = total
        if total > MAX_YAML_NODES:
            raise InvalidInput(
                f"{path} expands to more than {MAX_YAML_NODES} values through its aliases "
                "(a YAML alias bomb?)", hint="write the values out instead of nesting aliases")
        return total

    for document in documents:
        if document is not None:
            expanded(document, 0)
    return None


def preflight(paths: list[Path]) -> None:
    """Refuse, before Ansible reads anything, what it would misread or choke on: a key file
    among the inventory's sources (it would become a host name), huge files, YAML that is
    broken, has duplicate keys or expands without bound."""
    for path in paths:
        sources = list(_source_files(path))
        vars_files = list(_vars_tree(path if path.is_dir() else path.parent))
        for source in sources:
            if path.is_dir() and looks_like_key_file(source):
                raise InvalidInput(
                    f"inventory directory {path} holds {source.name}, which looks like a key "
                    "or token, not an inventory: Ansible would read its content as a host name",
                    hint=f"move {source} out of the inventory directory (keys belong beside "
                         "it, named by a variable such as gateway_api_key_file)")
        for file in [*sources, *vars_files]:
            _too_big(file)
            is_vars = file in vars_files
            if is_vars or file.suffix in YAML_EXTENSIONS:
                problem = _yaml_problem(file)
                if problem:
                    raise InvalidInput(f"{'variables' if is_vars else 'inventory'} file "
                                       f"{file} {problem}", hint="fix the YAML")


def make_loader() -> Any:
    from ansible.cli import CLI
    from ansible.parsing.dataloader import DataLoader
    from ansible.parsing.vault import VaultSecretsContext

    loader = DataLoader()
    password_file = os.environ.get("ANSIBLE_VAULT_PASSWORD_FILE")
    if password_file:
        if not Path(password_file).expanduser().is_file():
            raise PrerequisiteMissing(
                f"ANSIBLE_VAULT_PASSWORD_FILE names {password_file}, which is not a file",
                hint="point ANSIBLE_VAULT_PASSWORD_FILE at the file holding the vault "
                     "password, or unset it")
        # ansible-core keeps the secrets in a process-wide context that may be set only
        # once: a second inventory read in the same process (validate reads it after its
        # run) reuses it instead of failing with "context is already initialized".
        ambient = VaultSecretsContext.current(optional=True)
        try:
            secrets = ambient.secrets if ambient else CLI.setup_vault_secrets(
                loader, vault_ids=[], vault_password_files=[password_file])
        except Exception as exc:  # ansible's AnsibleError: empty or unreadable file
            raise InvalidInput(
                f"cannot read the vault password from ANSIBLE_VAULT_PASSWORD_FILE "
                f"{password_file}: {str(exc).splitlines()[0]}",
                hint="the file holds the vault password on its first line") from exc
        loader.set_vault_secrets(secrets)
    return loader


def _vars_files(base: Path, kind: str, name: str) -> list[Path]:
    """group_vars/NAME(.yml|.yaml|.json) or every file in group_vars/NAME/, sorted."""
    found: list[Path] = []
    if name_problem(name, HOST_RE):
        return found  # a host or group name that would lead elsewhere: `check` names it
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
    if not os.environ.get("ANSIBLE_VAULT_PASSWORD_FILE"):
        with path.open("rb") as fh:
            if fh.read(14) == b"$ANSIBLE_VAULT":
                raise PrerequisiteMissing(
                    f"variables file {path} is vault-encrypted and no vault password is given",
                    hint="set ANSIBLE_VAULT_PASSWORD_FILE to the file holding the vault "
                         "password")
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
    preflight(paths)
    loader = make_loader()
    try:
        inventory = InventoryManager(loader=loader, sources=[str(p) for p in paths])
    except Exception as exc:
        raise InvalidInput(f"cannot parse inventory: {exc}", hint="check the inventory YAML") \
            from exc
    hosts = inventory.get_hosts()
    for host in hosts:
        if looks_like_secret(host.name):
            raise InvalidInput(
                f"inventory {', '.join(map(str, paths))} defines a host whose name looks like "
                "a key or token (not shown here)",
                hint="a file holding a key was read as an inventory: keep keys out of "
                     "inventory directories")
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
