#!/usr/bin/python3
"""Ask the gateway (https://127.0.0.1:PORT, argv[1]) for a streamed and a plain completion of
model argv[2] as the OpenAI Python client does, the key from $GATEWAY_KEY: the stream is read
up to its "data: [DONE]" event and the connection closed at once, before the response ends.
Prints how many usage objects the client saw in each answer, as JSON."""

import http.client
import json
import os
import ssl
import sys

port, model = int(sys.argv[1]), sys.argv[2]
headers = {"Authorization": "Bearer " + os.environ["GATEWAY_KEY"],
           "Content-Type": "application/json"}
seen = {}
for stream in (True, False):
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=30,
                                       context=ssl._create_unverified_context())
    conn.request("POST", "/v1/chat/completions", headers=headers, body=json.dumps(
        {"model": model, "stream": stream, "max_tokens": 3,
         "messages": [{"role": "user", "content": "Name a colour."}]}))
    resp = conn.getresponse()
    if resp.status != 200:
        sys.exit(f"HTTP {resp.status}: {resp.read()[:300]!r}")
    usage = 0
    if stream:
        while True:
            line = resp.readline()
            if not line or line.startswith(b"data: [DONE]"):
                break
            if line.startswith(b"data: "):
                usage += json.loads(line[6:]).get("usage") is not None
    else:
        usage += json.loads(resp.read()).get("usage") is not None
    resp.close()
    conn.close()
    seen["stream" if stream else "plain"] = usage
print(json.dumps(seen))
