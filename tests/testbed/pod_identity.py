#!/usr/bin/env python3
# tests/testbed/pod_identity.py -- owned by the ecrcp test bed (tests/testbed/).
#
# EKS Pod Identity's credentials endpoint, as its agent serves it on 169.254.170.23: a pod
# gets AWS_CONTAINER_CREDENTIALS_FULL_URI (this server) and
# AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (its service account token), and the AWS SDK
# sends GET FULL_URI with `Authorization: <the token file's contents>`. This server answers
# the credentials below only when that header equals the token file's contents (read again
# on every request: the kubelet rotates it), else 401 as the agent does.
#
#   pod_identity.py --listen 127.0.0.1:0 --token-file FILE --access-key-id KEY
#
# prints `listening on HOST:PORT` once it listens (port 0: the system picks one), then
#   GET  <any path>            the credentials, or 401 with a JSON error
#   GET  /_testbed/stats       {"served": N, "refused": N}
# The credentials: KEY, a fixed secret, a session token, an expiry an hour away.
#
# Standard library only.

import argparse
import datetime
import http.server
import json
import pathlib
import sys
import threading


class Handler(http.server.BaseHTTPRequestHandler):
    def answer(self, status: int, doc: dict):
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        server = self.server
        if self.path == "/_testbed/stats":
            with server.lock:
                return self.answer(200, dict(server.stats))
        expected = server.token_file.read_text().strip()
        given = self.headers.get("Authorization", "")
        if not expected or given != expected:
            with server.lock:
                server.stats["refused"] += 1
            return self.answer(401, {"code": "AccessDeniedException",
                                     "message": "the service account token is missing or wrong"})
        with server.lock:
            server.stats["served"] += 1
        expiry = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
        self.answer(200, {
            "AccessKeyId": server.access_key_id,
            "SecretAccessKey": "pod-identity-secret",
            "Token": "pod-identity-session-token",
            "AccountId": "123456789012",
            "Expiration": expiry.strftime("%Y-%m-%dT%H:%M:%SZ"),
        })

    def log_message(self, format, *args):
        sys.stderr.write("pod-identity: " + format % args + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listen", required=True)
    parser.add_argument("--token-file", required=True, type=pathlib.Path)
    parser.add_argument("--access-key-id", required=True)
    args = parser.parse_args()
    host, port = args.listen.rsplit(":", 1)
    server = http.server.ThreadingHTTPServer((host, int(port)), Handler)
    server.daemon_threads = True
    server.token_file = args.token_file
    server.access_key_id = args.access_key_id
    server.stats = {"served": 0, "refused": 0}
    server.lock = threading.Lock()
    print(f"listening on {host}:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
