"""`gpuforge hosts trust`: see a host's SSH key fingerprint, then record it."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from toolkit.cli.common import InventoryOpt, JsonOpt, LimitOpt, inventories_or_default

app = typer.Typer(help="The hosts of an inventory: trust their SSH host keys.",
                  no_args_is_help=True)


@app.command("trust")
def trust(
    inventory: InventoryOpt = None,
    limit: LimitOpt = None,
    yes: Annotated[bool, typer.Option(
        "--yes", "-y", help="Record the keys shown without asking (check them first).")] = False,
    replace: Annotated[bool, typer.Option(
        "--replace", help="Also replace a key that differs from the recorded one "
                          "(a reinstalled host).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Show each host's SSH key fingerprint and record it in gpuforge's known_hosts.

    Runs check host keys: a host whose key is unknown or changed is unreachable (exit 4)
    until its key is recorded here (or in ~/.ssh/known_hosts)."""
    from toolkit.console import emit_json, err
    from toolkit.errors import ExitCode, InvalidInput
    from toolkit.inventory import resolve
    from toolkit.known_hosts import known_hosts_file, record, scan, targets

    path = known_hosts_file()
    found, skipped = targets(resolve(inventories_or_default(inventory)), limit)
    for host in skipped:
        err().print(f"{host}: not reached over ssh, no host key to trust", markup=False)
    if not found:
        raise InvalidInput("no ssh host matches" + (f" --limit {limit}" if limit else ""),
                           hint="check --limit against the inventory's host and group names")
    keys = [key for target in found for key in scan(target, path)]
    for key in keys:
        err().print(f"{key.target.host} {key.target.entry} {key.key_type} {key.fingerprint} "
                    f"({key.state})", markup=False, highlight=False)
    changed = sorted({k.target.host for k in keys if k.state == "changed"})
    if changed and not replace:
        raise InvalidInput(
            f"the SSH key of {', '.join(changed)} differs from the one recorded in {path}",
            hint="if the host was reinstalled, compare the fingerprint with the host's own "
                 "(ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub on it) and rerun with "
                 "--replace; otherwise someone may be posing as the host")

    def report(recorded: bool) -> None:
        if as_json:
            emit_json({"known_hosts": str(path), "recorded": recorded, "keys": [
                {"host": k.target.host, "entry": k.target.entry, "type": k.key_type,
                 "fingerprint": k.fingerprint, "state": k.state} for k in keys]})

    if all(k.state == "known" for k in keys):
        err().print(f"all keys already recorded in {path}", markup=False)
        report(False)
        return
    if not yes:
        if not sys.stdin.isatty():
            raise InvalidInput(
                "not recording host keys without confirmation (no terminal to ask on)",
                hint="compare the fingerprints above with the hosts' own, then rerun with --yes")
        if not typer.confirm("Do these fingerprints match the hosts' own keys?", default=False):
            err().print("nothing recorded", markup=False)
            raise typer.Exit(int(ExitCode.CANCELLED))
    record(keys, path)
    err().print(f"recorded in {path}", markup=False)
    report(True)
