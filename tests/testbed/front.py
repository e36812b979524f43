#!/usr/bin/env python3
# tests/testbed/front.py -- owned by the ecrcp test bed (tests/testbed/).
#
# The TLS front of a bed registry: a streaming reverse proxy (TLS outside, the
# registry's plain HTTP inside) that injects faults and counts what passes.
# The fake ECR registry runs behind it as a script; hub_front.py builds the fake
# Docker Hub's proxy on its handler. Nothing is held whole: bodies stream in
# pieces of at most CHUNK bytes in both directions.
#
#   front.py --listen 127.0.0.3:443 --upstream 127.0.0.3:5000 --cert C --key K --label ecr
#
# Faults, keyed by repository so that tests running at the same time see nothing
# of each other's (a request's repository is NAME in /v2/NAME/{manifests,blobs,
# tags,referrers}/...; requests without one, like the /v2/ ping, get no faults):
#
#   POST /_testbed/faults   {"repository": "flaky/x", "rules": [RULE, ...]}
#                           replaces that repository's rules ("rules": [] clears them)
#   GET  /_testbed/faults[?repo=NAME]   the rules in force, with how often each fired
#   DELETE /_testbed/faults?repo=NAME   clears them
#
# A RULE matches requests by "method" (a name or a list; any when absent),
# "path" (a regular expression searched for in the path and query; any when
# absent) and "body" (a regular expression searched for in the request body; only
# bodies of at most BODY_PEEK bytes sent with a Content-Length, i.e. manifests, are
# looked at: others never match). The first rule that matches and has uses left fires:
#   "times": N        fire for the next N matching requests (always when absent or null)
#   "skip": K         let the first K matching requests through untouched first
#   "every": N        fire on every Nth matching request only (the Nth, the 2Nth, ...;
#                     counted after "skip"; "times" counts the firings): a deterministic
#                     "one request in N" that a failing test replays exactly
#   "delay": SECONDS  wait before going on (alone, or before the action below); with
#                     "on": "response", forward the request at once, let the registry act
#                     on it, and hold its answer that long: a registry slow to answer
#                     (committing a large blob) after it did the work
#   "content_type": T answer with Content-Type T instead of the registry's (alone, or with
#                     an action that forwards): a source serving a manifest as T
#   "rate": BYTES     stream the body at most BYTES per second (alone, or with an action)
#   "over": N         fire only for matching requests beyond N a second: a token bucket of
#                     N tokens that refills at N a second, as AWS enforces an API quota
#                     (ECR's 10 PutImage calls a second per account); a request that finds
#                     the bucket empty fires, and takes no token
# and at most one action:
#   "status": CODE    answer CODE (e.g. 500, 502, 503, 408, 429) with a registry error
#                     body instead of forwarding, after reading the request body;
#                     "retry_after": "2" adds a Retry-After header; "code" and "message"
#                     choose the error's code and message (ECR's immutable tag: 400,
#                     "TAG_INVALID", "... cannot be overwritten because the tag already exists")
#   "drop": true      reset the connection (TCP RST) before answering anything
#   "lose_answer": true  forward the request, let the registry act on it, then reset the
#                     connection instead of relaying its answer: the client cannot know
#                     whether its upload or manifest PUT landed
#   "reset_after": K  reset the connection after K bytes of the body: the request body
#                     when the request has one (the registry never sees the request),
#                     else the response body (after the headers); "on": "request" or
#                     "response" picks the side. Past the end of the body, the reset
#                     comes once the body is through.
#   "corrupt": true   forward, but flip one byte of a 2xx response body (at "corrupt_at",
#                     default the middle), so the bytes no longer match their digest
#   "refuse_mount": true  matches only a POST whose query asks for a cross-repository
#                     mount (mount=): forwards it without its mount and from parameters,
#                     so the registry opens an upload session and answers 202 with its
#                     Location, as ECR does for an account without BLOB_MOUNTING
#   "stall": SECONDS  take the request's headers, then read nothing of its body for
#                     SECONDS (the connection stays open: a hung load balancer, a
#                     flow-control stall), then reset the connection; the registry never
#                     sees the request
#   "expire_token": true  matches only a request that carries an Authorization header (a
#                     login that worked so far): answers, as ECR does once its 12-hour
#                     token expired, 401 with `WWW-Authenticate: Basic realm="https://HOST/",
#                     service="ecr.amazonaws.com"` and a DENIED error "Your authorization
#                     token has expired. Reauthenticate and try again." ("skip": K lets the
#                     first K authorized requests through; "times": N is how many are
#                     refused: the bed's moto hands out the same token on every fetch, so a
#                     new token cannot be told from the expired one by its text)
#   "redirect": URL   answer 307 with `Location: URL` instead of forwarding, as a registry
#                     that serves blobs from storage answers with a presigned URL
#   "serve": {"content_type": TYPE, "body": TEXT}  answer 200 with TEXT as TYPE (and its
#                     Docker-Content-Digest) instead of forwarding: a manifest the registry
#                     would never take, as a hostile registry serves it
#   "relocate": ORIGIN  forward, then rewrite the answer's Location to ORIGIN (`scheme://
#                     host[:port]`) keeping its path and query: an upload session handed out
#                     on another origin, or as `http://` by a registry behind TLS offload
#
# Tag lists are paged as Docker Hub and ECR page them (the registry behind, distribution
# 2.8, ignores `n` and `last`): a GET of /v2/NAME/tags/list with `n` or `last` answers at
# most `n` tags (1 to 1000; more is refused with 400, as ECR does) in lexical order, after
# `last`, with a `Link: <...?n=N&last=T>; rel="next"` header while more remain. Without
# either parameter the registry's own answer passes through. No ETag is added (the bed's
# registries offer none) but for repositories named to a knob, whose paged answers then
# carry an ETag of the page (its tags and its next link, as a registry hashes the answer
# it sends) and answer a matching If-None-Match with 304; "page": K makes their pages
# hold at most K tags whatever n asks (a registry may answer fewer than n):
#
#   POST /_testbed/etags    {"repository": "team/app"[, "page": 2]}
#   GET  /_testbed/etags    the repositories that get ETags, with their page sizes
#
# Counters, per repository and in total (requests, body bytes in and out, by
# method and status, and the last requests of each repository: method, path,
# status or "reset", body bytes, the fault that fired, the answer's Location when it
# had one (an upload session), start time "at" in Unix seconds, duration "ms", and
# "authorized": whether it carried an Authorization header):
#
#   GET  /_testbed/stats               totals, plus each repository's totals
#   GET  /_testbed/stats?repo=NAME     that repository: totals and its request log
#
# Standard library only.

import argparse
import fcntl
import hashlib
import http.client
import http.server
import json
import queue
import re
import socket
import ssl
import struct
import sys
import termios
import threading
import time
import urllib.parse

CHUNK = 1 << 18
# The largest request body a "body" rule looks at: a manifest's limit at ECR.
BODY_PEEK = 4 << 20
KEEP_LOG = 5000
# Expect is answered here (BaseHTTPRequestHandler sends the 100 Continue itself).
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
              "te", "trailer", "trailers", "transfer-encoding", "upgrade", "expect"}
REPOSITORY_PATH = re.compile(r"^/v2/(.+?)/(?:manifests|blobs|tags|referrers)(?:/|$)")
ERROR_CODES = {401: "UNAUTHORIZED", 403: "DENIED", 404: "NOT_FOUND", 405: "UNSUPPORTED",
               408: "TIMEOUT", 429: "TOOMANYREQUESTS"}


TAGS_PATH = re.compile(r"^/v2/(.+)/tags/list$")
MOST_TAGS = 1000


def log(label: str, msg: str):
    sys.stderr.write(f"{label}: {msg}\n")
    sys.stderr.flush()


def repository_of(path: str) -> str:
    """The repository a registry API path names, or "" (the /v2/ ping, the catalog)."""
    found = REPOSITORY_PATH.match(urllib.parse.urlsplit(path).path)
    return found.group(1) if found else ""


def write_json(handler, status: int, doc, extra=None) -> int:
    """Answers with a JSON body (none for HEAD), plus any extra headers; returns the body size."""
    body = json.dumps(doc).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    for k, v in (extra or {}).items():
        handler.send_header(k, v)
    handler.end_headers()
    if handler.command == "HEAD":
        return 0
    handler.wfile.write(body)
    return len(body)


class Aborted(Exception):
    """The client's connection was reset on purpose; nothing more is sent on it."""


# ---------------------------------------------------------------- faults

RULE_KEYS = {"method", "path", "body", "times", "skip", "every", "over", "delay", "rate", "status", "retry_after",
             "drop", "lose_answer", "reset_after", "on", "corrupt", "corrupt_at", "refuse_mount",
             "expire_token", "code", "message", "content_type", "redirect", "relocate", "serve", "stall"}
ACTIONS = ("status", "drop", "lose_answer", "reset_after", "corrupt", "refuse_mount", "expire_token",
           "redirect", "relocate", "serve", "stall")
# ECR's answer to a request with an expired authorization token.
EXPIRED_TOKEN = "Your authorization token has expired. Reauthenticate and try again."
# The query parameters of a cross-repository mount (distribution spec, "Mount Blob").
MOUNT_PARAMETERS = ("mount", "from")


def asks_mount(path: str) -> bool:
    return "mount" in urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)


def without_mount(path: str) -> str:
    """`path` with its mount parameters left out: a plain upload's POST."""
    url = urllib.parse.urlsplit(path)
    kept = [(k, v) for k, v in urllib.parse.parse_qsl(url.query, keep_blank_values=True)
            if k not in MOUNT_PARAMETERS]
    return urllib.parse.urlunsplit(url._replace(query=urllib.parse.urlencode(kept)))


class Rule:
    def __init__(self, doc: dict):
        if not isinstance(doc, dict):
            raise ValueError(f"a rule is an object, not {doc!r}")
        unknown = sorted(set(doc) - RULE_KEYS)
        if unknown:
            raise ValueError(f"unknown rule keys {unknown} (known: {sorted(RULE_KEYS)})")
        actions = [a for a in ACTIONS if doc.get(a) not in (None, False)]
        if len(actions) > 1:
            raise ValueError(f"one action per rule, not {actions}")
        if not actions and not doc.get("delay") and not doc.get("rate") and not doc.get("content_type"):
            raise ValueError(f"rule {doc} does nothing: give an action, a delay, a rate or a content_type")
        if doc.get("on") not in (None, "request", "response"):
            raise ValueError(f"'on' is 'request' or 'response', not {doc['on']!r}")
        self.doc = doc
        self.kind = actions[0] if actions else ("delay" if doc.get("delay") else
                                                 "rate" if doc.get("rate") else "content_type")
        method = doc.get("method")
        self.methods = None if method is None else {m.upper() for m in ([method] if isinstance(method, str) else method)}
        self.path = re.compile(doc["path"]) if doc.get("path") else None
        self.body = re.compile(doc["body"].encode()) if doc.get("body") else None
        self.times = None if doc.get("times") is None else int(doc["times"])
        self.skip = int(doc.get("skip") or 0)
        self.every = 1 if doc.get("every") is None else int(doc["every"])
        if self.every < 1:
            raise ValueError(f"'every' is 1 or more, not {self.every}")
        self.matched = 0
        self.over = None if doc.get("over") is None else int(doc["over"])
        if self.over is not None and self.over < 1:
            raise ValueError(f"'over' is 1 or more, not {self.over}")
        self.tokens = float(self.over or 0)  # the "over" bucket, full at first
        self.tokens_at = time.monotonic()
        self.delay = float(doc.get("delay") or 0)
        self.rate = float(doc.get("rate") or 0)
        self.status = None if doc.get("status") is None else int(doc["status"])
        self.retry_after = None if doc.get("retry_after") is None else str(doc["retry_after"])
        self.code = doc.get("code")
        self.message = doc.get("message")
        self.content_type = doc.get("content_type")
        # The delay comes before the request is forwarded, or, "on": "response", before the
        # registry's answer is relayed.
        self.delay_answer = self.delay if doc.get("on") == "response" else 0
        if self.delay_answer:
            self.delay = 0
        self.drop = bool(doc.get("drop"))
        self.lose_answer = bool(doc.get("lose_answer"))
        self.reset_after = None if doc.get("reset_after") is None else int(doc["reset_after"])
        self.on = doc.get("on")
        self.corrupt = bool(doc.get("corrupt"))
        self.corrupt_at = None if doc.get("corrupt_at") is None else int(doc["corrupt_at"])
        self.refuse_mount = bool(doc.get("refuse_mount"))
        self.expire_token = bool(doc.get("expire_token"))
        self.redirect = doc.get("redirect")
        self.relocate = doc.get("relocate")
        self.serve = doc.get("serve")
        if self.serve is not None and not isinstance(self.serve, dict):
            raise ValueError(f"'serve' is {{\"content_type\": .., \"body\": ..}}, not {self.serve!r}")
        self.stall = float(doc.get("stall") or 0)
        self.fired = 0

    def matches(self, method: str, path: str, body, authorized: bool) -> bool:
        return ((self.methods is None or method in self.methods)
                and (self.path is None or self.path.search(path) is not None)
                and (self.body is None or (body is not None and self.body.search(body) is not None))
                and (not self.refuse_mount or (method == "POST" and asks_mount(path)))
                and (not self.expire_token or authorized))

    def acts_on_request(self, has_body: bool) -> bool:
        return self.on == "request" if self.on else has_body

    def report(self) -> dict:
        return dict(self.doc, fired=self.fired, times_left=self.times, skip_left=self.skip)


class Faults:
    """The rules in force, by repository."""

    def __init__(self):
        self.lock = threading.Lock()
        self.by_repository = {}

    def replace(self, repository: str, docs: list):
        rules = [Rule(doc) for doc in docs]  # all valid, or none changes
        with self.lock:
            if rules:
                self.by_repository[repository] = rules
            else:
                self.by_repository.pop(repository, None)

    def report(self, repository=None) -> dict:
        with self.lock:
            names = [repository] if repository is not None else sorted(self.by_repository)
            return {name: [r.report() for r in self.by_repository.get(name, [])] for name in names}

    def looks_at_bodies(self, repository: str) -> bool:
        """Whether a rule of `repository` matches on request bodies."""
        with self.lock:
            return any(rule.body is not None for rule in self.by_repository.get(repository, ()))

    def take(self, repository: str, method: str, path: str, body=None, authorized=False):
        """The rule that fires for this request (whose small `body` was read first when a
        rule looks at bodies; `authorized`: it carries an Authorization header), counting
        the use, or None."""
        with self.lock:
            for rule in self.by_repository.get(repository, ()):
                if not rule.matches(method, path, body, authorized) or (rule.times is not None and rule.times <= 0):
                    continue
                if rule.skip > 0:
                    rule.skip -= 1
                    continue
                rule.matched += 1
                if rule.matched % rule.every != 0:
                    continue
                if rule.over is not None:
                    now = time.monotonic()
                    rule.tokens = min(float(rule.over), rule.tokens + (now - rule.tokens_at) * rule.over)
                    rule.tokens_at = now
                    if rule.tokens >= 1.0:
                        rule.tokens -= 1.0
                        continue
                rule.fired += 1
                if rule.times is not None:
                    rule.times -= 1
                return rule
        return None


# ---------------------------------------------------------------- counters


def new_bucket() -> dict:
    return {"requests": 0, "bytes_in": 0, "bytes_out": 0, "faults": 0, "by_method": {}, "by_status": {}}


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.total = new_bucket()
        self.by_repository = {}
        self.logs = {}

    def add(self, repository: str, entry: dict):
        with self.lock:
            bucket = self.by_repository.setdefault(repository, new_bucket())
            for b in (self.total, bucket):
                b["requests"] += 1
                b["bytes_in"] += entry["bytes_in"]
                b["bytes_out"] += entry["bytes_out"]
                b["faults"] += 1 if entry["fault"] else 0
                b["by_method"][entry["method"]] = b["by_method"].get(entry["method"], 0) + 1
                status = str(entry["status"])
                b["by_status"][status] = b["by_status"].get(status, 0) + 1
            entries = self.logs.setdefault(repository, [])
            entries.append(entry)
            del entries[:-KEEP_LOG]

    def report(self, repository=None) -> dict:
        with self.lock:
            if repository is None:
                doc = json.loads(json.dumps(self.total))
                doc["repositories"] = {name: {k: b[k] for k in ("requests", "bytes_in", "bytes_out", "faults")}
                                       for name, b in sorted(self.by_repository.items())}
                return doc
            doc = json.loads(json.dumps(self.by_repository.get(repository, new_bucket())))
            doc["repository"] = repository
            doc["log"] = list(self.logs.get(repository, []))
            return doc


# ---------------------------------------------------------------- the proxy


class FrontHandler(http.server.BaseHTTPRequestHandler):
    """Forwards to `server.upstream`, applying `server.faults` and counting into `server.stats`.
    Subclasses may answer more /_testbed/ knobs (`testbed_extra`), answer a request
    themselves (`answered_here`) and add response headers (`extra_headers`)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        log(self.server.label, f"{self.address_string()} {fmt % args}")

    # -- hooks for subclasses

    def testbed_extra(self, url) -> bool:
        return False

    def answered_here(self, entry: dict) -> bool:
        return False

    def extra_headers(self, status: int) -> dict:
        return {}

    # -- small answers

    def send_small(self, status: int, doc, extra=None, entry=None):
        sent = write_json(self, status, doc, extra)
        if entry is not None:
            entry["status"] = status
            entry["bytes_out"] += sent

    def read_json(self):
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"{}") if length else {}

    def testbed(self, url):
        query = urllib.parse.parse_qs(url.query)
        repository = query.get("repo", [None])[0]
        if url.path == "/_testbed/faults":
            if self.command == "POST":
                try:
                    doc = self.read_json()
                    repository = doc["repository"]
                    self.server.faults.replace(repository, doc.get("rules") or [])
                except (ValueError, TypeError, KeyError, re.error) as e:
                    return self.send_small(400, {"error": repr(e)})
            elif self.command == "DELETE":
                if repository is None:
                    return self.send_small(400, {"error": "DELETE needs ?repo=NAME"})
                self.server.faults.replace(repository, [])
            return self.send_small(200, self.server.faults.report(repository))
        if url.path == "/_testbed/etags":
            if self.command == "POST":
                try:
                    doc = self.read_json()
                    page = doc.get("page")
                    if page is not None and not 1 <= int(page) <= MOST_TAGS:
                        raise ValueError(f"page is 1 to {MOST_TAGS}, not {page}")
                    self.server.etags[doc["repository"]] = None if page is None else int(page)
                except (ValueError, TypeError, KeyError) as e:
                    return self.send_small(400, {"error": repr(e)})
            return self.send_small(200, {"etags": self.server.etags})
        if url.path == "/_testbed/stats" and self.command == "GET":
            return self.send_small(200, self.server.stats.report(repository))
        if not self.testbed_extra(url):
            self.send_small(404, {"error": f"no test knob {url.path} for {self.command}"})

    # -- request bodies

    def chunked_body(self):
        while True:
            line = self.rfile.readline(65537)
            if not line:
                raise ConnectionError("client closed during a chunked request body")
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass
                return
            while size > 0:
                data = self.rfile.read(min(size, CHUNK))
                if not data:
                    raise ConnectionError("client closed during a chunked request body")
                size -= len(data)
                yield data
            self.rfile.readline(65537)  # CRLF after the chunk

    def sized_body(self, length: int):
        left = length
        while left > 0:
            data = self.rfile.read(min(left, CHUNK))
            if not data:
                raise ConnectionError("client closed during the request body")
            left -= len(data)
            yield data

    def peek_body(self):
        """The whole request body when it is small and sized (a manifest), read ahead so
        that "body" rules can look at it; else None, and nothing is read."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return None
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 < length <= BODY_PEEK:
            return None
        return b"".join(self.sized_body(length))

    def request_body(self, entry: dict, rule, peeked=None):
        """The request body as a stream of pieces (None without one), metered, paced and
        cut as `rule` says; `peeked`: the body, already read."""
        if peeked is not None:
            pieces = iter([peeked])
        elif "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            pieces = self.chunked_body()
        elif int(self.headers.get("Content-Length") or 0) > 0:
            pieces = self.sized_body(int(self.headers["Content-Length"]))
        else:
            return None
        acts = rule is not None and rule.acts_on_request(True)
        return ReadAhead(self.metered(pieces, entry, rule if acts else None))

    def metered(self, pieces, entry: dict, rule):
        limit = rule.reset_after if rule is not None else None
        started = time.monotonic()
        for data in pieces:
            if limit is not None and entry["bytes_in"] >= limit:
                self.reset(entry)
            entry["bytes_in"] += len(data)
            if rule is not None:
                pace(rule.rate, entry["bytes_in"], started)
            yield data
        if limit is not None:
            self.reset(entry)

    # -- faults

    def reset(self, entry: dict):
        """Drops the client's connection with a TCP reset, as a failing network does."""
        entry["status"] = entry["status"] or "reset"
        self.close_connection = True
        try:
            # A reset throws away what the kernel has not sent yet: let the client have the
            # bytes counted as sent first (briefly: it may not be reading).
            deadline = time.monotonic() + 1
            while unsent(self.connection) > 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            # the real close (and so the RST) comes when the last reference goes
            self.rfile.close()
            self.connection.close()
        except OSError:
            pass
        raise Aborted()

    def answer_fault(self, rule, entry: dict):
        extra = {"Retry-After": rule.retry_after} if rule.retry_after is not None else {}
        code = rule.code or ERROR_CODES.get(rule.status, "UNAVAILABLE" if rule.status >= 500 else "UNKNOWN")
        message = rule.message or "injected by the test bed"
        self.send_small(rule.status, {"errors": [{"code": code, "message": message,
                                                  "detail": {"status": rule.status}}]}, extra, entry)

    def answer_expired(self, entry: dict):
        host = self.headers.get("Host", "").split(":")[0]
        challenge = f'Basic realm="https://{host}/",service="ecr.amazonaws.com"'
        self.send_small(401, {"errors": [{"code": "DENIED", "message": EXPIRED_TOKEN}]},
                        {"WWW-Authenticate": challenge}, entry)

    def answer_served(self, serve: dict, entry: dict):
        data = str(serve.get("body", "")).encode()
        self.send_response_only(200, "OK")
        self.log_request(200)
        self.send_header("Content-Type", serve.get("content_type", "application/octet-stream"))
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Docker-Content-Digest", "sha256:" + hashlib.sha256(data).hexdigest())
        self.end_headers()
        entry["status"] = 200
        if self.command != "HEAD":
            self.wfile.write(data)
            entry["bytes_out"] += len(data)

    def handle_one_request(self):
        try:
            super().handle_one_request()
        except Aborted:
            self.close_connection = True

    # -- proxying

    def dispatch(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path.startswith("/_testbed/"):
            return self.testbed(url)
        repository = repository_of(self.path)
        entry = {"method": self.command, "path": self.path, "status": 0,
                 "bytes_in": 0, "bytes_out": 0, "fault": None, "at": round(time.time(), 3),
                 "authorized": self.headers.get("Authorization") is not None}
        started = time.monotonic()
        try:
            self.serve(repository, entry)
        except (OSError, http.client.HTTPException) as e:
            # the client went away, or the registry broke off mid-answer
            entry["error"] = repr(e)
            self.close_connection = True
            log(self.server.label, f"{self.command} {self.path}: {e!r}")
        finally:
            entry["ms"] = round((time.monotonic() - started) * 1000, 1)
            self.server.stats.add(repository, entry)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = dispatch

    def serve(self, repository: str, entry: dict):
        faults = self.server.faults
        peeked = self.peek_body() if repository and faults.looks_at_bodies(repository) else None
        authorized = self.headers.get("Authorization") is not None
        rule = faults.take(repository, self.command, self.path, peeked, authorized) if repository else None
        if rule is not None:
            entry["fault"] = rule.kind
            log(self.server.label, f"fault {rule.doc} on {self.command} {self.path}")
            if rule.delay:
                time.sleep(rule.delay)
            if rule.drop:
                self.reset(entry)
            if rule.stall:
                time.sleep(rule.stall)
                self.reset(entry)
        body = self.request_body(entry, rule, peeked)
        if rule is not None and rule.status is not None:
            for _ in body or ():
                pass
            return self.answer_fault(rule, entry)
        if rule is not None and rule.expire_token:
            for _ in body or ():
                pass
            return self.answer_expired(entry)
        if rule is not None and rule.redirect:
            for _ in body or ():
                pass
            entry["location"] = rule.redirect
            return self.send_small(307, {}, {"Location": rule.redirect}, entry)
        if rule is not None and rule.serve:
            for _ in body or ():
                pass
            return self.answer_served(rule.serve, entry)
        if self.answered_here(entry) or self.paged_tags(entry):
            for _ in body or ():
                pass
            return
        headers = [(k, v) for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP]
        headers += [("X-Forwarded-Proto", "https"), ("X-Forwarded-For", self.client_address[0])]
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        conn = http.client.HTTPConnection(self.server.upstream, timeout=600)
        try:
            try:
                path = without_mount(self.path) if rule is not None and rule.refuse_mount else self.path
                conn.putrequest(self.command, path, skip_host=True, skip_accept_encoding=True)
                for k, v in headers:
                    conn.putheader(k, v)
                if chunked:
                    conn.putheader("Transfer-Encoding", "chunked")
                conn.endheaders()
                for data in body or ():
                    conn.send(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
                if chunked:
                    conn.send(b"0\r\n\r\n")
                resp = conn.getresponse()
            except (OSError, http.client.HTTPException) as e:
                self.close_connection = True
                return self.send_small(502, {"errors": [{"code": "UNAVAILABLE", "message": f"upstream: {e}"}]},
                                       entry=entry)
            self.relay(resp, entry, rule, has_request_body=body is not None)
        finally:
            conn.close()

    def paged_tags(self, entry: dict) -> bool:
        """Answers a paged tag list request (see the header); False for any other request."""
        url = urllib.parse.urlsplit(self.path)
        found = TAGS_PATH.match(url.path)
        query = urllib.parse.parse_qs(url.query)
        if self.command != "GET" or not found or not ({"n", "last"} & query.keys()):
            return False
        try:
            n = int(query.get("n", [str(MOST_TAGS)])[0])
        except ValueError:
            n = 0
        if not 1 <= n <= MOST_TAGS:
            self.send_small(400, {"errors": [{"code": "PAGINATION_NUMBER_INVALID",
                                              "message": f"n must be 1 to {MOST_TAGS}"}]}, entry=entry)
            return True
        conn = http.client.HTTPConnection(self.server.upstream, timeout=60)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() == "authorization"}
            conn.request("GET", url.path, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        extra = {}
        status, reason = resp.status, resp.reason
        if resp.status == 200:
            tags = sorted(json.loads(data).get("tags") or [])
            last = query.get("last", [None])[0]
            if last is not None:
                tags = [tag for tag in tags if tag > last]
            # A repository given a page size gets pages no longer, whatever n asks.
            n = min(n, self.server.etags.get(found.group(1)) or n)
            page = tags[:n]
            if len(tags) > n:
                extra["Link"] = f'<{url.path}?n={n}&last={urllib.parse.quote(page[-1])}>; rel="next"'
            data = json.dumps({"name": found.group(1), "tags": page}).encode()
            if found.group(1) in self.server.etags:
                extra["ETag"] = '"%s"' % hashlib.sha256(data + extra.get("Link", "").encode()).hexdigest()
                if self.headers.get("If-None-Match") == extra["ETag"]:
                    self.send_response_only(304, "Not Modified")
                    self.log_request(304)
                    self.send_header("ETag", extra["ETag"])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    entry["status"] = 304
                    return True
        else:
            extra = {k: v for k, v in resp.getheaders() if k.lower() == "www-authenticate"}
        self.send_response_only(status, reason)
        self.log_request(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in extra.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        entry["status"] = resp.status
        entry["bytes_out"] += len(data)
        return True

    def relay(self, resp, entry: dict, rule, has_request_body: bool):
        entry["status"] = resp.status
        if rule is not None and rule.lose_answer:
            resp.read()  # the registry has acted; its answer never reaches the client
            entry["status"] = f"lost {resp.status}"
            self.reset(entry)
        location = resp.getheader("Location")
        if location and rule is not None and rule.relocate:
            moved = urllib.parse.urlsplit(location)
            origin = urllib.parse.urlsplit(rule.relocate)
            location = urllib.parse.urlunsplit(moved._replace(scheme=origin.scheme, netloc=origin.netloc))
        if location:
            entry["location"] = location
        if rule is not None and rule.delay_answer:
            time.sleep(rule.delay_answer)
        self.send_response_only(resp.status, resp.reason)
        self.log_request(resp.status)
        retyped = rule is not None and rule.content_type is not None
        for k, v in resp.getheaders():
            if k.lower() == "location":
                self.send_header(k, location)
            elif k.lower() not in HOP_BY_HOP and not (retyped and k.lower() == "content-type"):
                self.send_header(k, v)
        if retyped:
            self.send_header("Content-Type", rule.content_type)
        for k, v in self.extra_headers(resp.status).items():
            self.send_header(k, v)
        no_body = self.command == "HEAD" or resp.status in (204, 304) or resp.status < 200
        length = resp.getheader("Content-Length")
        chunked = not no_body and length is None
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        acts = rule is not None and not rule.acts_on_request(has_request_body)
        limit = rule.reset_after if acts else None
        if no_body:
            if limit is not None:
                self.reset(entry)
            return
        corrupt_at = None
        if acts and rule.corrupt and 200 <= resp.status < 300:
            corrupt_at = rule.corrupt_at if rule.corrupt_at is not None else int(length or 0) // 2
        started = time.monotonic()
        sent = 0
        for data in ReadAhead(iter(lambda: resp.read(CHUNK), b"")):
            if corrupt_at is not None and sent <= corrupt_at < sent + len(data):
                i = corrupt_at - sent
                data = data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:]
            cut = limit is not None and sent + len(data) >= limit
            if cut:
                data = data[:limit - sent]
            if data:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
            sent += len(data)
            entry["bytes_out"] = sent
            if cut:
                self.reset(entry)
            if acts:
                pace(rule.rate, sent, started)
        if limit is not None:
            self.reset(entry)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")


def unsent(sock) -> int:
    """Bytes in a socket's send queue not yet sent (Linux TIOCOUTQ)."""
    return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0]


class ReadAhead:
    """Iterates `pieces` read ahead by a thread (at most DEPTH pieces), so that reading one
    side of the proxy overlaps writing the other. An exception in the reader comes out of
    the iteration; close() stops the reader when the consumer gives up early."""

    DEPTH = 8
    END = object()

    def __init__(self, pieces):
        self.queue = queue.Queue(self.DEPTH)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.pump, args=(pieces,), daemon=True)
        self.thread.start()

    def pump(self, pieces):
        try:
            for piece in pieces:
                if not self.put(piece):
                    return
            self.put(self.END)
        except BaseException as e:  # handed to the consumer, Aborted included
            self.put(e)

    def put(self, item) -> bool:
        while not self.stopped.is_set():
            try:
                self.queue.put(item, timeout=0.5)
                return True
            except queue.Full:
                pass
        return False

    def __iter__(self):
        try:
            while True:
                item = self.queue.get()
                if item is self.END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self.close()

    def close(self):
        self.stopped.set()


def pace(rate: float, done: int, started: float):
    """Sleeps so that `done` bytes since `started` stay within `rate` bytes per second."""
    if rate > 0:
        ahead = done / rate - (time.monotonic() - started)
        if ahead > 0:
            time.sleep(ahead)


# ---------------------------------------------------------------- servers


class TLSServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, handler, cert, key):
        super().__init__(addr, handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        ctx.set_alpn_protocols(["http/1.1"])
        # handshake in the handler thread, so one slow client blocks nobody
        self.socket = ctx.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)

    def finish_request(self, request, client_address):
        request.settimeout(600)
        # As registries' own servers do (Go's net sets it on every connection): without it,
        # a response's second write (its body after its headers, a handshake's later records)
        # waits for the client's delayed ACK, 40 ms on Linux, on every request.
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        request.do_handshake()
        super().finish_request(request, client_address)

    def handle_error(self, request, client_address):
        log(getattr(self, "label", "server"), f"error serving {client_address}: {sys.exc_info()[1]!r}")


def hostport(text: str):
    host, _, port = text.rpartition(":")
    return host, int(port)


def front_server(listen: str, handler, cert: str, key: str, upstream: str, label: str) -> TLSServer:
    """A TLS front for the plain-HTTP registry at `upstream`, with no faults yet."""
    server = TLSServer(hostport(listen), handler, cert, key)
    server.upstream = upstream
    server.label = label
    server.faults = Faults()
    server.stats = Stats()
    server.etags = {}
    return server


def main():
    ap = argparse.ArgumentParser(description="TLS front of a bed registry: faults and counters")
    ap.add_argument("--listen", required=True, help="HOST:PORT to serve TLS on")
    ap.add_argument("--upstream", required=True, help="HOST:PORT of the plain-HTTP registry")
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--label", default="front", help="prefix of log lines")
    args = ap.parse_args()
    server = front_server(args.listen, FrontHandler, args.cert, args.key, args.upstream, args.label)
    log(args.label, f"front on {args.listen} -> {args.upstream}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
