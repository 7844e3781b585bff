#!/usr/bin/python3
"""A stand-in runtime behind the gateway in its molecule scenario (the real ones are tested in
the llama_cpp scenario): answers /health, and chat completions as llama-server does, with a
usage object. A streamed answer ends with "data: [DONE]", then holds the end of its body
(the chunked terminator) for HOLD_S seconds, so a client that closes on [DONE] is gone before
the upstream's response ends. Listens on 127.0.0.1:PORT (argv[1])."""

import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

USAGE = {"prompt_tokens": 17, "completion_tokens": 3, "total_tokens": 20}
HOLD_S = 3


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _send(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def do_GET(self) -> None:
        self._send(b'{"status":"ok"}')

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if not body.get("stream"):
            answer = {"object": "chat.completion", "model": body.get("model"), "usage": USAGE,
                      "choices": [{"index": 0, "finish_reason": "stop",
                                   "message": {"role": "assistant", "content": "red"}}]}
            self._send(json.dumps(answer).encode())
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        events = [{"object": "chat.completion.chunk",
                   "choices": [{"index": 0, "delta": {"content": "red"}}]}]
        # Usage only when asked for, as OpenAI defines stream_options.include_usage.
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append({"object": "chat.completion.chunk", "choices": [], "usage": USAGE})
        for event in events:
            self._chunk(b"data: " + json.dumps(event).encode() + b"\n\n")
        self._chunk(b"data: [DONE]\n\n")
        time.sleep(HOLD_S)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def log_message(self, format: str, *args: object) -> None:
        pass


ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
