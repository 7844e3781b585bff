#!/usr/bin/python3
"""Test double for the `ollama` binary (molecule only: the real release is not reachable here).

It speaks the few routes the role relies on (GET /, /api/version, /api/tags, POST /api/create)
and `ollama --version` (the check a new release passes before it is switched to)
with Ollama's own environment (OLLAMA_HOST, OLLAMA_MODELS), so the role's packaging, unit,
sandbox, readiness probes and model import are exercised for real around it.
"""
import http.server
import json
import os
import sys
import urllib.request

# prepare.yml packs release B with another version here, to see which release serves,
# and a release that runs but never serves (SERVES = False).
VERSION = "0.0.0-gpuforge-stub"
SERVES = True
HOST = os.environ.get("OLLAMA_HOST", "127.0.0.1:11434")
MODELS = os.environ.get("OLLAMA_MODELS", os.path.expanduser("~/.ollama/models"))
MANIFESTS = os.path.join(MODELS, "manifests", "registry.ollama.ai", "library")


def full(name):
    return name if ":" in name else name + ":latest"


class Api(http.server.BaseHTTPRequestHandler):
    def reply(self, code, body, ctype="application/json"):
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/":
            self.reply(200, "Ollama is running", "text/plain")
        elif self.path == "/api/version":
            self.reply(200, {"version": VERSION})
        elif self.path == "/api/tags":
            models = []
            if os.path.isdir(MANIFESTS):
                for repo in sorted(os.listdir(MANIFESTS)):
                    for tag in sorted(os.listdir(os.path.join(MANIFESTS, repo))):
                        models.append({"name": f"{repo}:{tag}", "model": f"{repo}:{tag}"})
            self.reply(200, {"models": models})
        else:
            self.reply(404, {"error": "not found"})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if self.path != "/api/create":
            self.reply(404, {"error": "not found"})
            return
        source = body.get("from", "")
        try:
            with open(source, "rb") as handle:
                magic = handle.read(4)
        except OSError as exc:
            self.reply(400, {"error": str(exc)})
            return
        if magic != b"GGUF":
            self.reply(400, {"error": f"{source} is not a GGUF file"})
            return
        repo, tag = full(body["model"]).split(":", 1)
        os.makedirs(os.path.join(MANIFESTS, repo), exist_ok=True)
        with open(os.path.join(MANIFESTS, repo, tag), "w", encoding="utf-8") as handle:
            json.dump({"from": source}, handle)
        self.reply(200, {"status": "success"})


def create(name, modelfile):
    with open(modelfile, encoding="utf-8") as handle:
        source = next(line.split(None, 1)[1].strip() for line in handle if line.startswith("FROM "))
    req = urllib.request.Request(f"http://{HOST}/api/create", method="POST",
                                 data=json.dumps({"model": name, "from": source}).encode())
    with urllib.request.urlopen(req) as resp:
        print(json.loads(resp.read())["status"])


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        if not SERVES:
            sys.exit("this stand-in release does not serve")
        host, port = HOST.rsplit(":", 1)
        http.server.ThreadingHTTPServer((host, int(port)), Api).serve_forever()
    elif sys.argv[1:] in (["--version"], ["-v"]):
        print(f"ollama version is {VERSION}")
    elif sys.argv[1:2] == ["create"] and len(sys.argv) == 5 and sys.argv[3] == "-f":
        create(sys.argv[2], sys.argv[4])
    else:
        sys.exit("usage: ollama serve | ollama --version | ollama create NAME -f MODELFILE")
