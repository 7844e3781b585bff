"""`gpuforge endpoints`: per host, the OpenAI-compatible base URL, the models it serves and
where the controller keeps the API key: what a client or a CI job needs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from toolkit.cli.common import InventoryOpt, JsonOpt, host_table, inventories_or_default


def key_location(host_vars: dict[str, Any]) -> tuple[str, Path | None]:
    """(where the key is, as a user reads it; the file when the controller holds one)."""
    from toolkit.check import key_file_path

    path = key_file_path(host_vars.get("gateway_api_key_file"))
    if path:
        return f"file {path} (mode 0600)", path
    if os.environ.get("GPUFORGE_API_KEYS"):
        return "env GPUFORGE_API_KEYS", None
    if os.environ.get("GPUFORGE_API_KEY"):
        return "env GPUFORGE_API_KEY", None
    return "vault variable gateway_api_keys (or env GPUFORGE_API_KEY when applying)", None


def base_url(name: str, host_vars: dict[str, Any]) -> str:
    ports = host_vars.get("gpuforge_published_ports") or {}
    published = ports.get("443") or ports.get(443)
    if published:
        return f"https://127.0.0.1:{published}/v1"
    address = host_vars.get("gateway_server_name") or host_vars.get("ansible_host") or name
    port = int(host_vars.get("gateway_port", 443))
    return f"https://{address}/v1" if port == 443 else f"https://{address}:{port}/v1"


def describe(inventories: list[Path]) -> list[dict[str, Any]]:
    from toolkit.inventory import resolve
    from toolkit.models.client import served_models

    resolved = resolve(inventories)
    out = []
    for name, layer in sorted(resolved.hosts.items()):
        host_vars = {k: v.value for k, v in layer.items()}
        url = base_url(name, host_vars)
        where, path = key_location(host_vars)
        key = (path.read_text(encoding="utf-8").strip() if path and path.is_file()
               else os.environ.get("GPUFORGE_API_KEY", ""))
        models = served_models(url, key) if key else []
        source = "gateway"
        if not models:
            declared = host_vars.get("llama_cpp_instances")
            models = ([str(i.get("name")) for i in declared if isinstance(i, dict)]
                      if isinstance(declared, list) else [])
            source = "inventory (gateway not reachable with a key from here)"
        out.append({"host": name, "url": url, "models": models, "models_from": source,
                    "api_key": where, "api_key_file": str(path) if path else None})
    return out


def endpoints(inventory: InventoryOpt = None, as_json: JsonOpt = False) -> None:
    """Show each host's OpenAI-compatible base URL, served models and API key location."""
    from toolkit.console import emit_json

    rows = describe(inventories_or_default(inventory))
    if as_json:
        emit_json({"hosts": {r["host"]: {k: v for k, v in r.items() if k != "host"}
                             for r in rows}})
        return
    host_table("endpoints", [[r["host"], r["url"], ", ".join(r["models"]) or "-", r["api_key"]]
                             for r in rows], ["host", "base URL", "models", "API key"])
