# Run by ansible.builtin.script with executable: python3 (tasks/serving.yml), not directly.
"""Send one streamed chat completion and time it; print the measurements as JSON.

Run on the host by the validate role (stdlib only). The API key comes from the 0600 file
named by --api-key-file, never from the command line or an environment assignment a
process list shows.
Output keys: status (HTTP status or null), error, ttft_s (first content token), total_s,
completion_tokens (usage, else the number of content chunks), tokens_source, content,
timings (llama-server's own, when the gateway passes them through).
"""

import argparse
import json
import ssl
import sys
import time
import urllib.error
import urllib.request


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--timeout", type=float, default=180)
    parser.add_argument("--insecure", action="store_true")
    parser.add_argument("--api-key-file", required=True,
                        help="file holding the gateway API key (0600)")
    args = parser.parse_args()
    with open(args.api_key_file, encoding="utf-8") as fh:
        key = fh.read().strip()
    out = {"status": None, "error": None, "ttft_s": None, "total_s": None,
           "completion_tokens": None, "tokens_source": None, "content": "", "timings": None,
           "model": args.model}
    body = json.dumps({
        "model": args.model, "stream": True, "max_tokens": args.max_tokens,
        "temperature": 0, "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": args.prompt}],
    }).encode()
    request = urllib.request.Request(
        args.url.rstrip("/") + "/chat/completions", data=body, method="POST",
        headers={"Content-Type": "application/json", "Accept": "text/event-stream",
                 "Authorization": "Bearer " + key})
    context = ssl._create_unverified_context() if args.insecure else ssl.create_default_context()
    chunks = 0
    start = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=args.timeout, context=context) as resp:
            out["status"] = resp.status
            if "text/event-stream" not in (resp.headers.get("Content-Type") or ""):
                # A server that ignores "stream": one JSON answer; its first byte is the
                # first token a client sees.
                body = json.loads(resp.read().decode("utf-8", "replace") or "{}")
                out["ttft_s"] = round(time.monotonic() - start, 4)
                for choice in body.get("choices") or []:
                    out["content"] += (choice.get("message") or {}).get("content") or ""
                usage = body.get("usage") or {}
                if usage.get("completion_tokens"):
                    out["completion_tokens"] = usage["completion_tokens"]
                    out["tokens_source"] = "usage"
                if isinstance(body.get("timings"), dict):
                    out["timings"] = body["timings"]
            for raw in resp if out["ttft_s"] is None else ():
                line = raw.decode("utf-8", "replace").strip()
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                try:
                    event = json.loads(data)
                except ValueError:
                    continue
                for choice in event.get("choices") or []:
                    text = (choice.get("delta") or {}).get("content") or ""
                    if text:
                        if out["ttft_s"] is None:
                            out["ttft_s"] = round(time.monotonic() - start, 4)
                        chunks += 1
                        out["content"] += text
                usage = event.get("usage")
                if isinstance(usage, dict) and usage.get("completion_tokens"):
                    out["completion_tokens"] = usage["completion_tokens"]
                    out["tokens_source"] = "usage"
                if isinstance(event.get("timings"), dict):
                    out["timings"] = event["timings"]
    except urllib.error.HTTPError as exc:
        out["status"] = exc.code
        out["error"] = exc.read(500).decode("utf-8", "replace")
    except Exception as exc:  # connection refused, TLS, timeout: all are measurements
        out["error"] = "%s: %s" % (type(exc).__name__, exc)
    out["total_s"] = round(time.monotonic() - start, 4)
    if out["completion_tokens"] is None and chunks:
        out["completion_tokens"] = chunks
        out["tokens_source"] = "chunks"
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
