"""`gpuforge sandbox up|list|down|image`: local hosts to run everything against."""

from __future__ import annotations

from typing import Annotated

import typer

from toolkit.cli.common import JsonOpt, host_table

app = typer.Typer(
    help="Local sandbox hosts: podman containers with systemd, reached over SSH as an "
         "unprivileged user with sudo, like real machines.", no_args_is_help=True)

NameOpt = Annotated[str, typer.Option("--name", help="Sandbox name (several can coexist).")]


def _sandbox_name(name: str) -> None:
    """A sandbox name is a directory under the state dir: a safe name that stays there."""
    from toolkit.names import safe_name, within
    from toolkit.paths import state_dir

    within(state_dir() / "sandbox", safe_name("--name", name))


@app.command("up")
def up(
    hosts: Annotated[int, typer.Option("--hosts", "-n", help="How many hosts (1-16).")] = 1,
    distro: Annotated[str, typer.Option("--distro", help="debian12 or debian13.")] = "debian12",
    connection: Annotated[str, typer.Option(
        "--connection", help="ssh (as production) or podman (faster).")] = "ssh",
    name: NameOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """Start fresh sandbox hosts (replacing this sandbox's old ones) and write an inventory."""
    from toolkit.console import emit_json, err
    from toolkit.sandbox.hosts import up as sandbox_up

    _sandbox_name(name)
    err().print(f"starting {hosts} {distro} sandbox host(s) ({connection})...", markup=False)
    state = sandbox_up(name, hosts, distro, connection)
    if as_json:
        emit_json({"name": state["name"], "inventory": state["inventory"],
                   "connection": state["connection"], "distro": state["distro"],
                   "hosts": state["hosts"]})
        return
    host_table(f"sandbox {name}", [[h["name"], h["container"], f"127.0.0.1:{h['ports']['22']}",
                                    f"127.0.0.1:{h['ports']['443']}"] for h in state["hosts"]],
               ["host", "container", "ssh", "https (gateway)"])
    err().print(f"inventory: {state['inventory']}", markup=False)


@app.command("list")
def list_(as_json: JsonOpt = False) -> None:
    """List sandboxes and the state of their hosts."""
    from toolkit.console import emit_json
    from toolkit.sandbox.hosts import status
    from toolkit.sandbox.state import all_states

    out = []
    for state in all_states():
        states = status(state["name"])
        out.append({**state, "hosts": [
            {**h, "state": states.get(h["container"], "missing")} for h in state["hosts"]]})
    if as_json:
        emit_json(out)
        return
    host_table("sandboxes", [[s["name"], h["name"], h["state"], s["distro"], s["connection"],
                              s["inventory"]] for s in out for h in s["hosts"]],
               ["sandbox", "host", "state", "distro", "connection", "inventory"])


@app.command("down")
def down(name: NameOpt = "default", as_json: JsonOpt = False) -> None:
    """Remove a sandbox's hosts, key and inventory."""
    from toolkit.console import emit_json, err
    from toolkit.sandbox.hosts import down as sandbox_down

    _sandbox_name(name)  # the name becomes a directory removed recursively
    existed = sandbox_down(name)
    if as_json:
        emit_json({"name": name, "removed": existed})
    else:
        err().print(f"sandbox {name}: {'removed' if existed else 'was not up'}", markup=False)


@app.command("image")
def image(
    distro: Annotated[str, typer.Option("--distro", help="debian12 or debian13.")] = "debian12",
    force: Annotated[bool, typer.Option("--force", help="Rebuild even if current.")] = False,
) -> None:
    """Build (or confirm) the local base image for sandbox hosts and molecule."""
    from toolkit.console import err
    from toolkit.sandbox.images import ensure_image

    err().print(ensure_image(distro, force=force), markup=False)
