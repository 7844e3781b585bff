"""The CI examples in docs/ci/ are valid pipelines that run check -> plan -> apply -> validate,
upload JUnit, and take secrets only from the CI system's secret store."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
GITHUB = ROOT / "docs" / "ci" / "github-actions.yml"
GITLAB = ROOT / "docs" / "ci" / "gitlab-ci.yml"
ORDER = ["check", "plan", "apply", "validate"]


def _load(path: Path) -> dict[str, Any]:
    # yaml.safe_load reads GitHub's `on:` as True; BaseLoader keeps every key a string.
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.BaseLoader)
    assert isinstance(data, dict)
    return data


def _schema_check(schema: str, path: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("check-jsonschema") or str(Path(__import__("sys").executable).parent
                                                  / "check-jsonschema")
    return subprocess.run([exe, "--builtin-schema", schema, str(path)], capture_output=True,
                          text=True, check=False, timeout=120)


@pytest.mark.parametrize(("schema", "path"), [("vendor.github-workflows", GITHUB),
                                              ("vendor.gitlab-ci", GITLAB)])
def test_matches_the_vendor_schema(schema: str, path: Path, tmp_path: Path) -> None:
    proc = _schema_check(schema, path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The check can fail: a misspelt key is refused.
    broken = tmp_path / path.name
    text = path.read_text(encoding="utf-8")
    broken.write_text(text.replace("runs-on:", "run-on:") if path == GITHUB
                      else text.replace("  stage: plan", "  stagee: plan"), encoding="utf-8")
    assert _schema_check(schema, broken).returncode != 0


def _gpuforge_commands(lines: list[str]) -> list[str]:
    found = []
    for line in lines:
        match = re.search(r"\bgpuforge (check|plan|apply|validate)\b", line)
        if match:
            found.append(match.group(1))
    return found


def test_github_runs_the_four_steps_in_order_with_secrets() -> None:
    wf = _load(GITHUB)
    assert "on" in wf and "jobs" in wf
    steps = wf["jobs"]["deploy"]["steps"]
    runs = [s.get("run", "") for s in steps]
    assert _gpuforge_commands(runs) == ORDER
    validate = next(s for s in steps if "gpuforge validate" in s.get("run", ""))
    assert "--junit reports/validate.xml" in validate["run"]
    assert validate["env"]["GPUFORGE_API_KEY"] == "${{ secrets.GPUFORGE_API_KEY }}"
    junit = [s for s in steps if s.get("uses", "").startswith("mikepenz/action-junit-report")]
    assert junit and junit[0]["with"]["report_paths"] == "reports/validate.xml"
    assert junit[0]["if"] == "always()"
    vault = next(s for s in steps if "ANSIBLE_VAULT_PASSWORD_FILE" in s.get("run", ""))
    assert vault["env"]["VAULT_PASSWORD"] == "${{ secrets.ANSIBLE_VAULT_PASSWORD }}"
    assert "umask 077" in vault["run"]
    assert any("rm -f" in s.get("run", "") and s.get("if") == "always()" for s in steps)


def test_gitlab_stages_jobs_and_junit_report() -> None:
    ci = _load(GITLAB)
    assert ci["stages"] == ORDER
    for stage in ORDER:
        job = ci[stage]
        assert job["stage"] == stage
        assert _gpuforge_commands(job["script"]) == [stage]
    assert ci["validate"]["artifacts"]["reports"]["junit"] == "reports/validate.xml"
    assert ci["validate"]["artifacts"]["when"] == "always"
    assert ci["apply"]["resource_group"] == ci["validate"]["resource_group"]
    text = GITLAB.read_text(encoding="utf-8")
    # Secrets come from CI/CD variables (a File variable for the vault password), never inline.
    assert "ANSIBLE_VAULT_PASSWORD_FILE" in text and "type **File**" in text
    assert "ANSIBLE_VAULT_PASSWORD_FILE:" not in text.split("variables:", 1)[1].split("default:")[0]
    assert "GPUFORGE_API_KEY:" not in text
