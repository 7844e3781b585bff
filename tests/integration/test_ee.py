"""The AWX job path, in the gpuforge execution environment (execution-environment.yml).

AWX (through receptor) runs a job as three processes: `ansible-runner transmit` packs the
job's private data directory on the controller, `ansible-runner worker` runs it inside a
container of the execution environment image, and `ansible-runner process` turns the
stream that comes back into the job's events and artifacts. Here the same three commands
run, piped as receptor pipes them, with the image scripts/ee-build.sh builds from this
checkout, the AWX project of docs/awx/project, and the "gpuforge site" credential of
docs/awx/vars/credential_types.yml injected as AWX injects it (files in the private data
directory, their paths as extra vars). The job applies cpu-llm to a real sandbox host over
SSH with its host key checked, and the host then serves the model through its gateway.
Then `ansible-navigator run` with the same image (--pull-policy never) applies it again:
nothing changes. What AWX itself does around the job (its database, receptor's mesh) is
not here; the commands, the image and the job's files are the ones AWX would use."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jinja2
import pytest
import yaml

from tests.sandbox import GPUFORGE, Sandbox, cli_env
from toolkit.models.client import request
from toolkit.sandbox.podman import podman_env

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
AWX = ROOT / "docs" / "awx"
BIN = Path(sys.executable).parent
# Where AWX's worker unpacks a job (the `--private-data-dir` of its container command).
RUNNER_DIR = "/runner"
# The controller's gpuforge cache (llama.cpp builds), exposed to the job's container (AWX:
# "Paths to expose to isolated jobs"): the job installs a build the controller already has
# instead of compiling one, and a job that compiles publishes its build there.
CONTROLLER_CACHE = Path(os.environ.get("GPUFORGE_CACHE_DIR",
                                       Path.home() / ".cache" / "gpuforge"))
# Where jobs see it (AWX: a path exposed to isolated jobs).
CACHE_IN_EE = "/var/cache/gpuforge"


@pytest.fixture(scope="module")
def ee_image() -> str:
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "ee-build.sh")],
                          capture_output=True, text=True, timeout=2400, check=False)
    print(proc.stderr)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def cache() -> Path:
    """The controller's cache, writable by the job's user (uid 1000, group 0 in the
    image) through its group: the llama.cpp directory is made group-writable."""
    builds = CONTROLLER_CACHE / "llama.cpp"
    builds.mkdir(parents=True, exist_ok=True)
    if builds.stat().st_gid == 0:
        builds.chmod(builds.stat().st_mode | 0o070)
    return CONTROLLER_CACHE


@pytest.fixture(scope="module")
def box(make_sandbox: Callable[..., Sandbox]) -> Sandbox:
    return make_sandbox("awx")


def inject(credential_type: dict[str, Any], inputs: dict[str, str], env_dir: Path,
           container_dir: str) -> dict[str, str]:
    """A credential's injectors rendered as AWX renders them: each file template written
    (0600) to the job's env dir, the extra vars naming the files by their container path."""
    injectors = credential_type["injectors"]
    filenames: dict[str, str] = {}
    for key, template in injectors["file"].items():
        name = key.split(".", 1)[1]
        path = env_dir / f"credential_{name}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(jinja2.Template(template).render(**inputs))
        filenames[name] = f"{container_dir}/{path.name}"
    tower = SimpleNamespace(filename=SimpleNamespace(**filenames))
    return {var: jinja2.Template(template).render(tower=tower, **inputs)
            for var, template in injectors["extra_vars"].items()}


class _Loader(yaml.SafeLoader):
    """Reads docs/awx/vars (Ansible's `!unsafe` strings as plain strings)."""


_Loader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))


def job_inventory(box: Sandbox) -> tuple[dict[str, Any], Path, Path]:
    """The sandbox's inventory as an AWX inventory holds it: hosts and their variables,
    without the controller paths of its SSH key and known_hosts, which the job's
    credentials bring instead, plus the inventory variables site.yml sets; and the two
    paths."""
    data = yaml.safe_load(Path(box.inventory).read_text(encoding="utf-8"))
    group = data["all"]["children"]["sandbox"]["vars"]
    key = Path(group.pop("ansible_ssh_private_key_file"))
    known_hosts = Path(group.pop("ansible_ssh_common_args").split("UserKnownHostsFile=")[1]
                       .split()[0])
    group.pop("gateway_api_key_file")
    # The AWX inventory's own variables (site.yml sets them on the inventory).
    data["all"]["vars"] = yaml.load((AWX / "vars" / "gpuforge.yml").read_text(
        encoding="utf-8"), Loader=_Loader)["gpuforge_awx_inventory_variables"]
    return data, key, known_hosts


@pytest.fixture(scope="module")
def job(box: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A job's private data directory as AWX writes it: project, inventory, machine
    credential (env/ssh_key), the gpuforge site credential's files, extra vars, env."""
    pdd = tmp_path_factory.mktemp("awx-job") / "private"
    shutil.copytree(AWX / "project", pdd / "project")
    inventory, key, known_hosts_file = job_inventory(box)
    (pdd / "inventory").mkdir(parents=True)
    (pdd / "inventory" / "hosts").write_text(yaml.safe_dump(inventory), encoding="utf-8")
    env = pdd / "env"
    env.mkdir(mode=0o700)
    private_key = key.read_text(encoding="utf-8")
    (env / "ssh_key").write_text(private_key, encoding="utf-8")
    (env / "ssh_key").chmod(0o600)
    api_key = "gf-ee-" + secrets.token_hex(16)
    hf_token = "hf_ee" + secrets.token_hex(16)
    known_hosts = known_hosts_file.read_text(encoding="utf-8")
    (ctype,) = yaml.safe_load((AWX / "vars" / "credential_types.yml").read_text(
        encoding="utf-8"))["gpuforge_awx_credential_types"]
    extravars = inject(ctype, {"gateway_api_keys": api_key + "\n", "hf_token": hf_token,
                               "known_hosts": known_hosts}, env, f"{RUNNER_DIR}/env")
    # The job template's extra variable naming the exposed cache (roles read no GPUFORGE_*
    # environment: docs/conventions.md).
    extravars["gpuforge_cache_dir"] = CACHE_IN_EE
    (env / "extravars").write_text(yaml.safe_dump(extravars), encoding="utf-8")
    return SimpleNamespace(pdd=pdd, api_key=api_key, hf_token=hf_token,
                           private_key=private_key, extravars=extravars)


def run_awx_job(pdd: Path, playbook: str, image: str, out: Path,
                cache: Path) -> SimpleNamespace:
    """transmit | podman run -i IMAGE ansible-runner worker | process, as receptor runs
    an AWX job in a container; the worker reaches sandbox hosts on the loopback."""
    out.mkdir(parents=True, exist_ok=True)
    worker_cmd = ["podman", "run", "--rm", "-i", "--network", "host",
                  "-v", f"{cache}:{CACHE_IN_EE}",
                  image, "ansible-runner", "worker", f"--private-data-dir={RUNNER_DIR}"]
    with open(out / "worker.stderr", "wb") as worker_err:
        transmit = subprocess.Popen([str(BIN / "ansible-runner"), "transmit", str(pdd),
                                     "-p", playbook], stdout=subprocess.PIPE)
        worker = subprocess.Popen(worker_cmd, stdin=transmit.stdout, stdout=subprocess.PIPE,
                                  stderr=worker_err, env=podman_env())
        assert transmit.stdout is not None and worker.stdout is not None
        transmit.stdout.close()
        process = subprocess.Popen([str(BIN / "ansible-runner"), "process", str(out)],
                                   stdin=worker.stdout, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
        worker.stdout.close()
        stdout, _ = process.communicate(timeout=3000)
        rcs = (transmit.wait(60), worker.wait(60), process.returncode)
    # `process` writes the job's artifacts (events, stdout, status, rc) straight there.
    artifacts = out / "artifacts"
    events = [json.loads(p.read_text(encoding="utf-8"))
              for p in sorted((artifacts / "job_events").glob("*.json"))]
    return SimpleNamespace(rcs=rcs, stdout=stdout, artifacts=artifacts, events=events,
                           worker_stderr=(out / "worker.stderr").read_text(errors="replace"),
                           command=worker_cmd)


def stats(events: list[dict[str, Any]]) -> dict[str, Any]:
    (final,) = [e for e in events if e.get("event") == "playbook_on_stats"]
    return dict(final["event_data"])


def secrets_in(directory: Path, values: list[str]) -> list[str]:
    found = []
    for path in directory.rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            found += [f"{path}: {v[:8]}..." for v in values if v.strip() in text]
    return found


def assert_job_applied(run: SimpleNamespace, host: str, roles: set[str]) -> None:
    """The job succeeded, changed the fresh host, failed nothing, reached it, and the
    events of every role of the profile came back."""
    assert run.rcs == (0, 0, 0), run.worker_stderr[-3000:] + run.stdout[-3000:]
    status = (run.artifacts / "status").read_text(encoding="utf-8").strip()
    assert status == "successful", run.stdout[-4000:]
    assert (run.artifacts / "rc").read_text(encoding="utf-8").strip() == "0"
    recap = stats(run.events)
    assert recap["failures"] == {} and recap["dark"] == {}, recap
    assert recap["ok"].get(host, 0) > 0 and recap["changed"].get(host, 0) > 0, recap
    ran = {e["event_data"].get("role") for e in run.events if e.get("event") == "runner_on_ok"}
    assert roles <= ran, ran
    assert host in (run.artifacts / "stdout").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def based(ee_image: str, box: Sandbox, job: SimpleNamespace, cache: Path,
          tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """The `gpuforge apply base` job template's playbook, through the AWX job path."""
    run = run_awx_job(job.pdd, "base.yml", ee_image, tmp_path_factory.mktemp("awx-base"),
                      cache)
    print(f"AWX job path (base): {len(run.events)} events came back; rcs {run.rcs}")
    return run


def test_base_job_runs_in_the_execution_environment(
        based: SimpleNamespace, box: Sandbox) -> None:
    assert_job_applied(based, box.state["hosts"][0]["name"], {"base"})
    assert len(based.events) > 30, len(based.events)


def test_base_job_imported_into_the_history_shows_the_jobs_recap(
        based: SimpleNamespace, box: Sandbox, tmp_path: Path) -> None:
    """The job that came back, recorded with `gpuforge runs import`: `runs show` gives
    the same per-host counts as the job's own recap, marked as an AWX job."""
    assert based.rcs == (0, 0, 0)
    env = cli_env(tmp_path / "state")

    def gpuforge(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*GPUFORGE, *args], env=env, capture_output=True, text=True,
                              timeout=300, check=False, cwd=ROOT)

    imported = gpuforge("runs", "import", str(based.artifacts.parent), "--json")
    assert imported.returncode == 0, imported.stderr
    run_id = json.loads(imported.stdout)["run_id"]
    proc = gpuforge("runs", "show", str(run_id), "--json")
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)
    recap = stats(based.events)
    host = box.state["hosts"][0]["name"]
    assert shown["source"] == "awx" and shown["profile"] == "base"
    assert shown["status"] == "successful" and shown["exit_code"] == 0
    assert shown["hosts"][host]["ok"] == recap["ok"][host]
    assert shown["hosts"][host]["changed"] == recap["changed"][host]
    assert shown["failures"] == []
    print(f"imported as run {run_id}: ok={recap['ok'][host]} changed={recap['changed'][host]}")
    again = gpuforge("runs", "import", str(based.artifacts.parent), "--json")
    assert again.returncode == 3, again.stderr
    assert "already in the history" in json.loads(again.stdout)["error"]


def cpu_builds(cache: Path) -> list[str]:
    """The controller cache's CPU llama-server builds for the sandbox's platform."""
    return sorted(p.name for p in (cache / "llama.cpp").glob(
        "llama-server-*-cpu-debian12-x86_64.tar.gz"))


@pytest.fixture(scope="module")
def applied(ee_image: str, box: Sandbox, job: SimpleNamespace, cache: Path, based: Any,
            tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    before = cpu_builds(cache)
    run = run_awx_job(job.pdd, "cpu_llm.yml", ee_image, tmp_path_factory.mktemp("awx-out"),
                      cache)
    run.builds_before = before
    print(f"AWX job path (cpu-llm): {len(run.events)} events came back; rcs {run.rcs}")
    return run


@pytest.mark.llama_build
def test_cpu_llm_job_runs_in_the_execution_environment(
        applied: SimpleNamespace, box: Sandbox, job: SimpleNamespace) -> None:
    run = applied
    assert_job_applied(run, box.state["hosts"][0]["name"],
                       {"model_store", "llama_cpp", "gateway"})
    assert len(run.events) > 100, len(run.events)
    # The exposed cache is the job's controller cache: a build already there is installed,
    # not compiled again; on an empty cache the job compiles and publishes its build there.
    compiled = [e for e in run.events if e.get("event") == "runner_on_ok"
                and e["event_data"].get("task", "").startswith("Build | Compile")]
    if run.builds_before:
        assert compiled == [], f"compiled although the cache had {run.builds_before}"
    else:
        assert compiled and cpu_builds(CONTROLLER_CACHE), "the job's build was not published"
    print(f"cache before the job: {run.builds_before or 'empty'}; compiled: {bool(compiled)}")
    # The host serves: the gateway answers the key the credential injected, and only it.
    base = f"https://127.0.0.1:{box.state['hosts'][0]['ports']['443']}/v1"
    assert request(base, "/models", job.api_key)[0] == 200
    assert request(base, "/models", "gf-wrong-" + "0" * 24)[0] == 401


def test_no_secret_in_the_job_output_artifacts_or_command(
        based: SimpleNamespace, job: SimpleNamespace) -> None:
    values = [job.api_key, job.hf_token, job.private_key]
    assert secrets_in(based.artifacts, values) == []
    assert not [v for v in values if any(v.strip() in arg for arg in based.command)]
    # Only the credential files' paths travel as extra vars.
    assert all(v.startswith(f"{RUNNER_DIR}/env/") for k, v in job.extravars.items()
               if k != "gpuforge_cache_dir")


def test_navigator_runs_the_project_with_the_image(
        based: SimpleNamespace, ee_image: str, box: Sandbox, job: SimpleNamespace,
        cache: Path, tmp_path: Path) -> None:
    """ansible-navigator, as a user tries a job template locally before AWX: the same
    project, inventory and credential files, mounted at the paths the extra vars name,
    applying base again to the host the AWX job applied it to: nothing changes."""
    assert based.rcs == (0, 0, 0)
    navigator = shutil.which("ansible-navigator", path=str(BIN))
    assert navigator, "ansible-navigator is missing from the virtual environment"
    agent = tmp_path / "agent.sock"
    started = subprocess.run(["ssh-agent", "-a", str(agent)], capture_output=True,
                             text=True, check=True)
    agent_pid = next(line.split("=")[1].split(";")[0] for line in started.stdout.splitlines()
                     if line.startswith("SSH_AGENT_PID="))
    # As on a user's workstation: the test command's ANSIBLE_COLLECTIONS_PATH (a link to this
    # checkout, a path that does not exist in the image) is not the user's; navigator hands
    # ANSIBLE_* variables to the container, where it would hide the image's collection.
    env = {k: v for k, v in podman_env().items() if k != "ANSIBLE_COLLECTIONS_PATH"}
    env |= {"SSH_AUTH_SOCK": str(agent), "ANSIBLE_NAVIGATOR_LOG_FILE":
            str(tmp_path / "navigator.log")}
    try:
        subprocess.run(["ssh-add", "-q", str(job.pdd / "env" / "ssh_key")], env=env,
                       check=True, capture_output=True)
        project = job.pdd / "project"
        proc = subprocess.run(
            [navigator, "run", "base.yml", "--mode", "stdout", "--ee", "true",
             "--ce", "podman", "--eei", ee_image, "--pull-policy", "never",
             "-i", str(job.pdd / "inventory" / "hosts"),
             "--eev", f"{job.pdd / 'env'}:{RUNNER_DIR}/env:ro",
             "--eev", f"{cache}:{CACHE_IN_EE}",
             # Root in the container (root here too: rootful podman) may use this
             # agent's socket; ssh-agent answers only its own user.
             "--co=--network=host", "--co=--user=0",
             "--pae", "true", "--pas", str(tmp_path / "{playbook_name}-artifact.json"),
             "-e", f"@{RUNNER_DIR}/env/extravars"],
            cwd=project, env=env, capture_output=True, text=True, timeout=1800, check=False)
    finally:
        subprocess.run(["kill", agent_pid], check=False)
    out = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout)
    print(out[-2000:])
    assert proc.returncode == 0, out[-4000:] + proc.stderr[-2000:]
    host = box.state["hosts"][0]["name"]
    recap = [line for line in out.splitlines() if line.startswith(host) and "ok=" in line]
    assert recap and "changed=0 " in recap[-1] and "failed=0 " in recap[-1], recap
    artifact = json.loads((tmp_path / "base-artifact.json").read_text(encoding="utf-8"))
    assert artifact["plays"], "navigator's playbook artifact holds no play"
    assert secrets_in(tmp_path, [job.api_key, job.hf_token, job.private_key]) == []


@pytest.mark.llama_build
def test_validate_job_brings_the_measurements_back(
        applied: SimpleNamespace, ee_image: str, box: Sandbox, job: SimpleNamespace,
        cache: Path, tmp_path: Path) -> None:
    """The validate job template's playbook, the same way: the measurements gpuforge
    judges (a real completion through the gateway, each runtime's health) come back in
    the job's events."""
    assert applied.rcs == (0, 0, 0)
    run = run_awx_job(job.pdd, "validate.yml", ee_image, tmp_path / "out", cache)
    assert run.rcs == (0, 0, 0), run.worker_stderr[-3000:] + run.stdout[-3000:]
    host = box.state["hosts"][0]["name"]
    assert stats(run.events)["failures"] == {}
    published = [e["event_data"]["res"]["ansible_facts"]["validate_measurements"]
                 for e in run.events if e.get("event") == "runner_on_ok"
                 and "validate_measurements" in e["event_data"].get("res", {})
                 .get("ansible_facts", {})]
    assert published, "no validate_measurements fact came back"
    measured = published[-1]
    assert measured["host"] == host
    assert measured["health"] and set(measured["health"]) == {200}, measured["health"]
    assert measured["chat"]["rc"] == 0, measured["chat"]
    print(f"validate job: {len(run.events)} events came back")
    assert secrets_in(run.artifacts, [job.api_key, job.hf_token, job.private_key]) == []
    # Imported with the job's inventory, the job is judged as `gpuforge validate` judges:
    # its checks and verdict are recorded with it.
    proc = subprocess.run([*GPUFORGE, "runs", "import", str(run.artifacts.parent), "-i",
                           box.inventory, "--json"], env=cli_env(tmp_path / "state"),
                          capture_output=True, text=True, timeout=300, check=False, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)
    checks = {c["name"]: c for c in shown["checks"] if c["host"] == host}
    print(f"imported validate job judged: {[(n, c['status']) for n, c in checks.items()]}, "
          f"exit {shown['exit_code']}")
    assert shown["command"] == "validate" and shown["source"] == "awx"
    assert {"gateway.chat", "gateway.tokens_per_s"} <= set(checks), checks
    failed = [c for c in shown["checks"] if c["status"] != "pass"]
    assert (shown["exit_code"] == 0) == (not failed), (shown["exit_code"], failed)


def _check_job(job: SimpleNamespace, image: str, out: Path, cache: Path,
               host_vars: dict[str, Any]) -> SimpleNamespace:
    pdd = out / "private"
    shutil.copytree(job.pdd, pdd)
    inventory = yaml.safe_load((pdd / "inventory" / "hosts").read_text(encoding="utf-8"))
    hosts = inventory["all"]["children"]["sandbox"]["hosts"]
    for entry in hosts.values():
        entry.update(host_vars)
    (pdd / "inventory" / "hosts").write_text(yaml.safe_dump(inventory), encoding="utf-8")
    return run_awx_job(pdd, "check.yml", image, out / "out", cache)


def _check_task(run: SimpleNamespace) -> dict[str, Any]:
    (result,) = [e["event_data"]["res"] for e in run.events
                 if e.get("event") in ("runner_on_ok", "runner_on_failed")
                 and e["event_data"].get("task") == "Run gpuforge check on the job's inventory"]
    return dict(result)


def test_check_job_runs_the_toolkit_in_the_image(
        ee_image: str, job: SimpleNamespace, cache: Path, tmp_path: Path) -> None:
    """The workflow's first step: `gpuforge check` from the image on the job's own
    inventory passes a good one and stops the workflow on a bad variable (exit 3)."""
    good = _check_job(job, ee_image, tmp_path / "good", cache, {})
    assert good.rcs == (0, 0, 0), good.stdout[-3000:]
    assert "no problems" in _check_task(good)["stderr"]
    bad = _check_job(job, ee_image, tmp_path / "bad", cache, {"llama_cpp_threads": "many"})
    assert (bad.artifacts / "status").read_text(encoding="utf-8").strip() == "failed"
    result = _check_task(bad)
    assert result["rc"] == 3 and "llama_cpp_threads" in result["stderr"], result
