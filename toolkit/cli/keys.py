"""`gpuforge keys list|add|revoke|rotate`: named, scoped API keys in the controller key store.

The store (toolkit.keystore) holds hashes only; a new key is printed once on stdout. The
gateways take the store on their next `gpuforge apply` (tag gateway_configure is enough),
with a reload: requests in flight finish.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from toolkit.cli.common import JsonOpt

app = typer.Typer(help="Named, scoped API keys (controller key store, hashes only).",
                  no_args_is_help=True)

StoreOpt = Annotated[Path | None, typer.Option(
    "--store", help="Key store file (default: <state dir>/api-keys.json, the gateway role's "
                    "gateway_key_store).")]
NameArg = Annotated[str, typer.Argument(help="The key's name (1-64 of A-Z a-z 0-9 . _ -).")]
APPLY_HINT = ("apply it to the gateways: gpuforge apply -i INV --profile PROFILE "
              "--tags gateway_configure --yes (a reload; requests in flight finish)")


def _store(store: Path | None) -> Path:
    from toolkit.keystore import default_store

    return store or default_store()


def _print_new(name: str, key: str, as_json: bool) -> None:
    from toolkit.console import emit_json, err

    if as_json:
        emit_json({"name": name, "key": key})
    else:
        typer.echo(key)
    err().print(f"key {name}: shown once, stored as its sha256 only; {APPLY_HINT}",
                markup=False, highlight=False)


@app.command("list")
def list_keys(store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """List the named keys: name, id (log id), models, daily token quota, expiry, own limits."""
    from toolkit.cli.common import host_table
    from toolkit.console import emit_json
    from toolkit.keystore import load, to_dicts

    rows = to_dicts(load(_store(store)))
    if as_json:
        emit_json(rows)
        return
    host_table(f"keys in {_store(store)}", [
        [r["name"], r["id"], ", ".join(r["models"]), str(r["tokens_per_day"] or "-"),
         r["expires"] or "never", str(r["requests_per_minute"] or "shared"),
         str(r["max_concurrent"] or "shared"), r["created"]] for r in rows],
        ["name", "id", "models", "tokens/day", "expires", "requests/min", "concurrent",
         "created"])


@app.command("add")
def add_key(
    name: NameArg,
    models: Annotated[str | None, typer.Option(
        "--models", help="Comma-separated models the key may use (default: all).")] = None,
    tokens_per_day: Annotated[int, typer.Option(
        "--tokens-per-day", min=0, help="Daily token quota (prompt + completion); 0: none.")] = 0,
    expires: Annotated[str | None, typer.Option(
        "--expires", help="When the key stops working: a span (12h, 30d, 2w) or an ISO date "
                          "or time (UTC without an offset). Default: never.")] = None,
    requests_per_minute: Annotated[int, typer.Option(
        "--requests-per-minute", min=0,
        help="The key's own request rate (it may send a minute's worth at once); 0: the "
             "gateway's shared per-key rate.")] = 0,
    max_concurrent: Annotated[int, typer.Option(
        "--max-concurrent", min=0,
        help="The key's own limit on requests in progress at once; 0: the gateway's shared "
             "per-key limit.")] = 0,
    store: StoreOpt = None, as_json: JsonOpt = False,
) -> None:
    """Create a named key; print it once (stdout)."""
    from toolkit.keystore import add, parse_expiry, parse_models

    _print_new(name, add(_store(store), name, parse_models(models), tokens_per_day,
                         parse_expiry(expires), requests_per_minute, max_concurrent), as_json)


@app.command("rotate")
def rotate_key(name: NameArg, store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Replace a key (same name, models, quota, expiry, limits); print the new one once."""
    from toolkit.keystore import rotate

    _print_new(name, rotate(_store(store), name), as_json)


@app.command("revoke")
def revoke_key(name: NameArg, store: StoreOpt = None) -> None:
    """Remove a named key from the store."""
    from toolkit.console import err
    from toolkit.keystore import revoke

    revoke(_store(store), name)
    err().print(f"key {name} revoked in the store; {APPLY_HINT}", markup=False,
                highlight=False)
