#!/usr/bin/env python3
# tests/testbed/azure_front.py -- owned by the ecrcp test bed (tests/testbed/).
#
# The bed's Azure: Microsoft Entra ID, the managed-identity endpoints and an Azure
# Container Registry, in one process with three kinds of listener, speaking what the
# real services speak and checking what they check:
#
#  * Entra ID (login.microsoftonline.com, TLS; what AZURE_AUTHORITY_HOST names):
#      POST /{tenant}/oauth2/v2.0/token   the client-credentials grant, with a
#          client_secret, or with a client_assertion (client_assertion_type
#          urn:ietf:params:oauth:client-assertion-type:jwt-bearer) that is a federated
#          token as AKS workload identity projects it: RS256 by the bed's "cluster" key,
#          issuer/subject/audience matching the app's federated credential. `scope` is
#          RESOURCE/.default for a resource the tenant knows. Answers
#          {token_type, expires_in, ext_expires_in, access_token}: a v1 JWT (aud, iss
#          https://sts.windows.net/TID/, tid, oid, appid, exp) signed by the bed's Entra
#          key. Refusals are Entra's error JSON (error, error_description starting with
#          the AADSTS code, error_codes, trace_id, correlation_id, ...).
#      GET /{tenant}/v2.0/.well-known/openid-configuration, GET /{tenant}/discovery/v2.0/keys
#          (the Entra key as a JWKS), GET /common/discovery/instance (MSAL's discovery)
#      POST /_testbed/federated-token {"subject", "issuer", "audience", "expires_in",
#          "signed_by_cluster": bool}: a federated token as a test wants it (a wrong
#          subject, an expired one, one signed by another key); GET /_testbed/identities:
#          the directory below.
#      POST /_testbed/faults {"client_id": ID, "rules": [RULE, ...]}: front.py's rules (a
#          "status" with "code"/"message" for Entra's error, "drop", "delay"; "times",
#          "skip", "every") on the token requests of that client id alone, shared with the
#          metadata listener (where the key is the managed identity's client id)
#  * Managed identity (plain HTTP on loopback):
#      GET /metadata/identity/oauth2/token?api-version=..&resource=..[&client_id|object_id|
#          msi_res_id=..]   IMDS, which needs `Metadata: true` and refuses a request that
#          carries X-Forwarded-For (one that went through a proxy)
#      GET /msi/token?api-version=2019-08-01&resource=..   App Service's endpoint
#          (IDENTITY_ENDPOINT), which needs `X-IDENTITY-HEADER: IDENTITY_HEADER`
#      Both answer {access_token, expires_on, resource, token_type, client_id, ...}, the
#      numbers as strings, as Azure sends them.
#  * ACR (NAME.azurecr.io, TLS): front.py's proxy (faults, counters) in front of a
#    docker-registry whose `auth: token:` trusts the tokens signed here, plus ACR's
#    token server:
#      POST /oauth2/exchange  grant_type=access_token, service, tenant, access_token (an
#          Entra token for ARM, https://management.azure.com or management.core.windows.net,
#          or for ACR, https://containerregistry.azure.net) -> {"refresh_token"}
#      POST /oauth2/token     grant_type=refresh_token, service, scope (repeated or
#          space-separated), refresh_token -> {"access_token"}; or grant_type=password with
#          username 00000000-0000-0000-0000-000000000000 and the refresh token as password
#          (what `docker login -u 0000... -p RT` sends) -> {"access_token", "refresh_token"}
#      GET  /oauth2/token?service=..&scope=..  the same with Basic GUID:REFRESH_TOKEN, plus
#          the refresh token back with offline_token=true (docker login keeps it as the
#          config's identitytoken: how `az acr login`'s config gets one)
#      GET  /_testbed/oauth   the token server's last requests: method, path, status,
#          grant_type, service, scope, username (password grant), basic_user (GET), at;
#          DELETE clears them (how a test tells a refresh-token grant from Basic)
#    Access tokens grant each repository:NAME:ACTIONS scope what the identity's role allows
#    (AcrPush: pull, push; AcrPull: pull). The front itself refuses any registry request
#    whose Authorization is not an ACR access token covering the request (Basic, a refresh
#    token, an Entra token, a token for another repository or action) with ACR's 401
#    challenge: Bearer realm="https://NAME/oauth2/token",service="NAME"[,scope=..]. So
#    Basic with the GUID user and an empty password (docker's config after `az acr
#    login`, sent as is) is refused, as ACR refuses it.
#
#   azure_front.py serve --entra-listen 127.0.0.41:443 --acr-listen 127.0.0.42:443 \
#       --upstream 127.0.0.42:5000 --imds-listen 127.0.0.43:80 --registry ecrcpbed.azurecr.io \
#       --cert C --key K --signing-key TK --signing-cert TC --federated-token-file F
#   azure-cli/az ...   (azure_front.py az ...) a stand-in for the Azure CLI, see az() below:
#       login --service-principal, account get-access-token, acr login [--expose-token]
#   azure_front.py acr-login --registry ecrcpbed.azurecr.io --config-dir DIR
#       what `az acr login` leaves behind: Entra token (AZURE_TENANT_ID, AZURE_CLIENT_ID,
#       AZURE_CLIENT_SECRET; AZURE_AUTHORITY_HOST), exchange, and DIR/config.json with
#       {"auth": base64("00000000-0000-0000-0000-000000000000:"), "identitytoken": RT}
#
# Needs `cryptography` (RS256); everything else is the standard library.

import argparse
import base64
import datetime
import hashlib
import http.server
import json
import os
import ssl
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

import front
from front import write_json
from hub_front import b64url, repositories

# ---------------------------------------------------------------- the directory

TENANT = "7e57bed0-0000-4000-8000-000000000001"
# the AKS cluster's OIDC issuer, as `az aks show --query oidcIssuerProfile.issuerUrl` prints it
CLUSTER_ISSUER = f"https://eastus.oic.prod-aks.azure.com/{TENANT}/7e57bed0-0000-4000-8000-0000000000c1/"
FEDERATED_SUBJECT = "system:serviceaccount:ecrcp:ecrcp"
FEDERATED_AUDIENCE = "api://AzureADTokenExchange"
ACR_USER = "00000000-0000-0000-0000-000000000000"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
IDENTITY_HEADER = "ecrcpbed-identity-header"
ROLE_ACTIONS = {"AcrPush": ["pull", "push"], "AcrPull": ["pull"]}

# client id -> what Entra knows of it. "secret" for a service principal, "federated"
# (issuer, subject, audience) for a workload identity, "managed" for the VM's identities
# ("system" is the one IMDS hands out when the request names none).
IDENTITIES = {
    "7e57bed0-0000-4000-8000-0000000000a1": {"name": "sp-push", "secret": "ecrcpbed-push-secret",
                                             "oid": "7e57bed0-0000-4000-8000-0000000000b1", "role": "AcrPush"},
    "7e57bed0-0000-4000-8000-0000000000a2": {"name": "sp-pull", "secret": "ecrcpbed-pull-secret",
                                             "oid": "7e57bed0-0000-4000-8000-0000000000b2", "role": "AcrPull"},
    "7e57bed0-0000-4000-8000-0000000000a3": {"name": "workload",
                                             "federated": (CLUSTER_ISSUER, FEDERATED_SUBJECT, FEDERATED_AUDIENCE),
                                             "oid": "7e57bed0-0000-4000-8000-0000000000b3", "role": "AcrPush"},
    "7e57bed0-0000-4000-8000-0000000000a4": {"name": "vm-system", "managed": "system",
                                             "oid": "7e57bed0-0000-4000-8000-0000000000b4", "role": "AcrPush"},
    "7e57bed0-0000-4000-8000-0000000000a5": {"name": "vm-user-pull", "managed": "user",
                                             "oid": "7e57bed0-0000-4000-8000-0000000000b5", "role": "AcrPull",
                                             "resource_id": "/subscriptions/7e57bed0-0000-4000-8000-0000000000d1/"
                                             "resourcegroups/ecrcpbed/providers/Microsoft.ManagedIdentity/"
                                             "userAssignedIdentities/vm-user-pull"},
}
# Resources the tenant knows (a token for any of them can be had); ACR's exchange takes
# only ACR_AUDIENCES of them.
RESOURCES = ("https://management.azure.com", "https://management.core.windows.net",
             "https://containerregistry.azure.net", "https://storage.azure.com", "https://vault.azure.net")
ACR_AUDIENCES = ("https://management.azure.com", "https://management.core.windows.net",
                 "https://containerregistry.azure.net")
ENTRA_TTL = 3599
REFRESH_TTL = 3 * 3600
ACCESS_TTL = 75 * 60
KEEP_OAUTH = 2000


def log(msg: str):
    sys.stderr.write(f"azure_front: {msg}\n")
    sys.stderr.flush()


def guid() -> str:
    return str(uuid.uuid4())


# ---------------------------------------------------------------- JWTs


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(key, header: dict, claims: dict) -> str:
    signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signing_input + "." + b64url(signature)


def parse(token: str):
    """(header, claims) of a JWT, unverified; ValueError when it is not one."""
    try:
        head, body, _ = token.split(".")
        header, claims = json.loads(unb64url(head)), json.loads(unb64url(body))
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"not a JWT: {e}") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise ValueError("not a JWT: header or claims not an object")
    return header, claims


def verified(token: str, public_key) -> dict:
    """The claims of a JWT signed (RS256) by `public_key`; ValueError otherwise."""
    header, claims = parse(token)
    if header.get("alg") != "RS256":
        raise ValueError(f"alg {header.get('alg')!r} is not RS256")
    head, body, signature = token.split(".")
    try:
        public_key.verify(unb64url(signature), f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        raise ValueError("bad signature") from None
    return claims


def new_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def kid_of(key) -> str:
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return b64url(hashlib.sha1(der).digest())


def jwk(key) -> dict:
    numbers = key.public_key().public_numbers()

    def whole(n: int) -> str:
        return b64url(n.to_bytes((n.bit_length() + 7) // 8, "big"))

    return {"kty": "RSA", "use": "sig", "kid": kid_of(key), "n": whole(numbers.n), "e": whole(numbers.e)}


def resource_of(audience: str) -> str:
    return audience.rstrip("/")


# ---------------------------------------------------------------- Entra ID


class Entra:
    """The tenant's token issuer: its signing key, the cluster's key, the grants."""

    def __init__(self):
        self.key = new_key()
        self.cluster_key = new_key()

    def federated_token(self, subject=FEDERATED_SUBJECT, issuer=CLUSTER_ISSUER, audience=FEDERATED_AUDIENCE,
                        expires_in=86400, signed_by_cluster=True) -> str:
        """A service account token as AKS projects it into AZURE_FEDERATED_TOKEN_FILE."""
        now = int(time.time())
        key = self.cluster_key if signed_by_cluster else new_key()
        claims = {"aud": [audience], "iss": issuer, "sub": subject, "iat": now, "nbf": now,
                  "exp": now + int(expires_in),
                  "kubernetes.io": {"namespace": subject.split(":")[2] if subject.count(":") >= 3 else "",
                                    "serviceaccount": {"name": subject.rsplit(":", 1)[-1], "uid": guid()}}}
        return sign(key, {"alg": "RS256", "kid": kid_of(key)}, claims)

    def access_token(self, client_id: str, resource: str, how: str) -> str:
        """A v1 access token for `resource` (as ARM and ACR get them), `how`: appidacr."""
        who = IDENTITIES[client_id]
        now = int(time.time())
        claims = {"aud": resource, "iss": f"https://sts.windows.net/{TENANT}/", "iat": now, "nbf": now,
                  "exp": now + ENTRA_TTL, "appid": client_id, "appidacr": how,
                  "idp": f"https://sts.windows.net/{TENANT}/",
                  "idtyp": "app", "oid": who["oid"], "sub": who["oid"], "tid": TENANT, "ver": "1.0", "uti": guid()}
        if "resource_id" in who:
            claims["xms_mirid"] = who["resource_id"]
        return sign(self.key, {"typ": "JWT", "alg": "RS256", "kid": kid_of(self.key), "x5t": kid_of(self.key)}, claims)

    def grant(self, tenant: str, form: dict):
        """The client-credentials grant: (status, JSON answer)."""
        if tenant not in (TENANT,):
            return entra_error(400, "invalid_request", 90002,
                               f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID "
                               "and are signing into the correct cloud.")
        grant_type = form.get("grant_type", "")
        if grant_type != "client_credentials":
            return entra_error(400, "unsupported_grant_type", 70003,
                               "The app requested an unsupported grant type." if grant_type else
                               "The request body must contain the following parameter: 'grant_type'.")
        client_id = form.get("client_id", "")
        if not client_id:
            return entra_error(400, "invalid_request", 900144,
                               "The request body must contain the following parameter: 'client_id'.")
        who = IDENTITIES.get(client_id)
        if who is None or "managed" in who:
            return entra_error(400, "unauthorized_client", 700016,
                               f"Application with identifier '{client_id}' was not found in the directory "
                               f"'{tenant}'. This can happen if the application has not been installed by the "
                               "administrator of the tenant or consented to by any user in the tenant.")
        scope = form.get("scope", "")
        if not scope:
            return entra_error(400, "invalid_request", 900144,
                               "The request body must contain the following parameter: 'scope'.")
        if len(scope.split()) != 1 or not scope.endswith("/.default"):
            return entra_error(400, "invalid_scope", 1002012,
                               f"The provided value for scope {scope} is not valid. Client credential flows must "
                               "have a scope value with /.default suffixed to the resource identifier "
                               "(application ID URI).")
        resource = scope[: -len("/.default")]
        if resource_of(resource) not in RESOURCES:
            return entra_error(400, "invalid_resource", 500011,
                               f"The resource principal named {resource} was not found in the tenant named "
                               f"{tenant}. This can happen if the application has not been installed by the "
                               "administrator of the tenant or consented to by any user in the tenant.")
        if "client_secret" in form:
            if who.get("secret") != form["client_secret"]:
                return entra_error(401, "invalid_client", 7000215,
                                   "Invalid client secret provided. Ensure the secret being sent in the request "
                                   "is the client secret value, not the client secret ID, for a secret added to "
                                   f"app '{client_id}'.")
            how = "1"
        elif "client_assertion" in form:
            refused = self.check_assertion(client_id, who, form)
            if refused:
                return refused
            how = "2"
        else:
            return entra_error(401, "invalid_client", 7000218,
                               "The request body must contain the following parameter: 'client_assertion' or "
                               "'client_secret'.")
        return 200, {"token_type": "Bearer", "expires_in": ENTRA_TTL, "ext_expires_in": ENTRA_TTL,
                     "access_token": self.access_token(client_id, resource, how)}

    def check_assertion(self, client_id: str, who: dict, form: dict):
        """None when the client assertion is a federated token matching the app's credential."""
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            return entra_error(400, "invalid_request", 7000216,
                               f"'client_assertion_type' must be '{ASSERTION_TYPE}' for a client assertion.")
        token = form["client_assertion"]
        try:
            claims = verified(token, self.cluster_key.public_key())
        except ValueError as e:
            if str(e) == "bad signature":
                return entra_error(401, "invalid_client", 700027, "Client assertion failed signature validation.")
            return entra_error(401, "invalid_client", 50027, "JWT token is invalid or malformed.")
        now = int(time.time())
        if not (int(claims.get("nbf", 0)) - 300 <= now < int(claims.get("exp", 0))):
            return entra_error(401, "invalid_client", 700024,
                               f"Client assertion is not within its valid time range. Current time: "
                               f"{stamp(now)}, assertion valid from {stamp(claims.get('nbf', 0))}, expiry time "
                               f"of assertion {stamp(claims.get('exp', 0))}.")
        issuer, subject, audience = who.get("federated", (None, None, None))
        audiences = claims.get("aud")
        audiences = audiences if isinstance(audiences, list) else [audiences]
        check = "Please check your federated identity credential Subject, Audience and Issuer against the " \
                "presented assertion. https://learn.microsoft.com/entra/workload-id/workload-identity-federation"
        if claims.get("iss") != issuer:
            return entra_error(401, "invalid_client", 700211,
                               f"No matching federated identity record found for presented assertion issuer "
                               f"'{claims.get('iss')}'. {check}")
        if audience not in audiences:
            return entra_error(401, "invalid_client", 700212,
                               f"No matching federated identity record found for presented assertion audience "
                               f"'{','.join(map(str, audiences))}'. {check}")
        if claims.get("sub") != subject:
            return entra_error(401, "invalid_client", 700213,
                               f"No matching federated identity record found for presented assertion subject "
                               f"'{claims.get('sub')}'. {check}")
        return None

    def managed(self, query: dict):
        """The managed identity a metadata request names (client_id, object_id/principal_id,
        msi_res_id/mi_res_id), or the system-assigned one; None when it names another."""
        for key, field in (("client_id", None), ("object_id", "oid"), ("principal_id", "oid"),
                           ("msi_res_id", "resource_id"), ("mi_res_id", "resource_id")):
            if key in query:
                for client_id, who in IDENTITIES.items():
                    if "managed" in who and (client_id if field is None else who.get(field)) == query[key]:
                        return client_id
                return None
        return next(c for c, who in IDENTITIES.items() if who.get("managed") == "system")

    def metadata_token(self, query: dict, app_service: bool):
        """IMDS's and App Service's token answer: (status, JSON answer)."""
        if "api-version" not in query:
            return 400, {"error": "invalid_request",
                         "error_description": "Required query variable 'api-version' is missing"}
        resource = query.get("resource", "")
        if not resource:
            return 400, {"error": "invalid_request", "error_description": "Required audience parameter not specified"}
        if resource_of(resource) not in RESOURCES:
            return entra_error(400, "invalid_resource", 500011,
                               f"The resource principal named {resource} was not found in the tenant named "
                               f"{TENANT}. This can happen if the application has not been installed by the "
                               "administrator of the tenant or consented to by any user in the tenant.")
        client_id = self.managed(query)
        if client_id is None:
            return 400, {"error": "invalid_request", "error_description": "Identity not found"}
        now = int(time.time())
        doc = {"access_token": self.access_token(client_id, resource, "2"), "client_id": client_id,
               "expires_on": str(now + ENTRA_TTL), "resource": resource, "token_type": "Bearer"}
        if not app_service:
            doc.update({"expires_in": str(ENTRA_TTL), "ext_expires_in": str(ENTRA_TTL), "not_before": str(now)})
        return 200, doc


def stamp(when) -> str:
    return datetime.datetime.fromtimestamp(int(when), datetime.timezone.utc).strftime("%m/%d/%Y %H:%M:%S")


def entra_error(status: int, error: str, code: int, text: str):
    """Entra's error answer: (status, JSON)."""
    trace, correlation = guid(), guid()
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
    return status, {"error": error,
                    "error_description": f"AADSTS{code}: {text} Trace ID: {trace} Correlation ID: {correlation} "
                                         f"Timestamp: {now}",
                    "error_codes": [code], "timestamp": now, "trace_id": trace, "correlation_id": correlation,
                    "error_uri": f"https://login.microsoftonline.com/error?code={code}"}


def read_form(handler) -> dict:
    """A urlencoded request body; a repeated field's values joined by spaces (scope)."""
    length = int(handler.headers.get("Content-Length") or 0)
    pairs = urllib.parse.parse_qs(handler.rfile.read(length).decode(errors="replace"), keep_blank_values=True)
    return {k: " ".join(v) for k, v in pairs.items()}


IDENTITY_FAULTS = ("status", "drop")


class IdentityFaults:
    """front.py's rules on the token endpoints, keyed by client id: a test makes Entra or the
    metadata endpoint fail for its own identity alone ("status" with "code" and "message"
    wording the error, "drop", "delay"; "times", "skip", "every", "method", "path")."""

    def handle_one_request(self):
        try:
            super().handle_one_request()
        except front.Aborted:
            self.close_connection = True

    def faults_knob(self, url) -> bool:
        if url.path != "/_testbed/faults":
            return False
        query = urllib.parse.parse_qs(url.query)
        key = query.get("repo", query.get("client_id", [None]))[0]
        if self.command == "POST":
            length = int(self.headers.get("Content-Length") or 0)
            try:
                doc = json.loads(self.rfile.read(length) or b"{}")
                key = doc.get("client_id", doc.get("repository"))
                rules = doc.get("rules") or []
                for rule in rules:
                    kind = front.Rule(rule).kind
                    if kind not in IDENTITY_FAULTS + ("delay",):
                        raise ValueError(f"a token endpoint's rule is one of {IDENTITY_FAULTS} or a delay, not {kind}")
                self.server.faults.replace(key, rules)
            except (ValueError, TypeError, KeyError, AttributeError) as e:
                write_json(self, 400, {"error": repr(e)})
                return True
        write_json(self, 200, self.server.faults.report(key))
        return True

    def fault(self, key: str, error_doc) -> bool:
        """Applies the first rule in force for `key`; True when it answered."""
        rule = self.server.faults.take(key, self.command, self.path) if key else None
        if rule is None:
            return False
        log(f"fault {rule.doc} on {self.command} {self.path} for {key}")
        if rule.delay:
            time.sleep(rule.delay)
        if rule.drop:
            front.FrontHandler.reset(self, {"status": 0})
        if rule.status is None:
            return False
        extra = {"Retry-After": rule.retry_after} if rule.retry_after is not None else {}
        write_json(self, rule.status, error_doc(rule), extra)
        return True


class EntraHandler(IdentityFaults, http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-login.microsoftonline.com"

    def log_message(self, fmt, *args):
        log(f"entra {self.address_string()} {fmt % args}")

    def answer(self, status_doc, extra=None):
        write_json(self, status_doc[0], status_doc[1], extra)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        parts = url.path.strip("/").split("/")
        entra = self.server.entra
        origin = f"https://{self.headers.get('Host', 'login.microsoftonline.com')}"
        if self.faults_knob(url):
            return
        if url.path == "/_testbed/identities":
            return self.answer((200, {"tenant": TENANT, "identities": IDENTITIES, "identity_header": IDENTITY_HEADER,
                                      "cluster_issuer": CLUSTER_ISSUER}))
        if parts[1:] == ["v2.0", ".well-known", "openid-configuration"]:
            tenant = parts[0]
            return self.answer((200, {
                "issuer": f"{origin}/{tenant}/v2.0",
                "token_endpoint": f"{origin}/{tenant}/oauth2/v2.0/token",
                "authorization_endpoint": f"{origin}/{tenant}/oauth2/v2.0/authorize",
                "jwks_uri": f"{origin}/{tenant}/discovery/v2.0/keys",
                "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
                "id_token_signing_alg_values_supported": ["RS256"], "tenant_region_scope": "NA"}))
        if parts[1:] in (["discovery", "v2.0", "keys"], ["discovery", "keys"]):
            return self.answer((200, {"keys": [jwk(entra.key)]}))
        if parts == ["common", "discovery", "instance"]:
            host = urllib.parse.urlsplit(origin).netloc
            return self.answer((200, {
                "tenant_discovery_endpoint": f"{origin}/{TENANT}/v2.0/.well-known/openid-configuration",
                "api-version": "1.1",
                "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}]}))
        self.answer((404, {"error": "not_found", "error_description": f"no {url.path} here"}))

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        parts = url.path.strip("/").split("/")
        if url.path == "/_testbed/federated-token":
            length = int(self.headers.get("Content-Length") or 0)
            try:
                doc = json.loads(self.rfile.read(length) or b"{}") if length else {}
                token = self.server.entra.federated_token(**doc)
            except (ValueError, TypeError) as e:
                return self.answer((400, {"error": repr(e)}))
            return self.answer((200, {"token": token}))
        if self.faults_knob(url):
            return
        form = read_form(self)
        if len(parts) == 4 and parts[1:] == ["oauth2", "v2.0", "token"]:
            if self.fault(form.get("client_id", ""), lambda rule: entra_error(
                    rule.status, rule.code or "temporarily_unavailable", 50196,
                    rule.message or "The server is temporarily unavailable (injected by the test bed).")[1]):
                return
            status, doc = self.server.entra.grant(parts[0], form)
            if status != 200:
                log(f"entra refused {form.get('client_id')!r}: {doc['error_description'][:100]}")
            return self.answer((status, doc))
        self.answer((404, {"error": "not_found", "error_description": f"no {url.path} here"}))


class MetadataHandler(IdentityFaults, http.server.BaseHTTPRequestHandler):
    """IMDS (/metadata/identity/oauth2/token) and App Service's endpoint (/msi/token)."""

    protocol_version = "HTTP/1.1"
    server_version = "fake-imds"

    def log_message(self, fmt, *args):
        log(f"metadata {self.address_string()} {fmt % args}")

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        if not self.faults_knob(url):
            write_json(self, 405, {"error": "invalid_request", "error_description": "GET only"})

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = {k: v[0] for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
        if self.faults_knob(url):
            return
        if url.path in ("/metadata/identity/oauth2/token", "/msi/token", "/msi/token/") and self.fault(
                self.server.entra.managed(query) or "", lambda rule: {
                    "error": rule.code or "temporarily_unavailable",
                    "error_description": rule.message or "injected by the test bed"}):
            return
        if url.path == "/metadata/identity/oauth2/token":
            if self.headers.get("Metadata", "").lower() != "true":
                return write_json(self, 400, {"error": "invalid_request",
                                              "error_description": "Required metadata header not specified"})
            if self.headers.get("X-Forwarded-For") is not None:
                return write_json(self, 400, {"error": "invalid_request",
                                              "error_description": "Request cannot contain X-Forwarded-For header"})
            return write_json(self, *self.server.entra.metadata_token(query, app_service=False))
        if url.path.rstrip("/") == "/msi/token":
            if self.headers.get("X-IDENTITY-HEADER") != IDENTITY_HEADER:
                return write_json(self, 401, {"statusCode": 401,
                                              "message": "Unauthorized request: X-IDENTITY-HEADER is missing or "
                                                         "does not match IDENTITY_HEADER"})
            return write_json(self, *self.server.entra.metadata_token(query, app_service=True))
        write_json(self, 404, {"error": "not_found", "error_description": f"no {url.path} here"})


# ---------------------------------------------------------------- ACR


class Registry:
    """ACR's token server for one registry: exchange, refresh, access."""

    def __init__(self, name: str, entra_public_key, signing_key, signing_cert=None):
        self.name = name
        self.entra_public_key = entra_public_key
        self.key = signing_key
        # access tokens carry the chain docker-registry trusts; refresh tokens do not,
        # so the registry refuses them as bearer tokens as ACR does
        self.x5c = [base64.b64encode(signing_cert.public_bytes(serialization.Encoding.DER)).decode()] \
            if signing_cert is not None else []

    def token(self, claims: dict, ttl: int, access: bool) -> str:
        now = int(time.time())
        base = {"jti": guid(), "nbf": now, "exp": now + ttl, "iat": now, "iss": "Azure Container Registry",
                "aud": self.name, "version": "1.0"}
        header = {"typ": "JWT", "alg": "RS256"}
        if access and self.x5c:
            header["x5c"] = self.x5c
        else:
            header["kid"] = "acr-refresh-" + kid_of(self.key)[:8]
        return sign(self.key, header, {**base, **claims})

    def own(self, token: str, grant_type: str) -> dict:
        """The claims of a token this registry issued as `grant_type`; ValueError otherwise."""
        claims = verified(token, self.key.public_key())
        if claims.get("grant_type") != grant_type or claims.get("aud") != self.name:
            raise ValueError(f"not a {grant_type} of {self.name}")
        if int(claims.get("exp", 0)) <= time.time():
            raise ValueError("expired")
        return claims

    def exchange(self, form: dict):
        """POST /oauth2/exchange: an Entra access token for an ACR refresh token."""
        if form.get("grant_type") != "access_token":
            return acr_error(400, "UNSUPPORTED", f"grant_type {form.get('grant_type', '')!r} is not supported: "
                                                 "use access_token")
        if form.get("service") != self.name:
            return acr_error(400, "UNSUPPORTED", f"service {form.get('service', '')!r} is not {self.name!r}")
        try:
            claims = verified(form.get("access_token", ""), self.entra_public_key)
        except ValueError as e:
            return acr_error(401, "UNAUTHORIZED", f"the access token is not valid: {e}")
        if int(claims.get("exp", 0)) <= time.time():
            return acr_error(401, "UNAUTHORIZED", "the access token has expired")
        if resource_of(str(claims.get("aud", ""))) not in ACR_AUDIENCES:
            return acr_error(401, "UNAUTHORIZED", f"the access token's audience {claims.get('aud')!r} is not "
                                                  f"accepted: get one for https://management.azure.com/.default "
                                                  "or https://containerregistry.azure.net/.default")
        if form.get("tenant") and form["tenant"] != claims.get("tid"):
            return acr_error(401, "UNAUTHORIZED", f"tenant {form['tenant']!r} is not the token's tenant")
        who = IDENTITIES.get(claims.get("appid"), {})
        actions = ROLE_ACTIONS.get(who.get("role"), [])
        refresh = self.token({"sub": claims.get("oid"), "grant_type": "refresh_token", "tenant": claims.get("tid"),
                              "permissions": {"actions": actions, "notActions": []},
                              "roles": [who["role"]] if who.get("role") else []}, REFRESH_TTL, access=False)
        return 200, {"refresh_token": refresh}

    def access(self, refresh_token: str, service: str, scope: str):
        """An access token for `scope`, from a refresh token: (status, JSON)."""
        if service != self.name:
            return acr_error(400, "UNSUPPORTED", f"service {service!r} is not {self.name!r}")
        try:
            claims = self.own(refresh_token, "refresh_token")
        except ValueError as e:
            return acr_error(401, "UNAUTHORIZED", f"the refresh token is not valid: {e}")
        allowed = set(claims.get("permissions", {}).get("actions", []))
        access = []
        for rtype, name, actions in repositories([scope]):
            if rtype == "repository":
                granted = [a for a in actions if a in allowed] if "*" not in actions else sorted(allowed)
            elif rtype == "registry" and name == "catalog" and allowed:
                granted = [a for a in actions if a == "*"]
            else:
                granted = []
            access.append({"type": rtype, "name": name, "actions": granted})
        token = self.token({"sub": claims.get("sub"), "grant_type": "access_token", "tenant": claims.get("tenant"),
                            "access": access, "roles": claims.get("roles", [])}, ACCESS_TTL, access=True)
        return 200, {"access_token": token}

    def covers(self, token: str, rtype: str, name: str, action: str) -> bool:
        """Whether `token` is an access token of this registry granting `action` on the resource."""
        try:
            claims = self.own(token, "access_token")
        except ValueError:
            return False
        if not name:
            return True
        return any(a.get("type") == rtype and a.get("name") == name and action in a.get("actions", [])
                   for a in claims.get("access", []))


def acr_error(status: int, code: str, message: str):
    return status, {"errors": [{"code": code, "message": message}]}


class AcrHandler(front.FrontHandler):
    """front.py's proxy before the registry, with ACR's token server and its token check."""

    def challenge(self, scope: str, error: str = ""):
        registry = self.server.registry
        value = f'Bearer realm="https://{registry.name}/oauth2/token",service="{registry.name}"'
        if scope:
            value += f',scope="{scope}"'
        if error:
            value += f',error="{error}"'
        return {"WWW-Authenticate": value}

    def answer_expired(self, entry: dict):
        # ACR's answer to an access token that expired (front.py's "expire_token"): its own
        # Bearer challenge with error="invalid_token", not ECR's Basic one
        self.send_small(401, {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required, visit "
                                          "https://aka.ms/acr/authorization for more information."}]},
                        self.challenge("", "invalid_token"), entry)

    def dispatch(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path.startswith("/oauth2/"):
            return self.oauth(url)
        super().dispatch()

    # FrontHandler binds its verbs to its own dispatch
    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = dispatch

    def oauth(self, url):
        registry = self.server.registry
        form, user = {}, None
        if url.path == "/oauth2/exchange" and self.command == "POST":
            form = read_form(self)
            status, doc = registry.exchange(form)
        elif url.path == "/oauth2/token" and self.command == "POST":
            form = read_form(self)
            grant_type = form.get("grant_type")
            if grant_type == "refresh_token":
                status, doc = registry.access(form.get("refresh_token", ""), form.get("service", ""),
                                              form.get("scope", ""))
            elif grant_type == "password" and form.get("username") == ACR_USER:
                status, doc = registry.access(form.get("password", ""), form.get("service", ""),
                                              form.get("scope", ""))
                if status == 200:
                    doc["refresh_token"] = form["password"]
            else:
                status, doc = acr_error(401, "UNAUTHORIZED", f"grant_type {grant_type!r} with user "
                                                             f"{form.get('username')!r} is not accepted here")
        elif url.path == "/oauth2/token" and self.command == "GET":
            query = urllib.parse.parse_qs(url.query)
            user, password = basic(self.headers.get("Authorization", ""))
            form = {"service": " ".join(query.get("service", [])), "scope": " ".join(query.get("scope", []))}
            if user != ACR_USER or not password:
                status, doc = acr_error(401, "UNAUTHORIZED", "authentication required, visit "
                                                             "https://aka.ms/acr/authorization for more information.")
            else:
                status, doc = registry.access(password, query.get("service", [""])[0],
                                              " ".join(query.get("scope", [])))
                # docker login asks for a token to keep (offline_token=true): it stores the
                # refresh token it gets as the config's identitytoken, as `az acr login` leaves it
                if status == 200 and query.get("offline_token", [""])[0] == "true":
                    doc["refresh_token"] = password
        else:
            status, doc = 404, {"errors": [{"code": "NOT_FOUND", "message": f"no {self.command} {url.path}"}]}
        if status != 200:
            log(f"acr {self.command} {url.path}: {status} {doc}")
        with self.server.oauth_lock:
            self.server.oauth_log.append({"method": self.command, "path": url.path, "status": status,
                                          "grant_type": form.get("grant_type"), "service": form.get("service"),
                                          "scope": form.get("scope"), "username": form.get("username"),
                                          "basic_user": user, "at": round(time.time(), 3)})
            del self.server.oauth_log[:-KEEP_OAUTH]
        write_json(self, status, doc)

    def testbed_extra(self, url) -> bool:
        if url.path != "/_testbed/oauth":
            return False
        with self.server.oauth_lock:
            if self.command == "DELETE":
                self.server.oauth_log.clear()
            self.send_small(200, {"requests": list(self.server.oauth_log)})
        return True

    def answered_here(self, entry: dict) -> bool:
        header = self.headers.get("Authorization")
        if header is None:
            return False  # the registry challenges, as ACR does
        repository = front.repository_of(self.path)
        path = urllib.parse.urlsplit(self.path).path
        if repository:
            action = "pull" if self.command in ("GET", "HEAD") else "delete" if self.command == "DELETE" else "push"
            rtype, name = "repository", repository
        elif path == "/v2/_catalog":
            rtype, name, action = "registry", "catalog", "*"
        else:
            rtype, name, action = "", "", ""
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and self.server.registry.covers(token.strip(), rtype, name, action):
            return False
        scope = f"{rtype}:{name}:{action}" if name else ""
        error = "insufficient_scope" if scheme.lower() == "bearer" and self.server.registry.covers(
            token.strip(), "", "", "") else "invalid_token"
        detail = [{"Type": rtype, "Name": name, "Action": action}] if name else []
        self.send_small(401, {"errors": [{"code": "UNAUTHORIZED",
                                          "message": "authentication required, visit https://aka.ms/acr/authorization "
                                                     "for more information.", "detail": detail}]},
                        self.challenge(scope, error), entry)
        return True


def basic(header: str):
    """(user, password) of a Basic Authorization header, or (None, None)."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None, None
    try:
        user, _, password = base64.b64decode(value.strip()).decode().partition(":")
    except ValueError:
        return None, None
    return user, password


# ---------------------------------------------------------------- az acr login


def post_form(url: str, fields: dict, context=None) -> dict:
    request = urllib.request.Request(url, data=urllib.parse.urlencode(fields).encode(), method="POST",
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as e:
        raise SystemExit(f"azure_front: POST {url}: {e.code} {e.read().decode(errors='replace')}") from None


def acr_login(authority: str, registry_origin: str, registry: str, tenant: str, client_id: str, secret: str,
              context=None) -> str:
    """What `az acr login` does with a service principal: an ARM token from Entra, then
    ACR's exchange; returns the ACR refresh token."""
    entra = post_form(f"{authority.rstrip('/')}/{tenant}/oauth2/v2.0/token",
                      {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret,
                       "scope": "https://management.azure.com/.default"}, context)
    return post_form(f"{registry_origin}/oauth2/exchange",
                     {"grant_type": "access_token", "service": registry, "tenant": tenant,
                      "access_token": entra["access_token"]}, context)["refresh_token"]


def write_docker_config(config_dir: str, registry: str, refresh_token: str) -> str:
    """Adds the registry's login to DIR/config.json as `az acr login` leaves it."""
    path = os.path.join(config_dir, "config.json")
    try:
        with open(path) as f:
            config = json.load(f)
    except FileNotFoundError:
        config = {}
    config.setdefault("auths", {})[registry] = {"auth": base64.b64encode(f"{ACR_USER}:".encode()).decode(),
                                                "identitytoken": refresh_token}
    os.makedirs(config_dir, exist_ok=True)
    with open(path, "w") as f:
        json.dump(config, f, indent="\t")
    return path


# ---------------------------------------------------------------- az (the Azure CLI's stand-in)

SUBSCRIPTION = "7e57bed0-0000-4000-8000-0000000000d1"
ARM_RESOURCE = "https://management.core.windows.net/"


def az_profile_path() -> str:
    return os.path.join(os.environ.get("AZURE_CONFIG_DIR") or os.path.expanduser("~/.azure"), "ecrcpbed-login.json")


def az_entra_token(profile: dict, scope: str, context) -> dict:
    fields = {"grant_type": "client_credentials", "client_id": profile["client_id"], "scope": scope}
    if "federated_token" in profile:
        fields.update(client_assertion_type=ASSERTION_TYPE, client_assertion=profile["federated_token"])
    else:
        fields["client_secret"] = profile["secret"]
    authority = os.environ.get("ECRCP_TESTBED_AZ_AUTHORITY", "https://login.microsoftonline.com")
    return post_form(f"{authority}/{profile['tenant']}/oauth2/v2.0/token", fields, context)


def az(argv: list) -> int:
    """The Azure CLI's commands that credential chains and `az acr login` users run, against
    the bed's Entra ID: login --service-principal (secret or --federated-token), logout,
    account get-access-token, acr login [--expose-token]. Errors go to stderr as
    `ERROR: ...` with status 1, as az reports them. The login is kept in
    $AZURE_CONFIG_DIR (or ~/.azure)/ecrcpbed-login.json. ECRCP_TESTBED_AZ_AUTHORITY and
    ECRCP_TESTBED_AZ_ACR_ORIGIN point it elsewhere than https://login.microsoftonline.com
    and https://REGISTRY (the loopback tests)."""
    ap = argparse.ArgumentParser(prog="az")
    sub = ap.add_subparsers(dest="group", required=True)
    login = sub.add_parser("login")
    login.add_argument("--service-principal", action="store_true")
    login.add_argument("-u", "--username")
    login.add_argument("-p", "--password")
    login.add_argument("--federated-token")
    login.add_argument("-t", "--tenant")
    login.add_argument("-o", "--output", default="json")
    sub.add_parser("logout")
    account = sub.add_parser("account").add_subparsers(dest="command", required=True)
    token = account.add_parser("get-access-token")
    token.add_argument("--scope")
    token.add_argument("--resource")
    token.add_argument("-t", "--tenant")
    token.add_argument("--subscription")
    token.add_argument("-o", "--output", default="json")
    acr = sub.add_parser("acr").add_subparsers(dest="command", required=True)
    acr_login_cmd = acr.add_parser("login")
    acr_login_cmd.add_argument("-n", "--name", required=True)
    acr_login_cmd.add_argument("--expose-token", action="store_true")
    acr_login_cmd.add_argument("-o", "--output", default="json")
    args = ap.parse_args(argv)
    context = ssl.create_default_context(cafile=os.environ.get("SSL_CERT_FILE"))
    path = az_profile_path()

    def fail(message: str) -> int:
        sys.stderr.write(f"ERROR: {message}\n")
        return 1

    if args.group == "login":
        if not args.service_principal or not args.username or not args.tenant:
            return fail("the bed's az knows only: az login --service-principal -u CLIENT_ID "
                        "(-p SECRET | --federated-token TOKEN) --tenant TENANT")
        profile = {"tenant": args.tenant, "client_id": args.username}
        if args.federated_token:
            profile["federated_token"] = args.federated_token
        else:
            profile["secret"] = args.password or ""
        try:
            az_entra_token(profile, ARM_RESOURCE + ".default", context)
        except SystemExit as e:
            return fail(str(e))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            json.dump(profile, f)
        print(json.dumps([{"cloudName": "AzureCloud", "id": SUBSCRIPTION, "isDefault": True, "state": "Enabled",
                           "tenantId": args.tenant, "user": {"name": args.username, "type": "servicePrincipal"}}]))
        return 0
    if args.group == "logout":
        if not os.path.exists(path):
            return fail("There are no active accounts.")
        os.remove(path)
        return 0
    try:
        with open(path) as f:
            profile = json.load(f)
    except FileNotFoundError:
        return fail("Please run 'az login' to setup account.")
    if args.group == "account":
        if args.tenant:
            profile["tenant"] = args.tenant
        scope = args.scope or (args.resource or ARM_RESOURCE) + "/.default"
        try:
            answer = az_entra_token(profile, scope, context)
        except SystemExit as e:
            return fail(str(e))
        expires_on = int(time.time()) + int(answer["expires_in"])
        print(json.dumps({"accessToken": answer["access_token"],
                          "expiresOn": datetime.datetime.fromtimestamp(expires_on).strftime("%Y-%m-%d %H:%M:%S.%f"),
                          "expires_on": expires_on, "subscription": SUBSCRIPTION, "tenant": profile["tenant"],
                          "tokenType": "Bearer"}, indent=2))
        return 0
    # acr login: ARM token, ACR's exchange, then docker login with the GUID user (or show the token)
    registry = args.name if "." in args.name else f"{args.name}.azurecr.io"
    origin = os.environ.get("ECRCP_TESTBED_AZ_ACR_ORIGIN", f"https://{registry}")
    try:
        arm = az_entra_token(profile, ARM_RESOURCE + ".default", context)["access_token"]
        refresh = post_form(f"{origin}/oauth2/exchange", {"grant_type": "access_token", "service": registry,
                                                          "tenant": profile["tenant"], "access_token": arm},
                            context)["refresh_token"]
    except SystemExit as e:
        return fail(str(e))
    if args.expose_token:
        print(json.dumps({"accessToken": refresh, "loginServer": registry,
                          "username": ACR_USER}, indent=2))
        return 0
    import subprocess

    done = subprocess.run(["docker", "login", "--username", ACR_USER, "--password-stdin", registry],
                          input=refresh.encode(), capture_output=True)
    if done.returncode != 0:
        return fail(f"docker login failed: {done.stderr.decode(errors='replace').strip()}")
    print("Login Succeeded")
    return 0


# ---------------------------------------------------------------- servers


def write_federated_token(entra: Entra, path: str):
    """The workload's token file, as AKS projects it (AZURE_FEDERATED_TOKEN_FILE)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(entra.federated_token())


def serve(args):
    entra = Entra()
    if args.federated_token_file:
        write_federated_token(entra, args.federated_token_file)
    with open(args.signing_key, "rb") as f:
        signing_key = serialization.load_pem_private_key(f.read(), password=None)
    with open(args.signing_cert, "rb") as f:
        signing_cert = x509.load_pem_x509_certificate(f.read())

    servers = []
    identity_faults = front.Faults()
    for listen in args.entra_listen:
        server = front.TLSServer(front.hostport(listen), EntraHandler, args.cert, args.key)
        server.label, server.entra, server.faults = "azure_front entra", entra, identity_faults
        servers.append(server)
    for listen in args.imds_listen:
        server = http.server.ThreadingHTTPServer(front.hostport(listen), MetadataHandler)
        server.daemon_threads = True
        server.label, server.entra, server.faults = "azure_front metadata", entra, identity_faults
        servers.append(server)
    for listen in args.acr_listen:
        server = front.front_server(listen, AcrHandler, args.cert, args.key, args.upstream, "azure_front acr")
        server.registry = Registry(args.registry, entra.key.public_key(), signing_key, signing_cert)
        server.oauth_log, server.oauth_lock = [], threading.Lock()
        servers.append(server)
    for server in servers[1:]:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    log(f"entra on {args.entra_listen}, metadata on {args.imds_listen}, {args.registry} on {args.acr_listen} "
        f"-> {args.upstream}")
    try:
        servers[0].serve_forever()
    except KeyboardInterrupt:
        pass


def main():
    if sys.argv[1:2] == ["az"]:
        sys.exit(az(sys.argv[2:]))
    ap = argparse.ArgumentParser(description="the bed's Entra ID, managed identity and ACR")
    sub = ap.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--entra-listen", action="append", default=[], help="HOST:PORT (TLS) of Entra ID")
    s.add_argument("--imds-listen", action="append", default=[], help="HOST:PORT (HTTP) of IMDS and /msi/token")
    s.add_argument("--acr-listen", action="append", default=[], help="HOST:PORT (TLS) of the ACR front")
    s.add_argument("--upstream", help="HOST:PORT of the ACR's plain-HTTP docker-registry")
    s.add_argument("--registry", default="ecrcpbed.azurecr.io")
    s.add_argument("--cert", required=True)
    s.add_argument("--key", required=True)
    s.add_argument("--signing-key", required=True, help="the key of ACR's tokens (its cert chains to the bed CA)")
    s.add_argument("--signing-cert", required=True)
    s.add_argument("--federated-token-file", help="where to write the workload identity's token")
    s.set_defaults(run=serve)
    login = sub.add_parser("acr-login", help="write a docker config as `az acr login` leaves it")
    login.add_argument("--registry", default="ecrcpbed.azurecr.io")
    login.add_argument("--config-dir", default=os.environ.get("DOCKER_CONFIG", os.path.expanduser("~/.docker")))
    login.add_argument("--authority",
                       default=os.environ.get("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.com"))
    login.set_defaults(run=lambda a: print(write_docker_config(a.config_dir, a.registry, acr_login(
        a.authority, f"https://{a.registry}", a.registry, os.environ.get("AZURE_TENANT_ID", TENANT),
        os.environ["AZURE_CLIENT_ID"], os.environ["AZURE_CLIENT_SECRET"],
        ssl.create_default_context(cafile=os.environ.get("SSL_CERT_FILE"))))))
    args = ap.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
