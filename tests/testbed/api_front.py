#!/usr/bin/env python3
# tests/testbed/api_front.py -- owned by the ecrcp test bed (tests/testbed/).
#
# The fault front of the ECR API emulator: a plain-HTTP reverse proxy in front of moto
# (AWS_ENDPOINT_URL points here; moto stays behind) that injects the API's faults and
# counts what passes. It builds on front.py: its rules ("times", "skip", "every", "delay",
# "status", "drop"), its fault and counter knobs and its connection reset are front.py's,
# read its header for them. What differs:
#
#   api_front.py --listen 127.0.0.1:5001 --upstream 127.0.0.1:5000
#
# A request is an operation of the awsJson1_1 protocol: POST / with
# `X-Amz-Target: AmazonEC2ContainerRegistry_V20150921.CreateRepository`. Rules are keyed,
# so that tests running at the same time see nothing of each other's faults, by the
# `repositoryName` in the JSON body, or, for calls that name no repository
# (GetAuthorizationToken), by the access key id of the SigV4 `Authorization` header
# (`Credential=AKID/...`; moto takes any key, so a test sets its own AWS_ACCESS_KEY_ID):
#
#   POST /_testbed/faults   {"repository": KEY, "rules": [RULE, ...]}   (KEY: a repository
#                           name or an access key id; "rules": [] clears them)
#   GET  /_testbed/faults[?repo=KEY]    DELETE /_testbed/faults?repo=KEY
#
# A RULE is front.py's, plus:
#   "operation": NAME     the bare operation name (or a list of names), e.g.
#                         "CreateRepository"; any operation when absent
#   "error": CODE         answer an AWS JSON error, as the API sends it: status 400 for
#                         "ThrottlingException" (ECR's throttling, from AWS's front door),
#                         500 for "ServerException", 503 for "ServiceUnavailableException",
#                         unless "status" says otherwise; the body is
#                         {"__type": CODE, "message": ...} with `x-amzn-ErrorType: CODE`
#                         and Content-Type application/x-amz-json-1.1
# and "status" alone (e.g. 502) answers a bare 5xx: an HTML body with no error code, as a
# load balancer sends it. "drop": true resets the connection before any answer. "method"
# and "path" match the operation name too, as front.py's path does.
#
# Counters, per key and in total, as front.py's /_testbed/stats (GET ?repo=KEY for one
# key with its request log), with one difference: "by_method" counts operations here
# (requests naming neither a repository nor an access key count under "").
#
# Standard library only.

import argparse
import http.client
import http.server
import json
import re
import socket
import time
import urllib.parse

import front
from front import log

TARGET_PREFIX = "AmazonEC2ContainerRegistry_V20150921."
CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")
# The status each error has at the ECR API when a rule gives none.
ERROR_STATUS = {"ThrottlingException": 400, "ServerException": 500,
                "ServiceUnavailableException": 503}
API_KEYS = {"operation", "error"}
LABEL = "api-front"


class ApiRule(front.Rule):
    """front.py's rule, matching operations and answering AWS JSON errors."""

    def __init__(self, doc: dict):
        if not isinstance(doc, dict):
            raise ValueError(f"a rule is an object, not {doc!r}")
        base = {k: v for k, v in doc.items() if k not in API_KEYS}
        operation = doc.get("operation")
        if operation is not None:
            names = [operation] if isinstance(operation, str) else list(operation)
            base["path"] = "^(?:%s)$" % "|".join(re.escape(name) for name in names)
        self.error = doc.get("error")
        if self.error is not None and base.get("status") is None:
            if self.error not in ERROR_STATUS:
                raise ValueError(f"no default status for error {self.error!r}: give 'status'")
            base["status"] = ERROR_STATUS[self.error]
        super().__init__(base)
        self.doc = doc


class ApiFaults(front.Faults):
    def replace(self, repository: str, docs: list):
        rules = [ApiRule(doc) for doc in docs]  # all valid, or none changes
        with self.lock:
            if rules:
                self.by_repository[repository] = rules
            else:
                self.by_repository.pop(repository, None)


def operation_of(target: str) -> str:
    return target[len(TARGET_PREFIX):] if target.startswith(TARGET_PREFIX) else target


def key_of(body: bytes, authorization: str) -> str:
    """The repository the call names, else the caller's access key id, else ""."""
    try:
        doc = json.loads(body or b"{}")
    except ValueError:
        doc = {}
    if isinstance(doc, dict) and isinstance(doc.get("repositoryName"), str):
        return doc["repositoryName"]
    if isinstance(doc, dict) and isinstance(doc.get("repositoryNames"), list) and len(doc["repositoryNames"]) == 1:
        return str(doc["repositoryNames"][0])
    found = CREDENTIAL.search(authorization or "")
    return found.group(1) if found else ""


class ApiHandler(front.FrontHandler):
    def dispatch(self):
        if self.path.startswith("/_testbed/"):
            return self.testbed(urllib.parse.urlsplit(self.path))
        operation = operation_of(self.headers.get("X-Amz-Target", ""))
        entry = {"method": operation, "path": self.path, "status": 0, "bytes_in": 0,
                 "bytes_out": 0, "fault": None, "at": round(time.time(), 3)}
        started = time.monotonic()
        key = ""
        try:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            entry["bytes_in"] = len(body)
            key = key_of(body, self.headers.get("Authorization", ""))
            self.serve_api(key, operation, body, entry)
        except (OSError, http.client.HTTPException) as e:
            entry["error"] = repr(e)
            self.close_connection = True
            log(LABEL, f"{operation} {key}: {e!r}")
        finally:
            entry["ms"] = round((time.monotonic() - started) * 1000, 1)
            self.server.stats.add(key, entry)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = dispatch

    def serve_api(self, key: str, operation: str, body: bytes, entry: dict):
        rule = self.server.faults.take(key, self.command, operation) if key else None
        if rule is not None:
            entry["fault"] = rule.error or rule.kind
            log(LABEL, f"fault {rule.doc} on {operation} for {key}")
            if rule.delay:
                time.sleep(rule.delay)
            if rule.drop:
                self.reset(entry)
            if rule.status is not None:
                return self.api_error(rule, operation, entry)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in front.HOP_BY_HOP}
        conn = http.client.HTTPConnection(self.server.upstream, timeout=120)
        try:
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        entry["status"] = resp.status
        self.send_response_only(resp.status, resp.reason)
        self.log_request(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in front.HOP_BY_HOP and k.lower() != "content-length":
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        entry["bytes_out"] = len(data)

    def api_error(self, rule, operation: str, entry: dict):
        if rule.error:
            data = json.dumps({"__type": rule.error,
                               "message": "Rate exceeded" if rule.error == "ThrottlingException"
                               else f"injected by the test bed into {operation}"}).encode()
            content_type = "application/x-amz-json-1.1"
        else:
            data = b"<html><body><h1>%d</h1>injected by the test bed</body></html>" % rule.status
            content_type = "text/html"
        self.send_response(rule.status)
        self.send_header("Content-Type", content_type)
        if rule.error:
            self.send_header("x-amzn-ErrorType", rule.error)
        if rule.retry_after is not None:
            self.send_header("Retry-After", rule.retry_after)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        entry["status"] = rule.status
        entry["bytes_out"] = len(data)


class PlainServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def finish_request(self, request, client_address):
        # No 40 ms wait for a delayed ACK between a response's headers and its body (front.py).
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().finish_request(request, client_address)

    def handle_error(self, request, client_address):
        log(LABEL, f"error serving {client_address}")


def main():
    ap = argparse.ArgumentParser(description="fault front of the ECR API emulator")
    ap.add_argument("--listen", required=True, help="HOST:PORT to serve plain HTTP on")
    ap.add_argument("--upstream", required=True, help="HOST:PORT of moto")
    args = ap.parse_args()
    server = PlainServer(front.hostport(args.listen), ApiHandler)
    server.upstream = args.upstream
    server.label = LABEL
    server.faults = ApiFaults()
    server.stats = front.Stats()
    server.etags = {}
    log(LABEL, f"front on {args.listen} -> {args.upstream}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
