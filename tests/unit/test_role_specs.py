"""Each role's argument specs and defaults name the same variables, and every fact a role
publishes (set_fact, or a module of this collection that returns ansible_facts) is documented
in its specs: the specs are the role's interface, and a variable or fact outside them is
undocumented and unchecked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from toolkit import role_docs
from toolkit.conventions import VARIABLES

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(p.parent.parent.name for p in (ROOT / "roles").glob("*/meta/argument_specs.yml"))


def _specs(role: str) -> dict[str, Any]:
    text = (ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text(encoding="utf-8")
    return dict(yaml.safe_load(text)["argument_specs"])


def _defaults(role: str) -> set[str]:
    path = ROOT / "roles" / role / "defaults" / "main.yml"
    data = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
    return {name for name in (data or {}) if not name.startswith("__")}


def test_every_role_has_specs() -> None:
    roles = {p.name for p in (ROOT / "roles").iterdir() if (p / "tasks").is_dir()}
    assert roles == set(ROLES)


@pytest.mark.parametrize("role", ROLES)
def test_defaults_and_specs_name_the_same_variables(role: str) -> None:
    specs = _specs(role)
    documented = {name for entry in specs.values() for name in (entry.get("options") or {})}
    main = set(specs["main"].get("options") or {})
    defaults = _defaults(role)
    assert sorted(defaults - documented) == [], f"{role}: defaults missing from the specs"
    # the convention variables are passed by the toolkit (docs/conventions.md), not defaulted
    required = {name for name, spec in (specs["main"].get("options") or {}).items()
                if spec.get("required")}
    assert sorted(main - defaults - required - set(VARIABLES)) == [], (
        f"{role}: spec options without a default in defaults/main.yml")


@pytest.mark.parametrize("role", ROLES)
def test_published_facts_are_documented_in_the_specs(role: str) -> None:
    text = (ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text(encoding="utf-8")
    facts = [fact.name for fact in role_docs.published_facts(ROOT / "roles" / role)]
    assert [name for name in facts if name not in text] == [], (
        f"{role}: published facts not named in meta/argument_specs.yml")


def test_a_fact_missing_from_the_specs_is_found() -> None:
    facts = [fact.name for fact in role_docs.published_facts(ROOT / "roles" / "base")]
    assert facts == ["base_apt_ready"]
    assert "base_apt_ready" in (ROOT / "roles/base/meta/argument_specs.yml").read_text()
    assert "base_apt_ready" not in (ROOT / "roles/base/defaults/main.yml").read_text()
