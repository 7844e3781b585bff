"""A minimal OpenAI-compatible client for the gateway (stdlib only): what the demo and
`gpuforge endpoints` use to prove a served model answers."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from typing import Any


class CertificateRefused(Exception):
    """The gateway's TLS certificate did not verify against the trust anchor given."""


def _context(verify: bool, ca_file: str | None = None, pinned: bool = False) -> ssl.SSLContext:
    if ca_file:
        # A private CA, or the self-signed certificate the gateway role generated (pinned: only
        # that certificate's key verifies, so the name in the URL need not be one of its names).
        context = ssl.create_default_context(cafile=ca_file)
        context.check_hostname = not pinned
        return context
    if verify:
        return ssl.create_default_context()
    # Only for a gateway on this machine's loopback that gpuforge has just created (the demo).
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def request(base_url: str, path: str, key: str | None, body: dict[str, Any] | None = None,
            *, verify: bool = False, ca_file: str | None = None, pinned: bool = False,
            timeout: float = 60) -> tuple[int, dict[str, Any]]:
    """(HTTP status, decoded JSON body) of one call; HTTP errors are returned, not raised.

    With `verify` or `ca_file` the certificate is checked (and the key is sent only when it
    verifies); a refused certificate raises CertificateRefused."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    req = urllib.request.Request(base_url.rstrip("/") + path, data=data, headers=headers,
                                 method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(req, context=_context(verify, ca_file, pinned),
                                    timeout=timeout) as resp:
            return int(resp.status), json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return int(exc.code), json.loads(raw or b"{}")
        except ValueError:
            return int(exc.code), {"raw": raw.decode(errors="replace")}
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ssl.SSLCertVerificationError):
            raise CertificateRefused(exc.reason.verify_message or str(exc.reason)) from None
        raise


def served_models(base_url: str, key: str, *, verify: bool = False,
                  ca_file: str | None = None, pinned: bool = False) -> list[str]:
    """The gateway's model names; [] when it does not answer. CertificateRefused propagates."""
    try:
        status, body = request(base_url, "/models", key, verify=verify, ca_file=ca_file,
                               pinned=pinned, timeout=10)
    except (OSError, ValueError):
        return []
    if status != 200:
        return []
    return [str(m.get("id")) for m in body.get("data", [])]


def chat(base_url: str, key: str, model: str, prompt: str, *, max_tokens: int = 32,
         verify: bool = False, ca_file: str | None = None,
         pinned: bool = False) -> tuple[int, dict[str, Any]]:
    return request(base_url, "/chat/completions", key, {
        "model": model, "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens, "temperature": 0}, verify=verify, ca_file=ca_file,
        pinned=pinned, timeout=120)


def answer_text(body: dict[str, Any]) -> str:
    try:
        return str(body["choices"][0]["message"]["content"]).strip()
    except (KeyError, IndexError, TypeError):
        return ""
