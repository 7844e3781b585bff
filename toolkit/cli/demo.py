"""`gpuforge demo`: a sandbox host serving a real model behind the gateway, in one command.

It only composes what exists: `sandbox up`, the `cpu-llm` profile through the normal
recorded run path, then one chat completion from the controller over the published port.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from toolkit.cli.common import JsonOpt

PROMPT = "What is the capital of France? Answer in one sentence."


def _running(name: str) -> dict[str, Any] | None:
    from toolkit.sandbox.hosts import status
    from toolkit.sandbox.state import load_state

    state = load_state(name)
    if state is None:
        return None
    states = status(name)
    running = all(states.get(h["container"]) == "running" for h in state["hosts"])
    return state if running else None


def demo(
    name: Annotated[str, typer.Option("--name", help="Sandbox name.")] = "demo",
    distro: Annotated[str, typer.Option("--distro", help="debian12 or debian13.")] = "debian12",
    hosts: Annotated[int, typer.Option("--hosts", "-n", help="How many hosts.")] = 1,
    fresh: Annotated[bool, typer.Option(
        "--fresh", help="Replace the sandbox's hosts even if they are up.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Start a sandbox host, apply cpu-llm, print the endpoint, a chat completion, the key file."""
    from toolkit.cli.apply import render_outcome
    from toolkit.cli.endpoints import pinned_certificate
    from toolkit.console import emit_json, err
    from toolkit.errors import ExitCode, GpuforgeError
    from toolkit.models.client import CertificateRefused, answer_text, chat, served_models
    from toolkit.profiles import get_profile
    from toolkit.recorded_run import run_profile
    from toolkit.sandbox.hosts import ensure_api_key, up
    from toolkit.sandbox.state import keys_dir

    state = None if fresh else _running(name)
    if state is None:
        err().print(f"starting {hosts} {distro} sandbox host(s) '{name}'...", markup=False)
        state = up(name, hosts, distro, "ssh")
    else:
        err().print(f"reusing sandbox '{name}' ({state['distro']})", markup=False)
    # `sandbox up` wrote the key file and pointed the inventory's gateway_api_key_file at it.
    key_file = ensure_api_key(keys_dir(name))
    key = key_file.read_text(encoding="utf-8").strip()
    profile = get_profile("cpu-llm")
    outcome = run_profile(command="demo", profile=profile,
                          inventories=[Path(state["inventory"])], limit=None, tags=None,
                          check=False)
    render_outcome(outcome, plan=False)
    if outcome.exit_code != ExitCode.OK:
        raise GpuforgeError(f"applying cpu-llm to sandbox '{name}' did not succeed "
                            f"(run {outcome.run_id})",
                            hint=f"see `gpuforge runs show {outcome.run_id}`",
                            code=ExitCode(int(outcome.exit_code)))

    host = state["hosts"][0]
    url = f"https://127.0.0.1:{host['ports']['443']}/v1"
    # The gateway's generated certificate, fetched by the apply over the SSH connection whose
    # host key gpuforge checked: the demo's requests (and the curl line) trust exactly it.
    pin = pinned_certificate(host["name"])
    if not pin.is_file():
        raise GpuforgeError(f"the gateway's certificate was not pinned at {pin}",
                            hint=f"see `gpuforge runs show {outcome.run_id}`",
                            code=ExitCode.FAILED_HOSTS)
    try:
        models = served_models(url, key, ca_file=str(pin), pinned=True)
    except CertificateRefused as exc:
        raise GpuforgeError(f"the gateway at {url} did not present the certificate pinned at "
                            f"{pin} ({exc})", hint="`gpuforge sandbox down` and run the demo "
                            "again with --fresh", code=ExitCode.FAILED_HOSTS) from None
    if not models:
        raise GpuforgeError(f"the gateway at {url} lists no model",
                            hint=f"see `gpuforge runs show {outcome.run_id}`",
                            code=ExitCode.FAILED_HOSTS)
    status, body = chat(url, key, models[0], PROMPT, ca_file=str(pin), pinned=True)
    text = answer_text(body)
    if status != 200 or not text:
        raise GpuforgeError(f"chat completion through {url} failed: HTTP {status} {body}",
                            hint=f"see `gpuforge runs show {outcome.run_id}`",
                            code=ExitCode.FAILED_HOSTS)
    result = {"run_id": outcome.run_id, "endpoint": url, "models": models, "model": models[0],
              "prompt": PROMPT, "answer": text, "usage": body.get("usage", {}),
              "api_key_file": str(key_file), "certificate": str(pin),
              "inventory": state["inventory"]}
    if as_json:
        emit_json(result)
        return
    print(f"endpoint:     {url}  (OpenAI-compatible)")
    print(f"certificate:  {pin}  (the gateway's self-signed certificate, pinned)")
    print(f"model:        {models[0]}")
    print(f"API key file: {key_file}  (mode 0600)")
    print(f"inventory:    {state['inventory']}")
    print(f"> {PROMPT}")
    print(f"< {text}")
    print("try it:")
    print(f"  curl -s --cacert {pin} {url}/chat/completions "
          f"-H \"Authorization: Bearer $(cat {key_file})\" "
          f"-H 'Content-Type: application/json' -d '{{\"model\": \"{models[0]}\", "
          f"\"messages\": [{{\"role\": \"user\", \"content\": \"Hello\"}}]}}'")
    print(f"remove it:    gpuforge sandbox down --name {name}")
