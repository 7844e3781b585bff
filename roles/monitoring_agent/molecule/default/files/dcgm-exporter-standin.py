#!/usr/bin/python3
"""STAND-IN for dcgm-exporter (no GPU and no NVIDIA artifact here): takes the same
--address and --collectors arguments and serves, on /metrics, one zero sample per counter
the collectors CSV enables, so the test sees the unit, its arguments and the CSV the role
wrote, end to end through the metrics endpoint. Not NVIDIA's exporter."""
import argparse
import http.server

parser = argparse.ArgumentParser()
parser.add_argument("--address", required=True)
parser.add_argument("--collectors", required=True)
args = parser.parse_args()
with open(args.collectors, encoding="utf-8") as csv:
    fields = [line.split(",")[0].strip() for line in csv
              if line.strip() and not line.lstrip().startswith("#")]
body = "".join(f'{f}{{gpu="0",standin="true"}} 0\n' for f in fields).encode()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/metrics" else 404)
        self.end_headers()
        if self.path == "/metrics":
            self.wfile.write(body)


host, port = args.address.rsplit(":", 1)
http.server.HTTPServer((host, int(port)), Handler).serve_forever()
