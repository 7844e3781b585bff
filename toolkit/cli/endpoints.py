"""`gpuforge endpoints`: per host, the OpenAI-compatible base URL, the models it serves and
where the controller keeps the API key: what a client or a CI job needs."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from toolkit.cli.common import InventoryOpt, JsonOpt, host_table, inventories_or_default
from toolkit.keys import env_key_source, env_keys, key_file_path, read_key_file


def key_location(host_vars: dict[str, Any]) -> tuple[str, Path | None]:
    """(where the key is, as a user reads it; the file when the controller holds one)."""
    path = key_file_path(host_vars.get("gateway_api_key_file"))
    if path:
        return f"file {path} (mode 0600)", path
    source = env_key_source(os.environ)
    if source:
        return source, None
    return "vault variable gateway_api_keys (or env GPUFORGE_API_KEY when applying)", None


def base_url(name: str, host_vars: dict[str, Any]) -> str:
    ports = host_vars.get("gpuforge_published_ports") or {}
    published = ports.get("443") or ports.get(443)
    if published:
        return f"https://127.0.0.1:{published}/v1"
    address = host_vars.get("gateway_server_name") or host_vars.get("ansible_host") or name
    port = int(host_vars.get("gateway_port", 443))
    return f"https://{address}/v1" if port == 443 else f"https://{address}:{port}/v1"


_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")


def pinned_certificate(host: str) -> Path:
    """Where the gateway role fetches a host's generated certificate (gateway_tls_pin_dir)."""
    from toolkit.paths import state_dir

    return state_dir() / "gateway-certs" / f"{host}.pem"


def trust_anchor(host: str, host_vars: dict[str, Any]) -> tuple[str | None, str]:
    """(CA file the gateway's certificate must verify against, None = the system store;
    how it is trusted, as a user reads it)."""
    configured = host_vars.get("gateway_tls_ca_file")
    if isinstance(configured, str) and configured:
        path = Path(configured).expanduser()
        if not path.is_file():
            from toolkit.errors import InvalidInput

            raise InvalidInput(f"gateway_tls_ca_file of host {host}: {path} is not a file",
                               "Point it at the PEM CA file that signed the gateway's certificate.")
        return str(path), f"CA file {path}"
    if not host_vars.get("gateway_tls_cert_src") and _SAFE_NAME.match(host) and ".." not in host:
        pinned = pinned_certificate(host)
        if pinned.is_file():
            return str(pinned), f"pinned certificate {pinned}"
    return None, "system CA store"


def describe(inventories: list[Path]) -> list[dict[str, Any]]:
    from toolkit.errors import ExitCode, GpuforgeError
    from toolkit.inventory import resolve
    from toolkit.models.client import CertificateRefused, served_models

    resolved = resolve(inventories)
    out = []
    for name, layer in sorted(resolved.hosts.items()):
        host_vars = {k: v.value for k, v in layer.items()}
        url = base_url(name, host_vars)
        where, path = key_location(host_vars)
        key = next(iter(read_key_file(path) if path else env_keys(os.environ)), "")
        ca_file, trust = trust_anchor(name, host_vars)
        try:
            models = (served_models(url, key, verify=True, ca_file=ca_file,
                                    pinned=trust.startswith("pinned")) if key else [])
        except CertificateRefused as exc:
            raise GpuforgeError(
                f"host {name}: the gateway at {url} presented a certificate that does not "
                f"verify against the {trust} ({exc}); the API key was not sent",
                "If the certificate changed legitimately, apply the gateway role again (it "
                "re-pins a generated certificate) or set gateway_tls_ca_file to the CA that "
                "signed it; otherwise something else answers at that address.",
                code=ExitCode.UNREACHABLE) from None
        source = "gateway"
        if not models:
            declared = host_vars.get("llama_cpp_instances")
            models = ([str(i.get("name")) for i in declared if isinstance(i, dict)]
                      if isinstance(declared, list) else [])
            source = "inventory (gateway not reachable with a key from here)"
        out.append({"host": name, "url": url, "models": models, "models_from": source,
                    "api_key": where, "api_key_file": str(path) if path else None,
                    "tls_verified_with": trust})
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
