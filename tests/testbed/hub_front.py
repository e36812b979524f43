#!/usr/bin/env python3
# tests/testbed/hub_front.py -- owned by the ecrcp test bed (tests/testbed/).
#
# The front of the fake Docker Hub, in one process with two TLS listeners:
#
#  * token server (auth.docker.io):  GET /token?service=..&scope=.. (anonymous or
#    HTTP basic) and POST /token (OAuth2 password grant, as `docker login` may use).
#    Hands out RS256 JWTs the registry accepts (`auth: token:` in its config):
#    anonymous callers get `pull` on repositories that exist, known users (--user
#    NAME:PASS) get `pull,push`. Wrong credentials get 401 like Docker Hub.
#    As on Docker Hub, a repository that does not exist gets a token without
#    access, so the registry answers 401 insufficient_scope, not 404.
#
#  * reverse proxy (registry-1.docker.io): front.py's proxy (faults and counters,
#    /_testbed/faults and /_testbed/stats, see there) to the real registry
#    (docker-registry on a loopback port, plain HTTP), adding Docker Hub's
#    rate-limit headers to manifest responses:
#        ratelimit-limit: 100;w=21600
#        ratelimit-remaining: N;w=21600
#    Each manifest GET answered 200 uses one pull (HEAD is free, as on Docker
#    Hub). With enforcement on, a manifest GET at remaining=0 gets Docker Hub's
#    429 TOOMANYREQUESTS. Tests drive it through
#        GET  /_testbed/ratelimit  -> {"limit":..,"remaining":..,"window":..,"enforce":..,"spent":[..]}
#        POST /_testbed/ratelimit  with a JSON body setting any of those keys
#    "spent": [NAME, ...] spends the allowance for those repositories alone: their
#    manifest GETs get the 429 (and their manifest answers remaining=0) while every
#    other repository's pulls go on, so that tests running at the same time are not
#    affected.
#        POST /_testbed/private    {"repository": NAME}: only known users may read NAME
#
#  * token throttling, per repository, so that tests running at the same time
#    are not affected: token requests whose scope names the repository get
#    STATUS (429 as Docker Hub's auth.docker.io sends it, or 503) with
#    `Retry-After: RETRY_AFTER`, the next TIMES times (always when TIMES is
#    absent). `"status": null` lifts it.
#        POST /_testbed/token  {"repository": "library/x", "status": 429,
#                               "retry_after": "3600", "times": 1}
#        GET  /_testbed/token  -> the throttles in force
#
# Needs `cryptography` (RS256 signing); everything else is the standard library.

import argparse
import base64
import datetime
import http.client
import http.server
import json
import re
import sys
import threading
import time
import urllib.parse
import uuid

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

import front
from front import write_json

TOKEN_TTL = 300
MANIFEST_PATH = re.compile(r"^/v2/(.+)/manifests/([^/?]+)(\?.*)?$")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def log(msg: str):
    sys.stderr.write(f"hub_front: {msg}\n")
    sys.stderr.flush()


# ---------------------------------------------------------------- tokens


class Signer:
    def __init__(self, key_path, cert_path, issuer, service):
        with open(key_path, "rb") as f:
            self.key = serialization.load_pem_private_key(f.read(), password=None)
        with open(cert_path, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        self.x5c = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]
        self.issuer = issuer
        self.service = service

    def token(self, subject: str, access: list) -> str:
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": self.x5c}
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "exp": now + TOKEN_TTL,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        signing_input = (b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())).encode()
        signature = self.key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return signing_input.decode() + "." + b64url(signature)


def repositories(scopes: list) -> list:
    """(type, name, actions) of each resource in repository:NAME:ACTIONS scopes."""
    found = []
    for scope in scopes:
        for one in scope.split(" "):
            parts = one.split(":")
            if len(parts) >= 3:
                found.append((parts[0], ":".join(parts[1:-1]), parts[-1].split(",")))
    return found


# Repositories that only known users may read, as a private repository on Docker Hub
# (POST /_testbed/private {"repository": NAME} on the proxy adds one).
PRIVATE = set()


def grant(scopes: list, user: str | None, exists) -> list:
    """repository:NAME:ACTIONS scopes -> the JWT `access` list for this caller.
    Anonymous callers get nothing on a repository that does not `exists(name)`, or is PRIVATE."""
    allowed = {"pull", "push"} if user else {"pull"}
    access = []
    for rtype, name, actions in repositories(scopes):
        if rtype == "repository" and not user and (name in PRIVATE or not exists(name)):
            granted = []
        elif rtype == "repository":
            granted = [a for a in actions if a in allowed or (a == "*" and user)]
        elif rtype == "registry" and name == "catalog" and user:
            granted = [a for a in actions if a == "*"]
        else:
            granted = []
        access.append({"type": rtype, "name": name, "actions": granted})
    return access


class Throttles:
    """Token requests to answer with an error, by repository (see the header)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.by_repository = {}

    def snapshot(self):
        with self.lock:
            return dict(self.by_repository)

    def update(self, doc: dict):
        name = doc["repository"]
        with self.lock:
            if doc.get("status") is None:
                self.by_repository.pop(name, None)
            else:
                self.by_repository[name] = {"status": int(doc["status"]),
                                            "retry_after": str(doc.get("retry_after", "")),
                                            "times": doc.get("times")}

    def take(self, names):
        """The throttle for the first of `names` that has one, counting this use."""
        with self.lock:
            for name in names:
                found = self.by_repository.get(name)
                if found is None:
                    continue
                if found["times"] is not None:
                    found["times"] -= 1
                    if found["times"] <= 0:
                        del self.by_repository[name]
                return found
        return None


class TokenHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-auth.docker.io"

    def log_message(self, fmt, *args):
        log(f"token {self.address_string()} {fmt % args}")

    def send_json(self, status: int, doc: dict, extra=None):
        write_json(self, status, doc, extra)

    def check_user(self, name: str, password: str):
        return self.server.users.get(name) == password

    def basic_user(self):
        """None for anonymous, the user name, or False for bad credentials."""
        header = self.headers.get("Authorization", "")
        if not header.lower().startswith("basic "):
            return None
        try:
            name, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return name if self.check_user(name, password) else False

    def exists(self, name: str) -> bool:
        """Whether the registry holds the repository: its tag list answers 200."""
        token = self.server.signer.token("hub_front", [{"type": "repository", "name": name, "actions": ["pull"]}])
        conn = http.client.HTTPConnection(self.server.upstream, timeout=30)
        try:
            conn.request("GET", f"/v2/{name}/tags/list", headers={"Authorization": f"Bearer {token}"})
            return conn.getresponse().status == 200
        finally:
            conn.close()

    def throttled(self, scopes) -> bool:
        """Answers a throttled repository's token request, as the knob says."""
        found = self.server.throttles.take([name for rtype, name, _ in repositories(scopes)
                                            if rtype == "repository"])
        if found is None:
            return False
        extra = {"Retry-After": found["retry_after"]} if found["retry_after"] else {}
        code = "TOOMANYREQUESTS" if found["status"] == 429 else "UNAVAILABLE"
        self.send_json(found["status"], {"errors": [{"code": code, "message": "testbed throttle"}]}, extra)
        return True

    def issue(self, user, scopes, oauth=False):
        if self.throttled(scopes):
            return
        signer = self.server.signer
        token = signer.token(user or "", grant(scopes, user, self.exists))
        issued = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        doc = {"token": token, "access_token": token, "expires_in": TOKEN_TTL, "issued_at": issued}
        if oauth:
            doc = {"access_token": token, "token_type": "Bearer", "expires_in": TOKEN_TTL,
                   "issued_at": issued, "scope": " ".join(scopes)}
        self.send_json(200, doc)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path != "/token":
            return self.send_json(404, {"details": "not found"})
        query = urllib.parse.parse_qs(url.query)
        user = self.basic_user()
        if user is False:
            return self.send_json(401, {"details": "incorrect username or password"},
                                  {"WWW-Authenticate": 'Basic realm="fake-auth.docker.io"'})
        self.issue(user, query.get("scope", []))

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        form = urllib.parse.parse_qs(self.rfile.read(length).decode())
        if url.path != "/token":
            return self.send_json(404, {"details": "not found"})
        if form.get("grant_type", [""])[0] != "password":
            return self.send_json(400, {"error": "unsupported_grant_type"})
        name = form.get("username", [""])[0]
        if not self.check_user(name, form.get("password", [""])[0]):
            return self.send_json(401, {"error": "invalid_grant",
                                        "details": "incorrect username or password"})
        scopes = form.get("scope", [""])[0].split()
        self.issue(name, scopes, oauth=True)


# ---------------------------------------------------------------- rate-limit proxy


class RateLimit:
    def __init__(self, limit: int, window: int):
        self.lock = threading.Lock()
        self.limit = limit
        self.remaining = limit
        self.window = window
        self.enforce = False
        self.spent = set()

    def snapshot(self):
        with self.lock:
            return {"limit": self.limit, "remaining": self.remaining,
                    "window": self.window, "enforce": self.enforce, "spent": sorted(self.spent)}

    def update(self, doc: dict):
        with self.lock:
            for key in ("limit", "remaining", "window"):
                if key in doc:
                    setattr(self, key, int(doc[key]))
            if "enforce" in doc:
                self.enforce = bool(doc["enforce"])
            if "spent" in doc:
                self.spent = {str(name) for name in doc["spent"] or []}

    def exhausted(self, repository: str):
        with self.lock:
            return repository in self.spent or (self.enforce and self.remaining <= 0)

    def use_one(self):
        with self.lock:
            self.remaining = max(0, self.remaining - 1)

    def headers(self, repository: str):
        with self.lock:
            remaining = 0 if repository in self.spent else self.remaining
            return {"ratelimit-limit": f"{self.limit};w={self.window}",
                    "ratelimit-remaining": f"{remaining};w={self.window}",
                    "docker-ratelimit-source": "127.0.0.1"}


class ProxyHandler(front.FrontHandler):
    """front.py's proxy, with Docker Hub's rate limit and this bed's hub knobs added."""

    def is_manifest(self) -> bool:
        return bool(MANIFEST_PATH.match(self.path)) and self.command in ("GET", "HEAD")

    def testbed_extra(self, url) -> bool:
        if url.path == "/_testbed/ratelimit":
            self.control()
        elif url.path == "/_testbed/token":
            self.throttle_control()
        elif url.path == "/_testbed/private" and self.command == "POST":
            self.make_private()
        else:
            return False
        return True

    def answered_here(self, entry) -> bool:
        rl = self.server.ratelimit
        if self.is_manifest() and self.command == "GET" and rl.exhausted(front.repository_of(self.path)):
            self.send_small(429, {"errors": [{
                "code": "TOOMANYREQUESTS",
                "message": "You have reached your pull rate limit. You may increase the limit "
                           "by authenticating and upgrading: https://www.docker.com/increase-rate-limit"}]},
                rl.headers(front.repository_of(self.path)), entry)
            return True
        return False

    def extra_headers(self, status) -> dict:
        if not self.is_manifest():
            return {}
        rl = self.server.ratelimit
        if status == 200 and self.command == "GET":
            rl.use_one()
        return rl.headers(front.repository_of(self.path))

    # -- control endpoints

    def control(self):
        rl = self.server.ratelimit
        if self.command == "POST":
            try:
                rl.update(self.read_json())
            except (ValueError, TypeError) as e:
                return self.send_small(400, {"error": str(e)})
        self.send_small(200, rl.snapshot())

    def throttle_control(self):
        throttles = self.server.throttles
        if self.command == "POST":
            try:
                throttles.update(self.read_json())
            except (ValueError, TypeError, KeyError) as e:
                return self.send_small(400, {"error": repr(e)})
        self.send_small(200, throttles.snapshot())

    def make_private(self):
        try:
            PRIVATE.add(self.read_json()["repository"])
        except (ValueError, TypeError, KeyError) as e:
            return self.send_small(400, {"error": repr(e)})
        self.send_small(200, {"private": sorted(PRIVATE)})


# ---------------------------------------------------------------- servers


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--token-listen", required=True, help="HOST:PORT of the token server")
    ap.add_argument("--proxy-listen", required=True, help="HOST:PORT of the registry proxy")
    ap.add_argument("--upstream", required=True, help="HOST:PORT of the plain-HTTP registry")
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--signing-key", required=True)
    ap.add_argument("--signing-cert", required=True)
    ap.add_argument("--issuer", default="auth.docker.io")
    ap.add_argument("--service", default="registry.docker.io")
    ap.add_argument("--user", action="append", default=[], help="NAME:PASSWORD allowed to push")
    ap.add_argument("--ratelimit", type=int, default=100)
    ap.add_argument("--ratelimit-window", type=int, default=21600)
    args = ap.parse_args()

    token = front.TLSServer(front.hostport(args.token_listen), TokenHandler, args.cert, args.key)
    token.label = "hub_front token"
    token.signer = Signer(args.signing_key, args.signing_cert, args.issuer, args.service)
    token.users = dict(u.split(":", 1) for u in args.user)
    token.upstream = args.upstream
    token.throttles = Throttles()

    proxy = front.front_server(args.proxy_listen, ProxyHandler, args.cert, args.key, args.upstream,
                               "hub_front proxy")
    proxy.ratelimit = RateLimit(args.ratelimit, args.ratelimit_window)
    proxy.throttles = token.throttles

    threading.Thread(target=token.serve_forever, daemon=True).start()
    log(f"token server on {args.token_listen}, proxy on {args.proxy_listen} -> {args.upstream}")
    try:
        proxy.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
