"""A minimal OpenAI-compatible client for the gateway (stdlib only): what the demo and
`gpuforge endpoints` use to prove a served model answers."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from typing import Any


def _context(verify: bool) -> ssl.SSLContext:
    if verify:
        return ssl.create_default_context()
    # The gateway's default certificate is self-signed; the demo and sandbox hosts accept it.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def request(base_url: str, path: str, key: str | None, body: dict[str, Any] | None = None,
            *, verify: bool = False, timeout: float = 60) -> tuple[int, dict[str, Any]]:
    """(HTTP status, decoded JSON body) of one call; HTTP errors are returned, not raised."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    req = urllib.request.Request(base_url.rstrip("/") + path, data=data, headers=headers,
                                 method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(req, context=_context(verify), timeout=timeout) as resp:
            return int(resp.status), json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return int(exc.code), json.loads(raw or b"{}")
        except ValueError:
            return int(exc.code), {"raw": raw.decode(errors="replace")}


def served_models(base_url: str, key: str, *, verify: bool = False) -> list[str]:
    status, body = request(base_url, "/models", key, verify=verify, timeout=10)
    if status != 200:
        return []
    return [str(m.get("id")) for m in body.get("data", [])]


def chat(base_url: str, key: str, model: str, prompt: str, *, max_tokens: int = 32,
         verify: bool = False) -> tuple[int, dict[str, Any]]:
    return request(base_url, "/chat/completions", key, {
        "model": model, "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens, "temperature": 0}, verify=verify, timeout=120)


def answer_text(body: dict[str, Any]) -> str:
    try:
        return str(body["choices"][0]["message"]["content"]).strip()
    except (KeyError, IndexError, TypeError):
        return ""
