"""Role READMEs are generated (toolkit.role_docs) and stay in step with the roles: a changed
argument spec or a newly published fact makes the committed README stale."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from toolkit import role_docs

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(p.parent.parent.name for p in (ROOT / "roles").glob("*/meta/argument_specs.yml"))


def _copy_collection(tmp_path: Path, role: str) -> Path:
    """A private copy of one role (and the plugins its facts are documented in)."""
    root = tmp_path / "collection"
    shutil.copytree(ROOT / "roles" / role, root / "roles" / role,
                    ignore=shutil.ignore_patterns("molecule"))
    shutil.copytree(ROOT / "plugins", root / "plugins",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return root / "roles" / role


def _edit_spec(role_dir: Path, role: str, name: str, spec: dict[str, object]) -> None:
    spec_file = role_dir / "meta" / "argument_specs.yml"
    data = yaml.safe_load(spec_file.read_text(encoding="utf-8"))
    data["argument_specs"]["main"]["options"][name] = spec
    spec_file.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def test_every_role_is_documented() -> None:
    assert len(ROLES) == 14
    for role in ROLES:
        assert (ROOT / "roles" / role / "README.md").is_file(), role


@pytest.mark.parametrize("role", ROLES)
def test_readme_is_what_the_generator_writes(role: str) -> None:
    readme = (ROOT / "roles" / role / "README.md").read_text(encoding="utf-8")
    assert readme == role_docs.render_readme(ROOT / "roles" / role), (
        f"roles/{role}/README.md is stale: run python -m toolkit.role_docs")


@pytest.mark.parametrize("role", ROLES)
def test_readme_covers_every_variable_and_the_fqcn(role: str) -> None:
    readme = (ROOT / "roles" / role / "README.md").read_text(encoding="utf-8")
    spec = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text(
        encoding="utf-8"))["argument_specs"]["main"]
    assert readme.startswith(f"# gpuforge.infra.{role}\n")
    for name in spec["options"]:
        assert f"| `{name}` |" in readme, name
    example = readme.split("```yaml\n", 1)[1].split("```", 1)[0]
    play = yaml.safe_load(example)
    assert play[0]["roles"][0]["role"] == f"gpuforge.infra.{role}"


def test_check_passes_on_the_checkout() -> None:
    proc = subprocess.run([sys.executable, "-m", "toolkit.role_docs", "--check"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr


def test_a_changed_spec_makes_the_readme_stale(tmp_path: Path) -> None:
    role_dir = _copy_collection(tmp_path, "base")
    roles_dir = role_dir.parent
    assert role_docs.stale_readmes(roles_dir) == []
    _edit_spec(role_dir, "base", "base_motd", {
        "type": "str", "required": True, "choices": ["short", "long"], "example": "short",
        "description": "Message of the day: C(short) or C(long) <text>."})
    assert role_docs.stale_readmes(roles_dir) == [role_dir / "README.md"]
    assert role_docs.main(["--check", "--roles-dir", str(roles_dir)]) == 1

    assert role_docs.main(["--roles-dir", str(roles_dir)]) == 0
    assert role_docs.stale_readmes(roles_dir) == []
    readme = (role_dir / "README.md").read_text(encoding="utf-8")
    row = next(line for line in readme.splitlines() if line.startswith("| `base_motd` |"))
    assert row == ("| `base_motd` | `str` |  | yes | `short`, `long` | "
                   "Message of the day: `short` or `long` \\<text\\>. |")
    play = yaml.safe_load(readme.split("```yaml\n", 1)[1].split("```", 1)[0])
    assert play[0]["roles"][0] == {"role": "gpuforge.infra.base",
                                   "vars": {"base_motd": "short"}}


def test_published_facts_come_from_the_tasks(tmp_path: Path) -> None:
    facts = {f.name: f for f in role_docs.published_facts(ROOT / "roles" / "base")}
    assert list(facts) == ["base_apt_ready"]
    assert "python3-apt" in facts["base_apt_ready"].description
    assert facts["base_apt_ready"].set_in == ["tasks/preflight.yml"]
    driver = [f.name for f in role_docs.published_facts(ROOT / "roles" / "nvidia_driver")]
    assert driver == ["gpuforge_run_warning", "nvidia_driver_reboot_required",
                      "ansible_facts['gpuforge_gpu']"]
    assert [f.name for f in role_docs.published_facts(ROOT / "roles" / "model_store")] == [
        "model_store_paths"]

    role_dir = _copy_collection(tmp_path, "container_gpu")
    assert role_docs.published_facts(role_dir) == []
    extra = role_dir / "tasks" / "publish_extra.yml"
    extra.write_text(
        "---\n- name: Publish | Say which runtime is the default\n  block:\n"
        "    - name: Publish | Record it\n      ansible.builtin.set_fact:\n"
        "        __container_gpu_private: 1\n        container_gpu_default_runtime: nvidia\n",
        encoding="utf-8")
    (fact,) = role_docs.published_facts(role_dir)
    assert (fact.name, fact.description, fact.set_in) == (
        "container_gpu_default_runtime", "Record it.", ["tasks/publish_extra.yml"])
    assert role_docs.stale_readmes(role_dir.parent) == [role_dir / "README.md"]


def test_markup_becomes_markdown() -> None:
    text = "Use C(a|b), I(this), B(that), U(https://x.example) and L(docs, https://d.example)."
    assert role_docs.inline(text, table=True) == (
        "Use `a\\|b`, *this*, **that**, <https://x.example> and [docs](https://d.example).")
    assert role_docs.inline("O(name) is V(x) <y>") == "`name` is `x` \\<y\\>"
