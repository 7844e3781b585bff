"""The wheel is a complete controller: built from this checkout, installed into a fresh
virtual environment outside it, and run from a directory that is not the checkout, it finds
its own roles, playbooks, plugins and seeds and provisions a real sandbox host.

And the CI examples in docs/ci/ run as written, with that wheel: every `run:` (GitHub
Actions) and `script:` (GitLab CI) line, in order, in a workspace that holds an inventory of
a real sandbox host, installing gpuforge the way the examples do (pip) and with the secrets
provided the way each CI system provides them — GitHub puts secrets in step environments,
GitLab puts masked variables in the environment and File variables in files whose path is
the variable. Only what a CI system does around the lines is emulated here (checkout,
setup-python, GITHUB_ENV, artifact upload); the lines themselves are run untouched."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.sandbox import Sandbox

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "ci"


@dataclass
class Installed:
    venv: Path
    wheel: Path
    workdir: Path

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    def env(self, base: dict[str, str]) -> dict[str, str]:
        env = {k: v for k, v in base.items()
               if k not in {"PYTHONPATH", "VIRTUAL_ENV", "GPUFORGE_CONTENT"}}
        env["PATH"] = f"{self.bin}:{env.get('PATH', '/usr/bin:/bin')}"
        return env

    def gpuforge(self, *args: str, env: dict[str, str],
                 timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.bin / "gpuforge"), *args], env=self.env(env),
                              cwd=self.workdir, capture_output=True, text=True,
                              timeout=timeout, check=False)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    out = tmp_path_factory.mktemp("wheel")
    # Build from a clean copy of the tracked files, as a release would (no .venv, no caches).
    src = out / "src"
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                            "--exclude-standard"], cwd=ROOT, capture_output=True,
                           check=True).stdout.split(b"\0")
    for name in filter(None, files):
        path = ROOT / os.fsdecode(name)
        if path.is_file():
            dest = src / os.fsdecode(name)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(path.read_bytes())
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(src),
                           "-w", str(out / "dist")], capture_output=True, text=True,
                          timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (wheel,) = (out / "dist").glob("gpuforge-*.whl")
    venv = out / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    proc = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)],
                          capture_output=True, text=True, timeout=1200, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    workdir = out / "elsewhere"
    workdir.mkdir()
    return Installed(venv, wheel, workdir)


def test_wheel_runs_from_outside_the_checkout(installed: Installed, tmp_path: Path) -> None:
    env = {**os.environ, "GPUFORGE_STATE_DIR": str(tmp_path / "state"), "NO_COLOR": "1"}
    version = installed.gpuforge("--version", env=env)
    assert version.returncode == 0 and version.stdout.startswith("gpuforge "), version.stderr
    # Its content is its own copy in site-packages, not this checkout.
    where = subprocess.run(
        [str(installed.bin / "python"), "-c",
         "from toolkit.paths import content_root; print(content_root())"],
        cwd=installed.workdir, env=installed.env(env), capture_output=True, text=True,
        check=True)
    content = Path(where.stdout.strip())
    assert content.is_relative_to(installed.venv) and "site-packages" in content.parts
    for part in ("roles/llama_cpp/tasks/main.yml", "playbooks/profiles.yml",
                 "plugins/modules/gpu_facts.py", "seeds/models.yml", "ansible.cfg",
                 "galaxy.yml", "LICENSE"):
        assert (content / part).is_file(), part

    profiles = installed.gpuforge("profiles", env=env)
    assert profiles.returncode == 0, profiles.stderr
    print(profiles.stdout + profiles.stderr)
    listed = json.loads(installed.gpuforge("profiles", "--json", env=env).stdout)
    assert {"base", "cpu-llm", "llm-server", "gpu-node"} <= {p["name"] for p in listed}

    check = installed.gpuforge("check", "-i", str(ROOT / "inventory" / "example"),
                               "--profile", "cpu-llm", env=env)
    assert check.returncode == 0, check.stdout + check.stderr
    broken = installed.gpuforge("check", "-i", str(ROOT / "inventory" / "example"),
                                "--profile", "nope", env=env)
    assert broken.returncode == 3 and "unknown profile 'nope'" in broken.stderr


def test_wheel_applies_base_on_a_sandbox_host(installed: Installed, box: Sandbox) -> None:
    # The host the CI examples run on next (they then find it provisioned): one sandbox
    # for the file, to keep the test command inside its time budget.
    proc = installed.gpuforge("apply", "-i", box.inventory, "--profile", "base", "--yes",
                              "--json", env=box.env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result["status"] == "successful"
    (host,) = result["hosts"]
    assert result["hosts"][host]["failed"] == 0 and result["hosts"][host]["changed"] > 0
    # The host really was provisioned by the wheel's roles: base's packages are there.
    assert box.exec(host, "dpkg-query", "-W", "-f=${Status}", "python3-apt").stdout \
        == "install ok installed"


# --- the CI examples --------------------------------------------------------------------

# The examples run with the base profile: every line runs for real (vault password, SSH key
# through ssh-agent, check, plan, apply, validate with JUnit, the HTML report) without
# putting a model-serving speed floor, measured on a loaded test machine, in their verdict.
# Serving through validate is the business of test_validate and test_demo.
PROFILE = "base"
VAULT_PASSWORD = "ci-example-vault-password"
EXPR = re.compile(r"\$\{\{\s*(.+?)\s*\}\}")


def _load(path: Path) -> dict[str, Any]:  # GitHub's `on:` stays a string key
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.BaseLoader)
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def box(make_sandbox: Callable[..., Sandbox]) -> Sandbox:
    return make_sandbox("ciex")


def _workspace(box: Sandbox, root: Path) -> Path:
    """What `actions/checkout` or GitLab's clone gives: the repository holding the inventory.

    It is the sandbox's inventory as a site would keep it: no private-key path (the key
    comes from ssh-agent), no key file (the API key comes from the CI system), and one
    vault-encrypted group_vars file that needs the CI system's vault password."""
    ws = root / "workspace"
    inv = ws / "inventory" / "production"
    (inv / "group_vars" / "all").mkdir(parents=True)
    data = yaml.safe_load(Path(box.inventory).read_text(encoding="utf-8"))
    group = data["all"]["children"]["sandbox"]["vars"]
    group.pop("ansible_ssh_private_key_file")
    group.pop("gateway_api_key_file")
    # Nor the sandbox's own known_hosts: the hosts' keys come from the CI system
    # (SSH_KNOWN_HOSTS), into the state dir's known_hosts that gpuforge checks them against.
    group["ansible_ssh_common_args"] = "-o LogLevel=ERROR"
    (inv / "hosts.yml").write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    vaulted = inv / "group_vars" / "all" / "vault.yml"
    vaulted.write_text("base_timesync_enabled: true\n", encoding="utf-8")
    secret = root / "vault-pass-for-encrypting"
    secret.write_text(VAULT_PASSWORD + "\n", encoding="utf-8")
    secret.chmod(0o600)
    subprocess.run([str(Path(sys.executable).parent / "ansible-vault"), "encrypt",
                    "--vault-password-file", str(secret), str(vaulted)],
                   check=True, capture_output=True, timeout=60)
    secret.unlink()
    assert vaulted.read_text(encoding="utf-8").startswith("$ANSIBLE_VAULT;")
    return ws


def _sandbox_vars(box: Sandbox) -> dict[str, Any]:
    data = yaml.safe_load(Path(box.inventory).read_text(encoding="utf-8"))
    group: dict[str, Any] = data["all"]["children"]["sandbox"]["vars"]
    return group


def _secrets(box: Sandbox) -> dict[str, str]:
    group = _sandbox_vars(box)
    api_key = Path(group["gateway_api_key_file"]).read_text(encoding="utf-8").strip()
    ssh_key = Path(group["ansible_ssh_private_key_file"]).read_text(encoding="utf-8")
    known = re.search(r"UserKnownHostsFile=(\S+)", group["ansible_ssh_common_args"])
    assert known, group["ansible_ssh_common_args"]
    known_hosts = Path(known.group(1)).read_text(encoding="utf-8")
    assert known_hosts.strip(), "the sandbox recorded no host key"
    return {"ANSIBLE_VAULT_PASSWORD": VAULT_PASSWORD, "GPUFORGE_API_KEY": api_key,
            "SSH_PRIVATE_KEY": ssh_key, "SSH_KNOWN_HOSTS": known_hosts}


def _base_env(box: Sandbox, installed: Installed) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GPUFORGE_", "ANSIBLE_", "SSH_A")) and k != "PYTHONPATH"}
    env["PATH"] = f"{installed.bin}:{env.get('PATH', '/usr/bin:/bin')}"
    return env


def _reports_ok(ws: Path) -> None:
    reports = ws / "reports"
    for stage in ("check", "plan", "apply", "validate"):
        json.loads((reports / f"{stage}.json").read_text(encoding="utf-8"))
    apply = json.loads((reports / "apply.json").read_text(encoding="utf-8"))
    assert apply["status"] == "successful", apply
    cases = list(ET.parse(reports / "validate.xml").iter("testcase"))
    assert cases and not any(c.find("failure") is not None for c in cases)
    assert (reports / "apply.html").read_text(encoding="utf-8").lstrip().startswith("<!")


def _kill_agent(pid: str) -> None:
    if pid.strip().isdigit():
        subprocess.run(["kill", pid.strip()], check=False)


# --- GitHub Actions ----------------------------------------------------------------------

def _github_expr(text: str, ctx: Mapping[str, Mapping[str, str]]) -> str:
    """`${{ secrets.X }}`, `${{ vars.X || 'default' }}`, `${{ inputs.x || 'd' }}`."""
    def value(match: re.Match[str]) -> str:
        for operand in (o.strip() for o in match.group(1).split("||")):
            if operand.startswith("'") and operand.endswith("'"):
                return operand[1:-1]
            scope, _, name = operand.partition(".")
            assert scope in ctx, f"an expression this test cannot evaluate: {operand}"
            if ctx[scope].get(name):
                return ctx[scope][name]
        return ""
    return EXPR.sub(value, text)


def test_github_actions_example_deploys_and_validates(box: Sandbox, installed: Installed,
                                                      tmp_path: Path) -> None:
    workflow = _load(DOCS / "github-actions.yml")
    job = workflow["jobs"]["deploy"]
    ws = _workspace(box, tmp_path)
    runner_temp = tmp_path / "runner-temp"
    runner_temp.mkdir()
    github_env = tmp_path / "github-env"
    ctx = {"secrets": _secrets(box), "inputs": {"profile": PROFILE},
           "vars": {"GPUFORGE_PIP_SPEC": str(installed.wheel)}}
    exported: dict[str, str] = {}
    job_env = {k: _github_expr(v, ctx) for k, v in job["env"].items()}
    failed = False
    ran: list[str] = []
    for step in job["steps"]:
        name = step.get("name", step.get("uses", "?"))
        if failed and step.get("if") != "always()":
            continue
        if "uses" in step:
            action = step["uses"].split("@")[0]
            # checkout and setup-python: the workspace and the Python are already there;
            # the JUnit and artifact actions read files the earlier lines must have written.
            assert action in {"actions/checkout", "actions/setup-python",
                              "mikepenz/action-junit-report", "actions/upload-artifact"}, action
            if action == "mikepenz/action-junit-report":
                assert (ws / step["with"]["report_paths"]).is_file()
            continue
        github_env.write_text("", encoding="utf-8")
        env = {**_base_env(box, installed), **job_env, **exported,
               **{k: _github_expr(v, ctx) for k, v in step.get("env", {}).items()},
               "RUNNER_TEMP": str(runner_temp), "GITHUB_ENV": str(github_env),
               "GITHUB_WORKSPACE": str(ws), "CI": "true", "GITHUB_ACTIONS": "true"}
        script = tmp_path / "step.sh"
        script.write_text(_github_expr(step["run"], ctx), encoding="utf-8")
        proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
                              cwd=ws, env=env, capture_output=True, text=True, timeout=1500,
                              check=False)
        ran.append(name)
        assert proc.returncode == 0, f"step {name!r} exited {proc.returncode}:\n" \
                                     f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
        for line in github_env.read_text(encoding="utf-8").splitlines():
            key, _, val = line.partition("=")
            exported[key] = val
    try:
        assert [n for n in ran if n.startswith(("Check", "Plan", "Apply", "Validate"))] == [
            "Check the inventory (no host is touched)", "Plan (check mode and diff)", "Apply",
            "Validate (acceptance checks)"]
        _reports_ok(ws)
        assert not (runner_temp / "vault-pass").exists(), "the vault password was left behind"
        secrets = _secrets(box)
        for path in (ws / "reports").iterdir():
            text = path.read_text(encoding="utf-8", errors="replace")
            assert secrets["GPUFORGE_API_KEY"] not in text and VAULT_PASSWORD not in text
    finally:
        _kill_agent(exported.get("SSH_AGENT_PID", ""))


# --- GitLab CI ---------------------------------------------------------------------------

def test_gitlab_ci_example_deploys_and_validates(box: Sandbox, installed: Installed,
                                                 tmp_path: Path) -> None:
    pipeline = _load(DOCS / "gitlab-ci.yml")
    ws = _workspace(box, tmp_path)
    secrets = _secrets(box)
    files = tmp_path / "gitlab-files"
    files.mkdir(mode=0o700)
    # File variables: GitLab writes the value to a file and the variable holds its path.
    vault_file, key_file = files / "ANSIBLE_VAULT_PASSWORD_FILE", files / "SSH_PRIVATE_KEY"
    known_file = files / "SSH_KNOWN_HOSTS"
    vault_file.write_text(secrets["ANSIBLE_VAULT_PASSWORD"] + "\n", encoding="utf-8")
    key_file.write_text(secrets["SSH_PRIVATE_KEY"], encoding="utf-8")
    known_file.write_text(secrets["SSH_KNOWN_HOSTS"], encoding="utf-8")
    for path in (vault_file, key_file):
        path.chmod(0o600)
    predefined = {"CI": "true", "GITLAB_CI": "true", "CI_PROJECT_DIR": str(ws),
                  "CI_COMMIT_BRANCH": "main", "CI_DEFAULT_BRANCH": "main"}
    # Project CI/CD variables win over the YAML's `variables:`, as in GitLab.
    project = {"ANSIBLE_VAULT_PASSWORD_FILE": str(vault_file), "SSH_PRIVATE_KEY": str(key_file),
               "SSH_KNOWN_HOSTS": str(known_file),
               "GPUFORGE_API_KEY": secrets["GPUFORGE_API_KEY"],
               "GPUFORGE_PIP_SPEC": str(installed.wheel),
               # The example's llm-server needs a GPU host: the project variable picks the
               # profile for this sandbox, as a site overrides the YAML's default.
               "PROFILE": PROFILE}
    yaml_vars = {k: v.replace("$CI_PROJECT_DIR", str(ws))
                 for k, v in pipeline["variables"].items()}
    default = pipeline["default"]
    for stage in pipeline["stages"]:
        jobs = [(n, j) for n, j in pipeline.items()
                if isinstance(j, dict) and j.get("stage") == stage]
        assert jobs, f"no job in stage {stage}"
        for name, job in jobs:
            for rule in job.get("rules", []):
                assert rule["if"] == "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH"
            env = {**_base_env(box, installed), **yaml_vars, **predefined, **project}
            pidfile = tmp_path / f"{name}.agent"
            lines = [*default["before_script"], *job["script"]]
            # The runner's own epilogue: note the agent this job started, to stop it after.
            body = "set -eo pipefail\n" + "\n".join(lines) + \
                f'\necho "${{SSH_AGENT_PID:-}}" > {pidfile}\n'
            proc = subprocess.run(["bash", "-c", body], cwd=ws, env=env, capture_output=True,
                                  text=True, timeout=1500, check=False)
            _kill_agent(pidfile.read_text() if pidfile.exists() else "")
            assert proc.returncode == 0, f"job {name} exited {proc.returncode}:\n" \
                                         f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
            if "after_script" in job:
                after = subprocess.run(["bash", "-c", "\n".join(job["after_script"])], cwd=ws,
                                       env=env, capture_output=True, text=True, timeout=300,
                                       check=False)
                assert after.returncode == 0, after.stderr
            for artifact in job.get("artifacts", {}).get("paths", []):
                assert (ws / artifact).is_file(), f"job {name} left no {artifact}"
    _reports_ok(ws)
