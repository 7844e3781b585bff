#!/usr/bin/python3
"""Active health for the front gateway's pools (nginx OSS has no active checks).

Usage: front-health CONFIG [--no-reload]

CONFIG (JSON, written by the front_gateway role) lists each pool (one per model) and the host
gateways in it. Each run asks every host gateway for GET /health/<model> over TLS, verified
against that pool's pinned certificates, with the fleet credential (a root-only file, never on
a command line). A backend goes down after `fails` failed probes in a row and comes back after
`passes` good ones; the pools file is then rewritten (atomically) with `down` on the servers
that are out, each change is logged, and nginx is reloaded (a graceful reload: requests in
flight finish on the old workers). Exit 0 when the run completed; the pools it wrote are
printed as `changed` on stdout when they changed.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import time


class PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to an address, verifying the certificate for another name (the pinned one)."""

    def __init__(self, address, port, ssl_name, context, timeout):
        super().__init__(address, port, timeout=timeout, context=context)
        self._ssl_name = ssl_name
        self._ctx = context

    def connect(self):
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._ctx.wrap_socket(sock, server_hostname=self._ssl_name)


def probe(backend, pool, cfg, key):
    """(healthy, reason) for one host gateway serving pool['model']."""
    ctx = ssl.create_default_context(cafile=pool["ca_file"])
    conn = PinnedHTTPS(backend["address"], backend["port"], cfg["ssl_name"], ctx,
                       cfg["timeout"])
    try:
        conn.request("GET", "/health/" + pool["model"],
                     headers={"Authorization": "Bearer " + key})
        resp = conn.getresponse()
        resp.read()
        return resp.status == 200, f"HTTP {resp.status}"
    except (OSError, ssl.SSLError, http.client.HTTPException) as exc:
        return False, f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()


def render(cfg, state):
    out = ["# Written by front-health (role front_gateway); `down` marks a host out of a pool."]
    for pool in cfg["pools"]:
        out.append(f"# pool {pool['id']}: model {pool['model']}")
        out.append(f"upstream gf_pool_{pool['id']} {{")
        out.append("    least_conn;")
        for b in pool["backends"]:
            address = f"[{b['address']}]" if ":" in b["address"] else b["address"]
            down = state.get(f"{pool['model']}|{b['host']}", {}).get("up", True) is False
            out.append(f"    server {address}:{b['port']} max_fails={cfg['max_fails']} "
                       f"fail_timeout={cfg['fail_timeout']}s{' down' if down else ''};"
                       f"  # {b['host']}")
        out.append(f"    keepalive {cfg['keepalive']};")
        out.append("}")
    return "\n".join(out) + "\n"


def write_atomic(path, text, mode=0o644):
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def log(cfg, line):
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with open(cfg["log_file"], "a", encoding="utf-8") as fh:
        fh.write(f"{stamp} {line}\n")
    print(line, file=sys.stderr)


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as fh:
        cfg = json.load(fh)
    with open(cfg["key_file"], encoding="utf-8") as fh:
        key = fh.read().strip()
    try:
        with open(cfg["state_file"], encoding="utf-8") as fh:
            state = json.load(fh)
    except (OSError, ValueError):
        state = {}
    for pool in cfg["pools"]:
        for b in pool["backends"]:
            name = f"{pool['model']}|{b['host']}"
            entry = state.setdefault(name, {"up": True, "fails": 0, "passes": 0})
            ok, reason = probe(b, pool, cfg, key)
            entry["fails"] = 0 if ok else entry["fails"] + 1
            entry["passes"] = entry["passes"] + 1 if ok else 0
            entry["last"] = reason
            if entry["up"] and entry["fails"] >= cfg["fails"]:
                entry["up"] = False
                log(cfg, f"pool {pool['model']}: {b['host']} down ({reason})")
            elif not entry["up"] and entry["passes"] >= cfg["passes"]:
                entry["up"] = True
                log(cfg, f"pool {pool['model']}: {b['host']} up ({reason})")
    known = {f"{p['model']}|{b['host']}" for p in cfg["pools"] for b in p["backends"]}
    state = {k: v for k, v in state.items() if k in known}
    write_atomic(cfg["state_file"], json.dumps(state, indent=1, sort_keys=True) + "\n")
    text = render(cfg, state)
    try:
        with open(cfg["pools_file"], encoding="utf-8") as fh:
            changed = fh.read() != text
    except OSError:
        changed = True
    if changed:
        write_atomic(cfg["pools_file"], text)
        print("changed")
        if "--no-reload" not in argv:
            subprocess.run(["systemctl", "reload", "nginx"], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
