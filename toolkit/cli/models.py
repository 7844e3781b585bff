"""`gpuforge models list|fetch|verify`: the catalog and the controller-side model cache
from which air-gapped hosts get their models (model_store's `controller` source)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from toolkit.cli.common import JsonOpt, host_table

if TYPE_CHECKING:
    from toolkit.models.catalog import Model

app = typer.Typer(help="Model catalog (seeds/models.yml) and the controller-side model cache.",
                  no_args_is_help=True)

CacheOpt = Annotated[Path | None, typer.Option(
    "--cache", help="Cache directory. Default: $GPUFORGE_STATE_DIR/models.")]
NamesArg = Annotated[list[str] | None, typer.Argument(help="Model names (default: all).")]


def _cache(cache: Path | None) -> Path:
    from toolkit.models.cache import default_cache

    return (cache.expanduser().resolve() if cache else default_cache())


def _selected(names: list[str] | None) -> list[Model]:
    from toolkit.models.catalog import get_model, load_catalog

    catalog = load_catalog()
    return [get_model(n, catalog) for n in names] if names else list(catalog.values())


@app.command("list")
def list_(cache: CacheOpt = None, as_json: JsonOpt = False) -> None:
    """List the catalog's models and whether the controller cache holds them intact."""
    from toolkit.console import emit_json
    from toolkit.models.cache import verify
    from toolkit.models.catalog import load_catalog

    root = _cache(cache)
    rows, out = [], []
    for model in load_catalog().values():
        states = {s.status for s in verify(model, root)}
        cached = "yes" if states == {"ok"} else ("damaged" if "mismatch" in states else "no")
        out.append({**model.to_dict(), "cached": cached})
        rows.append([model.name, model.format, model.revision, model.licence,
                     f"{model.size_bytes / 1e6:.0f} MB", f"{model.ram_mb} MiB",
                     f"{model.vram_mb} MiB", str(model.source.get("type", "")), cached])
    if as_json:
        emit_json({"cache": str(root), "models": out})
        return
    host_table(f"models (cache {root})", rows,
               ["model", "format", "revision", "licence", "size", "RAM", "VRAM", "source",
                "cached"])


@app.command("fetch")
def fetch(
    names: NamesArg = None, cache: CacheOpt = None,
    mirror: Annotated[str, typer.Option(
        "--mirror", help="Site mirror base URL (<url>/<name>/<revision>/<file>).")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Download models into the cache, verifying every sha256 before a file is kept."""
    from toolkit.console import emit_json, err
    from toolkit.models.cache import fetch as fetch_model

    root = _cache(cache)
    results: list[dict[str, Any]] = []
    for model in _selected(names):
        err().print(f"fetching {model.name} ({model.source.get('type')}) into {root}...",
                    markup=False)
        results.extend(s.to_dict() for s in fetch_model(model, root, mirror=mirror))
    if as_json:
        emit_json({"cache": str(root), "files": results})
        return
    host_table("fetched", [[r["model"], r["file"], r["status"], r["path"]] for r in results],
               ["model", "file", "status", "path"])


@app.command("verify")
def verify(names: NamesArg = None, cache: CacheOpt = None, as_json: JsonOpt = False) -> None:
    """Check the cached files against the catalog's sha256; exit 2 if any is not intact."""
    from toolkit.console import emit_json
    from toolkit.errors import ExitCode
    from toolkit.models.cache import verify as verify_model

    root = _cache(cache)
    results: list[dict[str, Any]] = []
    for model in _selected(names):
        results.extend(s.to_dict() for s in verify_model(model, root))
    if as_json:
        emit_json({"cache": str(root), "files": results})
    else:
        host_table("verify", [[r["model"], r["file"], r["status"], r["path"]] for r in results],
                   ["model", "file", "status", "path"])
    if any(r["status"] != "ok" for r in results):
        raise typer.Exit(int(ExitCode.FAILED_HOSTS))
