#!/usr/bin/env python3
# tests/testbed/gcp_front.py -- owned by the ecrcp test bed (tests/testbed/).
#
# The bed's Google Cloud, in one process with three listeners that share their state
# (the tokens issued, the Artifact Registry repositories):
#
#  * metadata server (plain HTTP, `metadata.google.internal`; GCE_METADATA_HOST=ADDR):
#    GET /computeMetadata/v1/instance/service-accounts/default/{token,email,scopes,?recursive=true},
#    /project/project-id, /project/numeric-project-id, /universe/universe-domain. As on GCE,
#    a request without `Metadata-Flavor: Google`, or one with `X-Forwarded-For`, gets 403;
#    every answer carries `Metadata-Flavor: Google`.
#
#  * Google APIs (TLS; oauth2.googleapis.com, sts.googleapis.com,
#    artifactregistry.googleapis.com on one listener, told apart by path):
#      POST /token     (oauth2) the JWT bearer grant (an RS256 assertion signed with the key of
#                      the service-account file this process writes; signature, iss, aud,
#                      iat/exp and scope checked) and the refresh_token grant (the client and
#                      refresh token of the authorized_user file written here); form or JSON
#      POST /v1/token  (sts) the token exchange of the external_account file written here (its
#                      audience, the subject token file's exact contents, the token types)
#      GET /_testbed/subject-token  an identity provider's token URL, as GitHub Actions' (the
#                      subject token as {"value": ...}; wants `Authorization: bearer
#                      ecrcp-bed-request`): what external-account-url.json reads
#      POST /v1/projects/-/serviceAccounts/EMAIL:generateAccessToken  (iamcredentials) the
#                      bed's service account impersonated by a token the STS issued (the
#                      federated principal), {"scope": [...], "lifetime": "Ns"} -> {"accessToken",
#                      "expireTime"}
#      /v1/projects/P/locations/L/repositories[/R]  GET (list, get), POST ?repositoryId=R with
#                      {"format": "DOCKER", ...} and DELETE, both answering a long-running
#                      operation; GET /v1/projects/P/locations/L/operations/ID reports
#                      `done: true` on its POLLS-th poll (2), and only then does the change
#                      happen; GET .../repositories/R/dockerImages lists its images
#    Anything else gets Google's error JSON. The API wants `Authorization: Bearer TOKEN` with a
#    token issued here (token endpoint, STS or metadata server), or a self-signed JWT of the
#    bed's service account (AIP-4111: what google-cloud-auth sends for a key file), whose
#    scopes include cloud-platform.
#
#  * registry front (TLS; LOCATION-docker.pkg.dev, gcr.io and us., eu., asia.gcr.io): front.py's
#    proxy (faults, counters) before a docker-registry, with Artifact Registry's auth: Basic
#    `oauth2accesstoken:TOKEN` (a token issued above) or `_json_key:KEYFILE` (`_json_key_base64`)
#    on any request, or
#    the challenge flow (401 `Bearer realm="https://HOST/v2/token",service="HOST"`, then
#    GET /v2/token with that Basic for a bearer token). A repository path names its Artifact
#    Registry repository (`PROJECT/REPO/IMAGE` on LOCATION-docker.pkg.dev; on gcr.io
#    `PROJECT/IMAGE` lives in the repository `gcr.io` of location `us`): while that repository
#    does not exist every request for it gets GAR's 404 NAME_UNKNOWN `Repository "REPO" not
#    found`; a name without an image gets 400 NAME_INVALID.
#
# Test knobs on the API listener: GET /_testbed/gcp (repositories, operations, counts of
# tokens issued by grant and of API calls); POST /_testbed/gcp with any of
#   {"expire_tokens": true}   every token issued so far (access and registry tokens) expires
#   {"polls": N}              operations report done on their Nth poll from now on (N >= 1)
#   {"fail_operations": N, "error": {"code": 9, "message": ...}}  the next N operations end
#                             done with that error (default FAILED_PRECONDITION) and change nothing
#   {"throttle_api": N}       the next N Artifact Registry API calls get 429 RESOURCE_EXHAUSTED,
#                             as a project's used-up request quota answers (0 lifts it)
#   {"deny_create": true}     creates get 403 PERMISSION_DENIED, as without
#                             artifactregistry.repositories.create (false lifts it)
# Files it writes to --dir (see README.md):
# service-account.json, authorized-user.json, external-account.json,
# external-account-impersonated.json (the same, with a service_account_impersonation_url),
# external-account-url.json (its subject token from /_testbed/subject-token, a JSON field),
# subject-token.jwt.
#
# Needs `cryptography` (RS256); everything else is the standard library.

import argparse
import base64
import binascii
import datetime
import http.client
import http.server
import json
import os
import re
import secrets
import sys
import threading
import time
import urllib.parse
import uuid

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

import front
from front import write_json

PROJECT = "ecrcp-testbed"
PROJECT_NUMBER = "424242424242"
SA_EMAIL = f"ecrcp-bed@{PROJECT}.iam.gserviceaccount.com"
GCE_EMAIL = f"{PROJECT_NUMBER}-compute@developer.gserviceaccount.com"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
GCE_SCOPES = [CLOUD_PLATFORM, "https://www.googleapis.com/auth/userinfo.email"]
TOKEN_URI = "https://oauth2.googleapis.com/token"
TOKEN_AUDIENCES = {TOKEN_URI, "https://www.googleapis.com/oauth2/v4/token",
                   "https://accounts.google.com/o/oauth2/token"}
STS_URI = "https://sts.googleapis.com/v1/token"
SUBJECT_TOKEN_URL = "https://sts.googleapis.com/_testbed/subject-token"
SUBJECT_TOKEN_REQUEST = "bearer ecrcp-bed-request"
IMPERSONATION_URI = (f"https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/{SA_EMAIL}"
                     ":generateAccessToken")
POOL_AUDIENCE = (f"//iam.googleapis.com/projects/{PROJECT_NUMBER}/locations/global/"
                 "workloadIdentityPools/ecrcp-bed-pool/providers/ecrcp-bed-oidc")
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
SUBJECT_TOKEN_TYPES = {"urn:ietf:params:oauth:token-type:jwt", "urn:ietf:params:oauth:token-type:id_token"}
CLIENT_ID = "764086051850-ecrcpbed.apps.googleusercontent.com"
TOKEN_TTL = 3599
POLLS = 2
AR_API = "artifactregistry.googleapis.com"
SHORT_LIVED = ("Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable "
               "timeframe. Check your iat and exp values in the JWT claim.")
UNAUTHENTICATED = ("Request had invalid authentication credentials. Expected OAuth 2 access token, "
                   "login cookie or other valid authentication credential. See "
                   "https://developers.google.com/identity/sign-in/web/devconsole-project.")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def log(msg: str):
    sys.stderr.write(f"gcp_front: {msg}\n")
    sys.stderr.flush()


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Refused(Exception):
    """A request Google refuses: HTTP status and the JSON body to answer."""

    def __init__(self, status: int, doc: dict):
        super().__init__(doc)
        self.status = status
        self.doc = doc


def oauth_error(status: int, error: str, description: str) -> Refused:
    return Refused(status, {"error": error, "error_description": description})


def api_error(status: int, reason: str, message: str) -> Refused:
    return Refused(status, {"error": {"code": status, "message": message, "status": reason}})


# ---------------------------------------------------------------- JWTs


def sign_jwt(key, header: dict, claims: dict) -> str:
    signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signing_input + "." + b64url(signature)


def verified_claims(token: str, public_key) -> dict:
    """The claims of an RS256 JWT signed by `public_key`; ValueError when it is not one."""
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("not a JWT")
    try:
        header = json.loads(unb64url(parts[0]))
        claims = json.loads(unb64url(parts[1]))
        signature = unb64url(parts[2])
    except (ValueError, binascii.Error) as e:
        raise ValueError(f"undecodable JWT: {e}") from e
    if not isinstance(header, dict) or header.get("alg") != "RS256" or not isinstance(claims, dict):
        raise ValueError("not an RS256 JWT")
    try:
        public_key.verify(signature, (parts[0] + "." + parts[1]).encode(), padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature as e:
        raise ValueError("bad signature") from e
    return claims


# ---------------------------------------------------------------- shared state


class Cloud:
    """The bed's project: its credentials, the tokens issued, the repositories, the operations."""

    def __init__(self, directory: str, polls: int = POLLS, key=None):
        self.lock = threading.Lock()
        self.dir = directory
        self.polls = polls
        self.key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.key_id = secrets.token_hex(20)
        self.client_secret = "bed-" + secrets.token_urlsafe(18)
        self.refresh_token = "1//bed-" + secrets.token_urlsafe(32)
        self.subject_token = sign_jwt(self.key, {"alg": "RS256", "typ": "JWT"}, {
            "iss": "https://bed-idp.example.test", "sub": "system:serviceaccount:ci:ecrcp",
            "aud": POOL_AUDIENCE, "iat": int(time.time()), "exp": int(time.time()) + 86400})
        self.tokens = {}        # access token -> {"principal", "scopes", "expires", "grant"}
        self.repositories = {}  # "projects/P/locations/L/repositories/R" -> repository JSON
        self.operations = {}    # operation name -> {"polls", "apply", "repository", "done", ...}
        self.issued = {}        # grant -> count
        self.calls = {}         # "METHOD kind" -> count
        self.bearer_tables = []  # the registry fronts' token tables (expire_tokens reaches them)
        self.failing = []       # errors the next operations end with (POST /_testbed/gcp)
        self.deny_create = False
        self.throttle_api = 0   # API calls still to answer 429 (POST /_testbed/gcp)

    # -- files handed to the tests

    def service_account(self) -> dict:
        pem = self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()).decode()
        return {"type": "service_account", "project_id": PROJECT, "private_key_id": self.key_id,
                "private_key": pem, "client_email": SA_EMAIL, "client_id": "104242424242424242424",
                "auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": TOKEN_URI,
                "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
                "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/"
                                        + urllib.parse.quote(SA_EMAIL),
                "universe_domain": "googleapis.com"}

    def write_files(self):
        os.makedirs(self.dir, exist_ok=True)
        subject_path = os.path.join(self.dir, "subject-token.jwt")
        files = {
            "subject-token.jwt": self.subject_token,
            "authorized-user.json": {"type": "authorized_user", "client_id": CLIENT_ID,
                                     "client_secret": self.client_secret,
                                     "refresh_token": self.refresh_token,
                                     "quota_project_id": PROJECT, "universe_domain": "googleapis.com"},
            "external-account.json": {"type": "external_account", "audience": POOL_AUDIENCE,
                                      "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
                                      "token_url": STS_URI, "credential_source": {"file": subject_path},
                                      "universe_domain": "googleapis.com"},
            "external-account-url.json": {
                "type": "external_account", "audience": POOL_AUDIENCE,
                "subject_token_type": "urn:ietf:params:oauth:token-type:jwt", "token_url": STS_URI,
                "credential_source": {"url": SUBJECT_TOKEN_URL, "headers": {"Authorization": SUBJECT_TOKEN_REQUEST},
                                      "format": {"type": "json", "subject_token_field_name": "value"}},
                "universe_domain": "googleapis.com"},
            "external-account-impersonated.json": {
                "type": "external_account", "audience": POOL_AUDIENCE,
                "subject_token_type": "urn:ietf:params:oauth:token-type:jwt", "token_url": STS_URI,
                "credential_source": {"file": subject_path},
                "service_account_impersonation_url": IMPERSONATION_URI, "universe_domain": "googleapis.com"},
            # last: its presence tells `run` the others are there too
            "service-account.json": self.service_account(),
        }
        for name, content in files.items():
            path = os.path.join(self.dir, name)
            with open(path + ".tmp", "w") as f:
                f.write(content if isinstance(content, str) else json.dumps(content, indent=2) + "\n")
            os.chmod(path + ".tmp", 0o644)
            os.rename(path + ".tmp", path)

    # -- tokens

    def count(self, table: dict, key: str):
        with self.lock:
            table[key] = table.get(key, 0) + 1

    def issue(self, principal: str, scopes: list, grant: str) -> dict:
        token = "ya29.bed-" + secrets.token_urlsafe(32)
        with self.lock:
            self.tokens[token] = {"principal": principal, "scopes": list(scopes),
                                  "expires": time.time() + TOKEN_TTL, "grant": grant}
            self.issued[grant] = self.issued.get(grant, 0) + 1
        return {"access_token": token, "expires_in": TOKEN_TTL, "token_type": "Bearer"}

    def principal(self, token: str):
        """(principal, scopes) of a live access token issued here, or of a self-signed JWT of the
        bed's service account; None for anything else."""
        with self.lock:
            found = self.tokens.get(token)
        if found is not None:
            return (found["principal"], found["scopes"]) if found["expires"] > time.time() else None
        try:
            claims = verified_claims(token, self.key.public_key())
        except ValueError:
            return None
        now = time.time()
        if claims.get("iss") != SA_EMAIL or not (claims.get("iat", now + 1) <= now + 60 < claims.get("exp", 0) + 60):
            return None
        scopes = str(claims.get("scope", "")).split()
        if not scopes and str(claims.get("aud", "")).rstrip("/") == f"https://{AR_API}":
            scopes = [CLOUD_PLATFORM]
        return (SA_EMAIL, scopes) if scopes else None

    # -- grants

    def jwt_bearer(self, assertion: str) -> dict:
        try:
            claims = verified_claims(assertion, self.key.public_key())
        except ValueError:
            # an unknown signer looks the same as a bad signature to us
            raise oauth_error(400, "invalid_grant", "Invalid JWT Signature.")
        if claims.get("iss") != SA_EMAIL:
            raise oauth_error(400, "invalid_grant", "Invalid grant: account not found")
        if claims.get("aud") not in TOKEN_AUDIENCES:
            raise oauth_error(400, "invalid_grant",
                              f"Invalid JWT: Failed audience check. The right audience is {TOKEN_URI}")
        now = time.time()
        iat, exp = claims.get("iat"), claims.get("exp")
        if not isinstance(iat, int) or not isinstance(exp, int) or not (
                iat <= now + 300 and exp > now and exp - iat <= 3600):
            raise oauth_error(400, "invalid_grant", SHORT_LIVED)
        scopes = str(claims.get("scope", "")).split()
        if not scopes:
            raise oauth_error(400, "invalid_scope", "Invalid OAuth scope or ID token audience provided.")
        return self.issue(claims.get("sub") or SA_EMAIL, scopes, "jwt-bearer")

    def refresh(self, form: dict) -> dict:
        if form.get("client_id") != CLIENT_ID:
            raise oauth_error(401, "invalid_client", "The OAuth client was not found.")
        if form.get("client_secret") != self.client_secret:
            raise oauth_error(401, "invalid_client", "Unauthorized")
        if form.get("refresh_token") != self.refresh_token:
            raise oauth_error(400, "invalid_grant", "Bad Request")
        scopes = str(form.get("scope") or form.get("scopes") or "").split() or [CLOUD_PLATFORM]
        doc = self.issue("user:alice@example.test", scopes, "refresh_token")
        doc["scope"] = " ".join(scopes)
        return doc

    def exchange(self, form: dict) -> dict:
        for field in ("subject_token", "subject_token_type", "audience", "requested_token_type"):
            if not form.get(field):
                raise oauth_error(400, "invalid_request", f"Missing required parameter: {field}")
        if form["requested_token_type"] != ACCESS_TOKEN_TYPE:
            raise oauth_error(400, "invalid_request",
                              f"Invalid value for \"requested_token_type\": {form['requested_token_type']}")
        if form["subject_token_type"] not in SUBJECT_TOKEN_TYPES:
            raise oauth_error(400, "invalid_request",
                              f"Invalid value for \"subject_token_type\": {form['subject_token_type']}")
        if form["audience"] != POOL_AUDIENCE:
            raise oauth_error(400, "invalid_target",
                              "The target service indicated by the \"audience\" parameters is invalid. "
                              "This might either be because the pool or provider is disabled or deleted "
                              "or because it doesn't exist.")
        if form["subject_token"] != self.subject_token:
            raise oauth_error(400, "invalid_grant", "The given subject token is invalid or expired.")
        scopes = str(form.get("scope", "")).split() or [CLOUD_PLATFORM]
        doc = self.issue("principal://iam.googleapis.com/" + POOL_AUDIENCE[2:], scopes, "token-exchange")
        doc["issued_token_type"] = ACCESS_TOKEN_TYPE
        return doc

    def impersonate(self, caller: str, email: str, body: bytes) -> dict:
        """generateAccessToken: the bed's service account, for a token the STS issued."""
        with self.lock:
            found = self.tokens.get(caller)
        if found is None or found["expires"] <= time.time():
            raise api_error(401, "UNAUTHENTICATED", UNAUTHENTICATED)
        if found["grant"] != "token-exchange":
            raise api_error(403, "PERMISSION_DENIED",
                            "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).")
        if email != SA_EMAIL:
            raise api_error(404, "NOT_FOUND", f"Service account projects/-/serviceAccounts/{email} not found.")
        try:
            doc = json.loads(body or b"{}")
        except ValueError:
            raise api_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        scopes = doc.get("scope") if isinstance(doc, dict) else None
        if not isinstance(scopes, list) or not scopes or not all(isinstance(x, str) for x in scopes):
            raise api_error(400, "INVALID_ARGUMENT", "Scope required.")
        lifetime = str(doc.get("lifetime") or "3600s")
        if not re.match(r"^\d+(\.\d+)?s$", lifetime) or not 0 < float(lifetime[:-1]) <= 3600:
            raise api_error(400, "INVALID_ARGUMENT", f"Invalid lifetime \"{lifetime}\": at most 3600s.")
        issued = self.issue(SA_EMAIL, scopes, "impersonation")
        expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=issued["expires_in"])
        return {"accessToken": issued["access_token"], "expireTime": expires.strftime("%Y-%m-%dT%H:%M:%SZ")}

    # -- Artifact Registry

    def operation(self, parent: str, apply, response) -> dict:
        name = f"{parent}/operations/{uuid.uuid4()}"
        with self.lock:
            error = self.failing.pop(0) if self.failing else None
            self.operations[name] = {"polls": 0, "apply": apply, "response": response, "done": False,
                                     "error": error}
        return {"name": name, "metadata": {
            "@type": "type.googleapis.com/google.devtools.artifactregistry.v1.OperationMetadata"}}

    def poll(self, name: str) -> dict:
        with self.lock:
            op = self.operations.get(name)
            if op is None:
                raise api_error(404, "NOT_FOUND", f"Operation {name} not found.")
            op["polls"] += 1
            if not op["done"] and op["polls"] >= self.polls:
                if op["error"] is None:
                    op["apply"]()
                op["done"] = True
            doc = {"name": name, "metadata": {
                "@type": "type.googleapis.com/google.devtools.artifactregistry.v1.OperationMetadata"}}
            if op["done"] and op["error"] is not None:
                doc["done"] = True
                doc["error"] = op["error"]
            elif op["done"]:
                doc["done"] = True
                doc["response"] = op["response"]
            return doc

    def repository(self, name: str):
        with self.lock:
            found = self.repositories.get(name)
            return None if found is None else dict(found)

    def control(self, doc: dict):
        """POST /_testbed/gcp (see the header)."""
        if not isinstance(doc, dict) or set(doc) - {"expire_tokens", "polls", "fail_operations", "error",
                                                     "deny_create", "throttle_api"}:
            raise ValueError(f"unknown knobs in {doc!r}")
        with self.lock:
            if doc.get("expire_tokens"):
                for table in (self.tokens, *self.bearer_tables):
                    for found in table.values():
                        found["expires"] = 0
            if "polls" in doc:
                if int(doc["polls"]) < 1:
                    raise ValueError("polls is 1 or more")
                self.polls = int(doc["polls"])
            if "fail_operations" in doc:
                error = doc.get("error") or {"code": 9, "message": "the operation failed (testbed)"}
                self.failing = [dict(error) for _ in range(int(doc["fail_operations"]))]
            if "deny_create" in doc:
                self.deny_create = bool(doc["deny_create"])
            if "throttle_api" in doc:
                if int(doc["throttle_api"]) < 0:
                    raise ValueError("throttle_api is 0 or more")
                self.throttle_api = int(doc["throttle_api"])

    def snapshot(self) -> dict:
        with self.lock:
            return {"repositories": sorted(self.repositories), "issued": dict(self.issued),
                    "calls": dict(self.calls),
                    "operations": {k: {"polls": v["polls"], "done": v["done"]} for k, v in self.operations.items()}}


# ---------------------------------------------------------------- request bodies


def read_body(handler) -> bytes:
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else b""


def read_form(handler) -> dict:
    """The fields of a form or JSON body (Google's token endpoints take either)."""
    body = read_body(handler)
    if "json" in handler.headers.get("Content-Type", ""):
        try:
            doc = json.loads(body or b"{}")
        except ValueError:
            raise oauth_error(400, "invalid_request", "Invalid JSON payload received.")
        if not isinstance(doc, dict):
            raise oauth_error(400, "invalid_request", "Invalid JSON payload received.")
        return {str(k): v for k, v in doc.items()}
    return {k: v[0] for k, v in urllib.parse.parse_qs(body.decode(errors="replace")).items()}


# ---------------------------------------------------------------- metadata server


class MetadataHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Metadata Server for VM"
    sys_version = ""

    def log_message(self, fmt, *args):
        log(f"metadata {self.address_string()} {fmt % args}")

    def answer(self, status: int, body, content_type="application/text"):
        data = (json.dumps(body) if isinstance(body, (dict, list)) else body).encode()
        if isinstance(body, (dict, list)):
            content_type = "application/json"
        self.send_response(status)
        self.send_header("Metadata-Flavor", "Google")
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_GET(self):
        cloud = self.server.cloud
        cloud.count(cloud.calls, "GET metadata")
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        if self.headers.get("X-Forwarded-For") is not None:
            return self.answer(403, "Request denied: X-Forwarded-For header is not allowed.\n", "text/html")
        if self.headers.get("Metadata-Flavor") != "Google":
            return self.answer(403, "Missing required header: \"Metadata-Flavor\": \"Google\"\n", "text/html")
        path = url.path
        account = re.match(r"^/computeMetadata/v1/instance/service-accounts/([^/]+)/(.*)$", path)
        if path in ("/", ""):
            return self.answer(200, "computeMetadata/\n")
        if path == "/computeMetadata/v1/":
            return self.answer(200, "instance/\nproject/\nuniverse/\n")
        if path == "/computeMetadata/v1/project/project-id":
            return self.answer(200, PROJECT)
        if path == "/computeMetadata/v1/project/numeric-project-id":
            return self.answer(200, PROJECT_NUMBER)
        if path == "/computeMetadata/v1/universe/universe-domain":
            return self.answer(200, "googleapis.com")
        if path == "/computeMetadata/v1/instance/service-accounts/":
            return self.answer(200, f"default/\n{GCE_EMAIL}/\n")
        if account is None or account.group(1) not in ("default", GCE_EMAIL):
            return self.answer(404, "Not Found\n", "text/html")
        rest = account.group(2)
        if rest == "" and query.get("recursive", [""])[0] == "true":
            return self.answer(200, {"aliases": ["default"], "email": GCE_EMAIL, "scopes": GCE_SCOPES})
        if rest == "email":
            return self.answer(200, GCE_EMAIL)
        if rest == "scopes":
            return self.answer(200, "".join(s + "\n" for s in GCE_SCOPES))
        if rest == "token":
            asked = [s for s in ",".join(query.get("scopes", [])).split(",") if s]
            return self.answer(200, cloud.issue(GCE_EMAIL, asked or GCE_SCOPES, "metadata"))
        return self.answer(404, "Not Found\n", "text/html")


# ---------------------------------------------------------------- Google APIs

REPOS = re.compile(r"^/v1/(projects/[^/]+/locations/[^/]+)/repositories$")
REPO = re.compile(r"^/v1/(projects/[^/]+/locations/[^/]+/repositories/[^/]+)$")
IMAGES = re.compile(r"^/v1/(projects/[^/]+/locations/[^/]+/repositories/[^/]+)/dockerImages$")
OPERATION = re.compile(r"^/v1/(projects/[^/]+/locations/[^/]+/operations/[^/]+)$")
IMPERSONATE = re.compile(r"^/v1/projects/-/serviceAccounts/([^/:]+):generateAccessToken$")
REPOSITORY_ID = re.compile(r"^[a-z]([a-z0-9-]*[a-z0-9])?$|^gcr\.io$|^[a-z-]+\.gcr\.io$")
LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
KMS_KEY = re.compile(r"^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$")
FORMATS = {"DOCKER", "MAVEN", "NPM", "APT", "YUM", "PYTHON", "GO", "KFP", "GENERIC"}
REPOSITORY_FIELDS = {"format", "description", "labels", "kmsKeyName", "dockerConfig", "mode",
                     "cleanupPolicies", "cleanupPolicyDryRun", "name"}


class ApiHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ESF"

    def log_message(self, fmt, *args):
        log(f"api {self.address_string()} {fmt % args}")

    def dispatch(self):
        cloud = self.server.cloud
        url = urllib.parse.urlsplit(self.path)
        try:
            if url.path == "/_testbed/gcp" and self.command == "POST":
                try:
                    cloud.control(json.loads(read_body(self) or b"{}"))
                except (ValueError, TypeError) as e:
                    return write_json(self, 400, {"error": str(e)})
                return write_json(self, 200, cloud.snapshot())
            if url.path == "/_testbed/gcp" and self.command == "GET":
                return write_json(self, 200, cloud.snapshot())
            if url.path == "/_testbed/subject-token" and self.command == "GET":
                cloud.count(cloud.calls, "GET subject-token")
                if self.headers.get("Authorization", "").lower() != SUBJECT_TOKEN_REQUEST:
                    return write_json(self, 401, {"message": "Bad credentials"})
                return write_json(self, 200, {"count": 1, "value": cloud.subject_token})
            if url.path == "/token":
                cloud.count(cloud.calls, f"{self.command} oauth2")
                return write_json(self, 200, self.oauth2())
            if url.path == "/v1/token":
                cloud.count(cloud.calls, f"{self.command} sts")
                return write_json(self, 200, self.sts())
            if (found := IMPERSONATE.match(url.path)) and self.command == "POST":
                cloud.count(cloud.calls, "POST iamcredentials")
                header = self.headers.get("Authorization", "")
                caller = header[7:].strip() if header.startswith("Bearer ") else ""
                return write_json(self, 200, cloud.impersonate(caller, found.group(1), read_body(self)))
            cloud.count(cloud.calls, f"{self.command} artifactregistry")
            return write_json(self, 200, self.artifact_registry(url))
        except Refused as refused:
            return write_json(self, refused.status, refused.doc)

    do_GET = do_POST = do_DELETE = do_PATCH = do_PUT = dispatch

    def oauth2(self) -> dict:
        if self.command != "POST":
            raise oauth_error(405, "invalid_request", "Method not allowed")
        form = read_form(self)
        grant = form.get("grant_type", "")
        if grant == JWT_BEARER:
            return self.server.cloud.jwt_bearer(str(form.get("assertion", "")))
        if grant == "refresh_token":
            return self.server.cloud.refresh(form)
        if not grant:
            raise oauth_error(400, "invalid_request", "Missing required parameter: grant_type")
        raise oauth_error(400, "unsupported_grant_type", f"Invalid grant_type: {grant}")

    def sts(self) -> dict:
        if self.command != "POST":
            raise oauth_error(405, "invalid_request", "Method not allowed")
        form = read_form(self)
        if form.get("grant_type") != TOKEN_EXCHANGE:
            raise oauth_error(400, "unsupported_grant_type",
                              f"Invalid value for \"grant_type\": {form.get('grant_type', '')}")
        return self.server.cloud.exchange(form)

    def caller(self):
        header = self.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            raise api_error(401, "UNAUTHENTICATED",
                            "Request is missing required authentication credential. Expected OAuth 2 "
                            "access token, login cookie or other valid authentication credential.")
        found = self.server.cloud.principal(header[7:].strip())
        if found is None:
            raise api_error(401, "UNAUTHENTICATED", UNAUTHENTICATED)
        principal, scopes = found
        if CLOUD_PLATFORM not in scopes and not (
                self.command == "GET" and CLOUD_PLATFORM + ".read-only" in scopes):
            raise api_error(403, "PERMISSION_DENIED", "Request had insufficient authentication scopes.")
        return principal

    def artifact_registry(self, url) -> dict:
        cloud = self.server.cloud
        query = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
        body = read_body(self)
        self.caller()
        with cloud.lock:
            throttled = cloud.throttle_api > 0
            cloud.throttle_api = max(0, cloud.throttle_api - 1)
        if throttled:
            raise api_error(429, "RESOURCE_EXHAUSTED",
                            "Quota exceeded for quota metric 'Requests' and limit 'Requests per minute' of "
                            "service 'artifactregistry.googleapis.com'.")
        if self.command == "GET" and (found := OPERATION.match(url.path)):
            return cloud.poll(found.group(1))
        if (found := REPOS.match(url.path)) and self.command == "GET":
            prefix = found.group(1) + "/repositories/"
            with cloud.lock:
                listed = [dict(v) for k, v in sorted(cloud.repositories.items()) if k.startswith(prefix)]
            return {"repositories": listed} if listed else {}
        if (found := REPOS.match(url.path)) and self.command == "POST":
            return self.create(found.group(1), query, body)
        if (found := REPO.match(url.path)) and self.command in ("GET", "DELETE"):
            name = found.group(1)
            repository = cloud.repository(name)
            if repository is None:
                raise api_error(404, "NOT_FOUND", "Requested entity was not found.")
            if self.command == "GET":
                return repository

            def delete():
                cloud.repositories.pop(name, None)
            return cloud.operation(name.split("/repositories/")[0], delete,
                                   {"@type": "type.googleapis.com/google.protobuf.Empty"})
        if (found := IMAGES.match(url.path)) and self.command == "GET":
            name = found.group(1)
            if cloud.repository(name) is None:
                raise api_error(404, "NOT_FOUND", "Requested entity was not found.")
            return self.server.images(name)
        raise api_error(404, "NOT_FOUND", f"Method not found: {self.command} {url.path}")

    def create(self, parent: str, query: dict, body: bytes) -> dict:
        cloud = self.server.cloud
        repository_id = query.get("repositoryId", "")
        if not repository_id:
            raise api_error(400, "INVALID_ARGUMENT", "Invalid repository ID: must not be empty.")
        if not REPOSITORY_ID.match(repository_id) or len(repository_id) > 63:
            raise api_error(400, "INVALID_ARGUMENT",
                            f"Invalid repository ID \"{repository_id}\": repository ID must start with a "
                            "letter, end with a letter or number, and contain only lowercase letters, "
                            "numbers and hyphens.")
        try:
            doc = json.loads(body or b"{}")
        except ValueError:
            raise api_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        if not isinstance(doc, dict):
            raise api_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        unknown = sorted(set(doc) - REPOSITORY_FIELDS)
        if unknown:
            raise api_error(400, "INVALID_ARGUMENT",
                            f"Invalid JSON payload received. Unknown name \"{unknown[0]}\" at 'repository': "
                            "Cannot find field.")
        if doc.get("format") not in FORMATS:
            raise api_error(400, "INVALID_ARGUMENT", "Invalid format: the repository format must be specified.")
        labels = doc.get("labels") or {}
        bad = [f"{k}={v}" for k, v in (labels.items() if isinstance(labels, dict) else [("labels", labels)])
               if not (isinstance(k, str) and LABEL_KEY.match(k) and isinstance(v, str) and LABEL_VALUE.match(v))]
        if bad:
            raise api_error(400, "INVALID_ARGUMENT",
                            f"Invalid labels: {', '.join(bad)}: keys start with a lowercase letter, keys and "
                            "values hold at most 63 lowercase letters, digits, underscores and dashes.")
        kms = doc.get("kmsKeyName")
        if kms is not None and not (isinstance(kms, str) and KMS_KEY.match(kms)):
            raise api_error(400, "INVALID_ARGUMENT", f"Invalid KMS key name \"{kms}\": expected "
                            "projects/PROJECT/locations/LOCATION/keyRings/RING/cryptoKeys/KEY.")
        if cloud.deny_create:
            raise api_error(403, "PERMISSION_DENIED",
                            f"Permission 'artifactregistry.repositories.create' denied on resource "
                            f"'//artifactregistry.googleapis.com/{parent}' (or it may not exist).")
        name = f"{parent}/repositories/{repository_id}"
        with cloud.lock:
            exists = name in cloud.repositories or any(
                not op["done"] and op["response"].get("name") == name for op in cloud.operations.values())
        if exists:
            raise api_error(409, "ALREADY_EXISTS", "the repository already exists")
        stamp = now_rfc3339()
        repository = {k: v for k, v in doc.items() if k != "name"}
        repository.update({"name": name, "mode": doc.get("mode", "STANDARD_REPOSITORY"),
                           "createTime": stamp, "updateTime": stamp, "sizeBytes": "0"})
        response = dict(repository, **{"@type": "type.googleapis.com/google.devtools.artifactregistry.v1.Repository"})

        def create():
            cloud.repositories[name] = repository
        return cloud.operation(parent, create, response)


# ---------------------------------------------------------------- registry front

PKG_HOST = re.compile(r"^([a-z0-9-]+)-docker\.pkg\.dev$")
GCR_HOST = re.compile(r"^(?:(us|eu|asia)\.)?gcr\.io$")
GCR_LOCATIONS = {None: "us", "us": "us", "eu": "europe", "asia": "asia"}
ANONYMOUS = "anonymous"


def ar_repository(host: str, path: str):
    """(Artifact Registry repository name, its short id) a registry path names on `host`; None when
    the path names too little (NAME_INVALID); ("", "") for a host that is not Google's."""
    parts = path.split("/")
    if (found := PKG_HOST.match(host)) is not None:
        if len(parts) < 3:
            return None
        return f"projects/{parts[0]}/locations/{found.group(1)}/repositories/{parts[1]}", parts[1]
    if (found := GCR_HOST.match(host)) is not None:
        if len(parts) < 2:
            return None
        repo = host if found.group(1) else "gcr.io"
        return f"projects/{parts[0]}/locations/{GCR_LOCATIONS[found.group(1)]}/repositories/{repo}", repo
    return "", ""


def registry_error(code: str, message: str) -> dict:
    return {"errors": [{"code": code, "message": message}]}


class RegistryHandler(front.FrontHandler):
    """front.py's proxy, with Artifact Registry's auth and its repositories (see the header)."""

    def host(self) -> str:
        return (self.headers.get("Host") or "").split(":")[0].lower()

    def challenge(self) -> dict:
        host = self.host()
        return {"WWW-Authenticate": f'Bearer realm="https://{host}/v2/token",service="{host}"',
                "Docker-Distribution-API-Version": "registry/2.0"}

    def basic_principal(self, header: str):
        """The principal of Basic oauth2accesstoken:TOKEN or _json_key[_base64]:KEY; None when refused."""
        try:
            user, _, password = base64.b64decode(header[6:].strip()).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        cloud = self.server.cloud
        if user == "oauth2accesstoken":
            with cloud.lock:
                found = cloud.tokens.get(password)
            return found["principal"] if found is not None and found["expires"] > time.time() else None
        if user in ("_json_key", "_json_key_base64"):
            try:
                key = json.loads(password if user == "_json_key" else base64.b64decode(password))
            except (ValueError, binascii.Error):
                return None
            mine = cloud.service_account()
            return SA_EMAIL if isinstance(key, dict) and key.get("private_key") == mine["private_key"] else None
        return None

    def registry_token(self, entry: dict):
        """GET /v2/token?scope=repository:NAME:ACTIONS&service=HOST: a bearer token for those."""
        header = self.headers.get("Authorization", "")
        principal = ANONYMOUS
        if header.startswith("Basic "):
            principal = self.basic_principal(header)
            if principal is None:
                return self.send_small(401, registry_error("UNAUTHORIZED", "Not Authorized."),
                                       {"WWW-Authenticate": f'Basic realm="https://{self.host()}/v2/token"'},
                                       entry)
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        access = {}
        for scope in " ".join(query.get("scope", [])).split():
            parts = scope.split(":")
            if len(parts) >= 3 and parts[0] == "repository":
                access[":".join(parts[1:-1])] = set(parts[-1].split(",")) if principal != ANONYMOUS else set()
        token = "gar.bed-" + secrets.token_urlsafe(32)
        with self.server.cloud.lock:
            self.server.bearers[token] = {"principal": principal, "access": access,
                                          "host": self.host(), "expires": time.time() + TOKEN_TTL}
        self.send_small(200, {"token": token, "access_token": token, "expires_in": TOKEN_TTL,
                              "issued_at": now_rfc3339()}, None, entry)

    def answered_here(self, entry: dict) -> bool:
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/v2/token":
            self.registry_token(entry)
            return True
        header = self.headers.get("Authorization", "")
        repository = front.repository_of(self.path)
        action = "pull" if self.command in ("GET", "HEAD") else "push"
        if header.startswith("Basic "):
            if self.basic_principal(header) is None:
                self.send_small(401, registry_error("UNAUTHORIZED", "Not Authorized."), self.challenge(), entry)
                return True
        elif header.startswith("Bearer "):
            with self.server.cloud.lock:
                found = self.server.bearers.get(header[7:].strip())
            if found is None or found["expires"] <= time.time() or found["host"] != self.host():
                self.send_small(401, registry_error("UNAUTHORIZED", "Not Authorized."), self.challenge(), entry)
                return True
            if repository and action not in found["access"].get(repository, set()):
                named = ar_repository(self.host(), repository)
                resource = named[0] if named else repository
                who = ("Unauthenticated request. Unauthenticated requests do not have permission"
                       if found["principal"] == ANONYMOUS else "Permission")
                verb = "downloadArtifacts" if action == "pull" else "uploadArtifacts"
                self.send_small(403, registry_error(
                    "DENIED", f"{who} \"artifactregistry.repositories.{verb}\" denied on resource "
                              f"\"{resource}\" (or it may not exist)"), None, entry)
                return True
        else:
            self.send_small(401, registry_error("UNAUTHORIZED", "Not Authorized."), self.challenge(), entry)
            return True
        if not repository:
            return False
        named = ar_repository(self.host(), repository)
        if named is None:
            self.send_small(400, registry_error(
                "NAME_INVALID", "Missing image name. Pushes should be of the form docker push "
                                "HOST-NAME/PROJECT-ID/REPOSITORY/IMAGE"), None, entry)
            return True
        if named[0] and self.server.cloud.repository(named[0]) is None:
            self.send_small(404, registry_error("NAME_UNKNOWN", f"Repository \"{named[1]}\" not found"),
                            None, entry)
            return True
        return False


MANIFEST_TYPES = ", ".join([
    "application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json"])


def list_images(upstream: str, repository: str, host_of) -> dict:
    """GET .../dockerImages: one entry per manifest digest the registry holds under an Artifact
    Registry repository, with its tags (untagged manifests cannot be listed here)."""
    project, location, repo = repository.split("/")[1::2]
    prefix = f"{project}/" if repo.endswith("gcr.io") else f"{project}/{repo}/"
    conn = http.client.HTTPConnection(upstream, timeout=30)
    images = []
    try:
        conn.request("GET", "/v2/_catalog?n=1000")
        names = json.loads(conn.getresponse().read() or b"{}").get("repositories") or []
        for name in names:
            if not name.startswith(prefix):
                continue
            conn.request("GET", f"/v2/{name}/tags/list")
            by_digest = {}
            for tag in sorted(json.loads(conn.getresponse().read() or b"{}").get("tags") or []):
                conn.request("HEAD", f"/v2/{name}/manifests/{tag}", headers={"Accept": MANIFEST_TYPES})
                answer = conn.getresponse()
                answer.read()
                digest = answer.getheader("Docker-Content-Digest")
                if answer.status == 200 and digest:
                    by_digest.setdefault((digest, answer.getheader("Content-Type")), []).append(tag)
            image = urllib.parse.quote(name[len(prefix):], safe="")
            for (digest, media_type), tags in sorted(by_digest.items()):
                images.append({"name": f"{repository}/dockerImages/{image}@{digest}",
                               "uri": f"{host_of(location, repo)}/{name}@{digest}",
                               "tags": tags, "mediaType": media_type})
    finally:
        conn.close()
    return {"dockerImages": images} if images else {}


def host_of(location: str, repo: str) -> str:
    if repo.endswith("gcr.io"):
        return repo
    return f"{location}-docker.pkg.dev"


# ---------------------------------------------------------------- servers


def plain_server(listen: str, handler):
    server = http.server.ThreadingHTTPServer(front.hostport(listen), handler)
    server.daemon_threads = True
    return server


def main():
    ap = argparse.ArgumentParser(description="the bed's Google Cloud: metadata server, token endpoints, "
                                             "Artifact Registry API and registry front")
    ap.add_argument("--metadata-listen", required=True, help="HOST:PORT of the metadata server (plain HTTP)")
    ap.add_argument("--api-listen", required=True, help="HOST:PORT of the Google APIs (TLS)")
    ap.add_argument("--registry-listen", required=True, help="HOST:PORT of the registry front (TLS)")
    ap.add_argument("--upstream", required=True, help="HOST:PORT of the plain-HTTP docker-registry")
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--dir", required=True, help="where to write the credential files")
    args = ap.parse_args()

    cloud = Cloud(args.dir)
    cloud.write_files()
    metadata = plain_server(args.metadata_listen, MetadataHandler)
    metadata.cloud = cloud
    api = front.TLSServer(front.hostport(args.api_listen), ApiHandler, args.cert, args.key)
    api.label = "gcp_front api"
    api.cloud = cloud
    api.images = lambda name: list_images(args.upstream, name, host_of)
    registry = front.front_server(args.registry_listen, RegistryHandler, args.cert, args.key, args.upstream,
                                  "gcp_front registry")
    registry.cloud = cloud
    registry.bearers = {}
    cloud.bearer_tables.append(registry.bearers)
    for server in (metadata, api):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    log(f"metadata on {args.metadata_listen}, APIs on {args.api_listen}, registry on "
        f"{args.registry_listen} -> {args.upstream}; credentials in {args.dir}")
    try:
        registry.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
