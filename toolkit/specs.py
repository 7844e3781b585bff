"""Check resolved host variables against each role's `meta/argument_specs.yml`.

The argument spec is the one source of truth for a variable's type, choices and
whether it is required; the same spec Ansible validates at role start is applied
here before any host is touched, to every host at once.
"""

from __future__ import annotations

import difflib
import functools
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
# Cross-field rules an argument spec's entry point may declare (Ansible validates the same
# at role start): role name -> rule name -> rule.
RoleRules = dict[str, dict[str, Any]]
RULE_KEYS = ("mutually_exclusive", "required_together", "required_one_of", "required_if",
             "required_by")


# libyaml's parser where PyYAML has it: the specs are parsed before every run.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_entry_points(roles_dir: Path) -> dict[str, dict[str, Any]]:
    """role name -> its `main` entry point as written (short_description, description,
    options, cross-field rules), read now; the role README generator (toolkit.role_docs)
    reads it this way, so an edited spec is seen at once."""
    out: dict[str, dict[str, Any]] = {}
    for spec_file in sorted(roles_dir.glob("*/meta/argument_specs.yml")):
        data = yaml.load(spec_file.read_text(encoding="utf-8"), Loader=_LOADER) or {}
        out[spec_file.parent.parent.name] = dict(
            (data.get("argument_specs") or {}).get("main") or {})
    return out


@functools.cache
def _entry_points(roles_dir: Path) -> dict[str, dict[str, Any]]:
    """Each role's `main` entry point, parsed once per process (specs and rules share it)."""
    return load_entry_points(roles_dir)


def load_role_specs(roles_dir: Path) -> RoleSpecs:
    """role name -> option name -> option spec (entry point `main`)."""
    return {role: dict(main.get("options") or {})
            for role, main in _entry_points(roles_dir).items()}


def load_role_rules(roles_dir: Path) -> RoleRules:
    """role name -> the cross-field rules of its `main` entry point (only those it declares)."""
    return {role: {k: main[k] for k in RULE_KEYS if main.get(k)}
            for role, main in _entry_points(roles_dir).items()}


def _owner(name: str, specs: RoleSpecs) -> str | None:
    owners = [role for role in specs if name.startswith(f"{role}_")]
    return max(owners, key=len) if owners else None


def is_vaulted(value: Any) -> bool:
    from ansible.parsing.vault import EncryptedString

    return isinstance(value, EncryptedString)


def is_templated(value: Any) -> bool:
    return isinstance(value, str) and not is_vaulted(value) and bool(TEMPLATE_RE.search(value))


def _contains_template(value: Any) -> bool:
    if is_templated(value):
        return True
    if isinstance(value, Mapping):
        return any(_contains_template(v) for v in value.values())
    if isinstance(value, list):
        return any(_contains_template(v) for v in value)
    return False


def _plain(value: Any) -> Any:
    """Ansible 2.19 loads YAML into tagged subclasses (_AnsibleTaggedList...); error messages
    about those name internal classes. Plain copies give messages a user can read."""
    if is_vaulted(value):
        return value
    if isinstance(value, Mapping):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    for kind in (bool, int, float, str):
        if isinstance(value, kind):
            return kind(value)
    return value


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

    if is_vaulted(value):
        return [] if spec.get("type", "str") in ("str", "raw") else [
            f"is vault-encrypted but must be of type {spec.get('type')}"]
    if _contains_template(value):
        return []  # resolved on the host; checked again at role start
    try:
        result = ArgumentSpecValidator({name: _strip_required(spec)}).validate(
            {name: _plain(value)})
    except (OverflowError, ValueError):
        # Ansible's converters raise these for values like .inf or .nan (YAML floats) where
        # an int is expected, instead of reporting them: they are the user's input errors.
        return [f"is {value!r}, which is not a valid {spec.get('type', 'str')}"]
    except Exception as exc:  # a spec the validator cannot digest is our bug, not the user's
        return [f"could not be validated: {exc}"]
    return [_clean(str(e), name) for e in result.errors]


def _clean(message: str, name: str) -> str:
    message = message.replace(f"argument '{name}' ", "").replace(f"value of {name} ", "")
    return message


def is_plain_secret(name: str, spec: Mapping[str, Any] | None, value: Any) -> bool:
    secret = bool(spec and spec.get("no_log")) or bool(SECRET_NAME_RE.search(name))
    # Vaulted first: comparing a vaulted value decrypts it.
    if not secret or is_vaulted(value) or is_templated(value):
        return False
    if value in (None, "", [], {}):
        return False
    if isinstance(value, list):
        return any(not (is_vaulted(v) or is_templated(v)) for v in value)
    return True


def check_host(
    host: str,
    hostvars: Mapping[str, SourcedValue],
    specs: RoleSpecs,
    profile_roles: Iterable[str] = (),
    rules: RoleRules | None = None,
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
    for role, role_rules in sorted((rules or {}).items()):
        problems.extend(check_rules(host, hostvars, role, specs.get(role) or {}, role_rules))
    return problems


def check_rules(host: str, hostvars: Mapping[str, SourcedValue], role: str,
                options: Mapping[str, Any], rules: Mapping[str, Any]) -> list[Problem]:
    """Contradicting or incomplete combinations of one role's variables (its entry point's
    mutually_exclusive, required_if, ...), judged on the variables the inventory sets."""
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    if not rules:
        return []
    present = {n: hostvars[n] for n in options if n in hostvars}
    if not present:
        return []  # the role is not configured on this host
    # A vaulted value stands in as an opaque string: comparing it would decrypt it.
    values = {n: "<vault-encrypted>" if is_vaulted(sv.value) else _plain(sv.value)
              for n, sv in present.items()}
    # Only the presence and equality of values matter here; types were judged above.
    spec = {n: {"type": "raw"} for n in options}
    try:
        result = ArgumentSpecValidator(spec, **dict(rules)).validate(values)
    except Exception as exc:
        return [Problem(host, role, f"cross-field rules could not be applied: {exc}", "")]
    problems: list[Problem] = []
    for error in result.errors:
        text = str(error)
        named = sorted(n for n in present if re.search(rf"\b{re.escape(n)}\b", text))
        variable = named[0] if named else role
        sources = sorted({present[n].source for n in named})
        problems.append(Problem(host, ", ".join(named) or variable, text, "; ".join(sources)))
    return problems
