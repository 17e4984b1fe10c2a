#!/usr/bin/env python3
"""A real HTTP receiver for webhook tests: records every POST (headers and body) as one JSON
line in OUT, answers 503 to the first FAIL requests, then 200. Prints the port it listens on.
usage: webhook_receiver.py OUT [FAIL]
"""
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

out_path = sys.argv[1]
fail = int(sys.argv[2]) if len(sys.argv) > 2 else 0
count = 0

class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        global count
        count += 1
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        status = 503 if count <= fail else 200
        with open(out_path, "a") as f:
            f.write(json.dumps({"n": count, "status": status, "path": self.path,
                                "signature": self.headers.get("X-Fleetwatch-Signature"),
                                "body": body.decode()}) + "\n")
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass

server = HTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
