"""Check resolved host variables against each role's `meta/argument_specs.yml`.

The argument spec is the one source of truth for a variable's type, choices and
whether it is required; the same spec Ansible validates at role start is applied
here before any host is touched, to every host at once.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from toolkit.inventory import SourcedValue

TEMPLATE_RE = re.compile(r"{{|{%")
SECRET_NAME_RE = re.compile(r"(_token|_api_keys?|_password|_secret)$")


@dataclass(frozen=True)
class Problem:
    host: str
    variable: str
    message: str
    source: str

    def __str__(self) -> str:
        where = f" (defined in {self.source})" if self.source else ""
        return f"{self.host}: {self.variable}: {self.message}{where}"


RoleSpecs = dict[str, dict[str, dict[str, Any]]]


def load_role_specs(roles_dir: Path) -> RoleSpecs:
    """role name -> option name -> option spec (entry point `main`)."""
    specs: RoleSpecs = {}
    for spec_file in sorted(roles_dir.glob("*/meta/argument_specs.yml")):
        data = yaml.safe_load(spec_file.read_text(encoding="utf-8")) or {}
        main = (data.get("argument_specs") or {}).get("main") or {}
        specs[spec_file.parent.parent.name] = dict(main.get("options") or {})
    return specs


def _owner(name: str, specs: RoleSpecs) -> str | None:
    owners = [role for role in specs if name.startswith(f"{role}_")]
    return max(owners, key=len) if owners else None


def _is_vaulted(value: Any) -> bool:
    from ansible.parsing.vault import EncryptedString

    return isinstance(value, EncryptedString)


def _is_templated(value: Any) -> bool:
    return isinstance(value, str) and not _is_vaulted(value) and bool(TEMPLATE_RE.search(value))


def _contains_template(value: Any) -> bool:
    if _is_templated(value):
        return True
    if isinstance(value, Mapping):
        return any(_contains_template(v) for v in value.values())
    if isinstance(value, list):
        return any(_contains_template(v) for v in value)
    return False


def _strip_required(spec: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in spec.items()
           if k not in ("required", "description", "version_added", "default")}
    if isinstance(out.get("options"), Mapping):
        out["options"] = {k: {kk: vv for kk, vv in v.items() if kk != "description"}
                          for k, v in out["options"].items()}
    return out


def validate_value(name: str, spec: Mapping[str, Any], value: Any) -> list[str]:
    """Ansible's own argument-spec validation for one variable; messages, empty if fine."""
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    if _is_vaulted(value):
        return [] if spec.get("type", "str") in ("str", "raw") else [
            f"is vault-encrypted but must be of type {spec.get('type')}"]
    if _contains_template(value):
        return []  # resolved on the host; checked again at role start
    try:
        result = ArgumentSpecValidator({name: _strip_required(spec)}).validate({name: value})
    except Exception as exc:  # a spec the validator cannot digest is our bug, not the user's
        return [f"could not be validated: {exc}"]
    return [_clean(str(e), name) for e in result.errors]


def _clean(message: str, name: str) -> str:
    message = message.replace(f"argument '{name}' ", "").replace(f"value of {name} ", "")
    return message


def is_plain_secret(name: str, spec: Mapping[str, Any] | None, value: Any) -> bool:
    secret = bool(spec and spec.get("no_log")) or bool(SECRET_NAME_RE.search(name))
    if not secret or value in (None, "", [], {}):
        return False
    if _is_vaulted(value) or _is_templated(value):
        return False
    if isinstance(value, list):
        return any(not (_is_vaulted(v) or _is_templated(v)) for v in value)
    return True


def check_host(
    host: str,
    hostvars: Mapping[str, SourcedValue],
    specs: RoleSpecs,
    profile_roles: Iterable[str] = (),
) -> list[Problem]:
    problems: list[Problem] = []
    for name, sourced in sorted(hostvars.items()):
        role = _owner(name, specs)
        if role is None:
            continue
        options = specs[role]
        if name not in options:
            close = difflib.get_close_matches(name, list(options), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            problems.append(Problem(host, name, f"unknown variable of role {role}{hint}",
                                    sourced.source))
            continue
        for message in validate_value(name, options[name], sourced.value):
            problems.append(Problem(host, name, message, sourced.source))
        if is_plain_secret(name, options[name], sourced.value):
            problems.append(Problem(
                host, name,
                "is a secret in plain text; encrypt it with ansible-vault or read it from "
                "the environment ({{ lookup('ansible.builtin.env', 'NAME') }})",
                sourced.source))
    for role in profile_roles:
        for name, spec in (specs.get(role) or {}).items():
            if spec.get("required") and name not in hostvars:
                problems.append(Problem(host, name, f"is required by role {role} but not set",
                                        ""))
    return problems
