#!/usr/bin/env python3
# tests/testbed/test_azure.py -- owned by the ecrcp test bed (tests/testbed/).
#
# Tests of azure_front.py, the bed's Entra ID, managed-identity endpoints and ACR token
# server, each on a plain-HTTP loopback port (no TLS, no registry, no root): the grants
# Entra gives and refuses, the IMDS and App Service header checks, ACR's exchange and its
# scoped tokens, the front's refusal of anything but a covering access token (GUID Basic
# with an empty password above all), and `az acr login`'s docker config. Run by .ci/run:
#
#   $ECRCP_VENV/bin/python -m unittest discover -s tests/testbed -p 'test_*.py'
#
# Needs cryptography (the bed's venv has it); skipped without it.

import base64
import http.client
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import unittest.mock
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import front  # noqa: E402
from test_front import Upstream, serve  # noqa: E402

try:
    import azure_front as az  # noqa: E402
    from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402
except ImportError:  # no cryptography outside the bed's venv
    az = None

REGISTRY = "ecrcpbed.azurecr.io"
PUSHER, PULLER, WORKLOAD, VM_SYSTEM, VM_USER = (f"7e57bed0-0000-4000-8000-0000000000a{i}" for i in range(1, 6))


def call(server, method, path, body=None, headers=None):
    """(status, headers, JSON or bytes) of one request to a loopback server."""
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    try:
        if isinstance(body, dict):
            body = urllib.parse.urlencode(body)
            headers = {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        try:
            data = json.loads(data)
        except ValueError:
            pass
        return response.status, dict(response.getheaders()), data
    finally:
        conn.close()


def basic(user, password):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@unittest.skipIf(az is None, "needs cryptography (the bed's venv)")
class AzureBed(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.quiet = unittest.mock.patch.object(az, "log", lambda msg: None)
        cls.quiet.start()
        cls.quiet_front = unittest.mock.patch.object(front, "log", lambda label, msg: None)
        cls.quiet_front.start()
        cls.entra = az.Entra()
        cls.idp = serve(http.server.ThreadingHTTPServer(("127.0.0.1", 0), az.EntraHandler))
        cls.idp.entra = cls.entra
        cls.imds = serve(http.server.ThreadingHTTPServer(("127.0.0.1", 0), az.MetadataHandler))
        cls.imds.entra = cls.entra
        cls.idp.faults = cls.imds.faults = front.Faults()
        cls.upstream = serve(http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream))
        cls.upstream.seen = []
        # The registry behind the ACR front: any request it sees is answered 200 with `{}`.
        cls.upstream.answers = {
            (method, "/"): (200, {}, b"{}") for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
        }
        cls.acr = serve(http.server.ThreadingHTTPServer(("127.0.0.1", 0), az.AcrHandler))
        cls.acr.upstream = "127.0.0.1:%d" % cls.upstream.server_address[1]
        cls.acr.label = "test-acr"
        cls.acr.faults, cls.acr.stats, cls.acr.etags = front.Faults(), front.Stats(), {}
        cls.acr.registry = az.Registry(REGISTRY, cls.entra.key.public_key(), az.new_key())
        cls.acr.oauth_log, cls.acr.oauth_lock = [], threading.Lock()

    @classmethod
    def tearDownClass(cls):
        for server in (cls.idp, cls.imds, cls.acr, cls.upstream):
            server.shutdown()
            server.server_close()
        cls.quiet.stop()
        cls.quiet_front.stop()

    # -- helpers

    def grant(self, tenant=az.TENANT if az else "", **form):
        fields = {"grant_type": "client_credentials", "scope": "https://management.azure.com/.default", **form}
        fields = {k: v for k, v in fields.items() if v is not None}
        return call(self.idp, "POST", f"/{tenant}/oauth2/v2.0/token", fields)

    def assertRefused(self, answer, status, error, code):
        self.assertEqual((answer[0], answer[2]["error"], answer[2]["error_codes"]), (status, error, [code]),
                         answer[2])
        self.assertTrue(answer[2]["error_description"].startswith(f"AADSTS{code}: "), answer[2])

    def federated(self, **doc):
        status, _, answer = call(self.idp, "POST", "/_testbed/federated-token", json.dumps(doc))
        self.assertEqual(status, 200, answer)
        return answer["token"]

    def entra_token(self, client_id=PUSHER, secret="ecrcpbed-push-secret",
                    scope="https://management.azure.com/.default"):
        status, _, answer = self.grant(client_id=client_id, client_secret=secret, scope=scope)
        self.assertEqual(status, 200, answer)
        return answer["access_token"]

    def exchange(self, access_token, **form):
        fields = {"grant_type": "access_token", "service": REGISTRY, "tenant": az.TENANT,
                  "access_token": access_token, **form}
        return call(self.acr, "POST", "/oauth2/exchange", fields)

    def refresh_token(self, **kw):
        status, _, answer = self.exchange(self.entra_token(**kw))
        self.assertEqual(status, 200, answer)
        return answer["refresh_token"]

    def access_token(self, scope, refresh=None):
        status, _, answer = call(self.acr, "POST", "/oauth2/token",
                                 {"grant_type": "refresh_token", "service": REGISTRY, "scope": scope,
                                  "refresh_token": refresh or self.refresh_token()})
        self.assertEqual(status, 200, answer)
        return answer["access_token"]

    def jwks_key(self):
        status, _, answer = call(self.idp, "GET", f"/{az.TENANT}/discovery/v2.0/keys")
        self.assertEqual(status, 200)
        key = answer["keys"][0]
        n, e = (int.from_bytes(az.unb64url(key[x]), "big") for x in ("n", "e"))
        return rsa.RSAPublicNumbers(e, n).public_key()

    # -- Entra ID: client secret

    def test_a_client_secret_gets_a_signed_token_for_arm(self):
        status, _, answer = self.grant(client_id=PUSHER, client_secret="ecrcpbed-push-secret")
        self.assertEqual(status, 200, answer)
        self.assertEqual((answer["token_type"], answer["expires_in"]), ("Bearer", az.ENTRA_TTL))
        claims = az.verified(answer["access_token"], self.jwks_key())
        self.assertEqual((claims["tid"], claims["oid"], claims["appid"], claims["aud"], claims["appidacr"]),
                         (az.TENANT, az.IDENTITIES[PUSHER]["oid"], PUSHER, "https://management.azure.com", "1"))
        self.assertGreater(claims["exp"], time.time() + 3000)

    def test_the_acr_audience_is_a_scope_too(self):
        claims = az.parse(self.entra_token(scope="https://containerregistry.azure.net/.default"))[1]
        self.assertEqual(claims["aud"], "https://containerregistry.azure.net")

    def test_bad_grants_get_entras_errors(self):
        cases = [
            (self.grant(client_id=PUSHER, client_secret="wrong"), 401, "invalid_client", 7000215),
            (self.grant(client_id=WORKLOAD, client_secret="anything"), 401, "invalid_client", 7000215),
            (self.grant(client_id=PUSHER), 401, "invalid_client", 7000218),
            (self.grant(tenant="00000000-1111-2222-3333-444444444444", client_id=PUSHER,
                        client_secret="ecrcpbed-push-secret"), 400, "invalid_request", 90002),
            (self.grant(client_id="7e57bed0-0000-4000-8000-0000000000ff", client_secret="x"),
             400, "unauthorized_client", 700016),
            (self.grant(client_id=PUSHER, client_secret="ecrcpbed-push-secret",
                        scope="https://management.azure.com/user_impersonation"), 400, "invalid_scope", 1002012),
            (self.grant(client_id=PUSHER, client_secret="ecrcpbed-push-secret",
                        scope="https://nothing.example/.default"), 400, "invalid_resource", 500011),
            (self.grant(client_id=PUSHER, client_secret="ecrcpbed-push-secret", scope=None),
             400, "invalid_request", 900144),
            (self.grant(client_id=PUSHER, client_secret="ecrcpbed-push-secret", grant_type="password"),
             400, "unsupported_grant_type", 70003),
        ]
        for answer, status, error, code in cases:
            with self.subTest(code=code, error=error):
                self.assertRefused(answer, status, error, code)

    def test_discovery_names_the_token_endpoint(self):
        status, _, answer = call(self.idp, "GET", f"/{az.TENANT}/v2.0/.well-known/openid-configuration",
                                 headers={"Host": "login.microsoftonline.com"})
        self.assertEqual(status, 200)
        self.assertEqual(answer["token_endpoint"], f"https://login.microsoftonline.com/{az.TENANT}/oauth2/v2.0/token")

    # -- Entra ID: federated client assertion (AKS workload identity)

    def assertion(self, token, client_id=WORKLOAD, assertion_type=None):
        return self.grant(client_id=client_id, client_assertion=token,
                          client_assertion_type=assertion_type or az.ASSERTION_TYPE)

    def test_the_federated_token_file_is_accepted(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "azure", "federated-token")
            az.write_federated_token(self.entra, path)
            with open(path) as f:
                token = f.read()
        claims = az.parse(token)[1]
        self.assertEqual((claims["iss"], claims["sub"], claims["aud"]),
                         (az.CLUSTER_ISSUER, az.FEDERATED_SUBJECT, ["api://AzureADTokenExchange"]))
        status, _, answer = self.assertion(token)
        self.assertEqual(status, 200, answer)
        claims = az.verified(answer["access_token"], self.jwks_key())
        self.assertEqual((claims["appid"], claims["appidacr"], claims["oid"]),
                         (WORKLOAD, "2", az.IDENTITIES[WORKLOAD]["oid"]))

    def test_an_assertion_that_is_not_the_clusters_token_is_refused(self):
        cases = [
            (self.assertion(self.federated(subject="system:serviceaccount:other:sa")), 700213),
            (self.assertion(self.federated(issuer="https://oidc.example/other/")), 700211),
            (self.assertion(self.federated(audience="api://Other")), 700212),
            (self.assertion(self.federated(expires_in=-60)), 700024),
            (self.assertion(self.federated(signed_by_cluster=False)), 700027),
            (self.assertion("not-a-jwt"), 50027),
            (self.assertion(self.federated(), client_id=PUSHER), 700211),
        ]
        for answer, code in cases:
            with self.subTest(code=code):
                self.assertRefused(answer, 401, "invalid_client", code)
        self.assertRefused(self.assertion(self.federated(), assertion_type="jwt"), 400, "invalid_request", 7000216)

    # -- managed identity

    def metadata(self, query, headers=None, path="/metadata/identity/oauth2/token"):
        return call(self.imds, "GET", path + "?" + urllib.parse.urlencode(query), headers=headers)

    def test_imds_needs_the_metadata_header(self):
        query = {"api-version": "2018-02-01", "resource": "https://management.azure.com/"}
        status, _, answer = self.metadata(query)
        self.assertEqual((status, answer["error_description"]), (400, "Required metadata header not specified"))
        status, _, answer = self.metadata(query, {"Metadata": "true", "X-Forwarded-For": "10.0.0.1"})
        self.assertEqual(status, 400)
        status, _, answer = self.metadata(query, {"Metadata": "true"})
        self.assertEqual(status, 200, answer)
        self.assertEqual((answer["client_id"], answer["token_type"], answer["resource"]),
                         (VM_SYSTEM, "Bearer", "https://management.azure.com/"))
        self.assertIsInstance(answer["expires_on"], str)
        self.assertGreater(int(answer["expires_on"]), time.time())
        claims = az.verified(answer["access_token"], self.jwks_key())
        self.assertEqual((claims["oid"], claims["aud"]),
                         (az.IDENTITIES[VM_SYSTEM]["oid"], "https://management.azure.com/"))

    def test_imds_picks_the_identity_the_request_names(self):
        head = {"Metadata": "true"}
        base = {"api-version": "2019-08-01", "resource": "https://containerregistry.azure.net"}
        for key, value in (("client_id", VM_USER), ("object_id", az.IDENTITIES[VM_USER]["oid"]),
                           ("msi_res_id", az.IDENTITIES[VM_USER]["resource_id"])):
            with self.subTest(key=key):
                status, _, answer = self.metadata({**base, key: value}, head)
                self.assertEqual((status, answer["client_id"]), (200, VM_USER), answer)
        status, _, answer = self.metadata({**base, "client_id": PUSHER}, head)
        self.assertEqual((status, answer["error_description"]), (400, "Identity not found"))
        status, _, answer = self.metadata({"resource": "https://management.azure.com/"}, head)
        self.assertEqual(status, 400)
        self.assertIn("api-version", answer["error_description"])

    def test_app_service_needs_the_identity_header(self):
        query = {"api-version": "2019-08-01", "resource": "https://management.azure.com"}
        status, _, _ = self.metadata(query, path="/msi/token")
        self.assertEqual(status, 401)
        status, _, _ = self.metadata(query, {"X-IDENTITY-HEADER": "wrong"}, path="/msi/token")
        self.assertEqual(status, 401)
        status, _, answer = self.metadata(query, {"X-IDENTITY-HEADER": az.IDENTITY_HEADER}, path="/msi/token")
        self.assertEqual(status, 200, answer)
        self.assertEqual(answer["client_id"], VM_SYSTEM)
        self.assertIsInstance(answer["expires_on"], str)

    def test_faults_hit_one_identitys_token_requests(self):
        rules = {"client_id": PUSHER, "rules": [{"status": 503, "retry_after": "2", "times": 1}]}
        self.assertEqual(call(self.idp, "POST", "/_testbed/faults", json.dumps(rules))[0], 200)
        self.assertEqual(self.grant(client_id=PULLER, client_secret="ecrcpbed-pull-secret")[0], 200)
        status, headers, answer = self.grant(client_id=PUSHER, client_secret="ecrcpbed-push-secret")
        self.assertEqual((status, headers["Retry-After"], answer["error"]), (503, "2", "temporarily_unavailable"))
        self.assertEqual(self.grant(client_id=PUSHER, client_secret="ecrcpbed-push-secret")[0], 200)
        # the metadata endpoint's key is the managed identity's client id
        rules = {"client_id": VM_SYSTEM, "rules": [{"status": 429, "times": 1}, {"drop": True, "times": 1}]}
        self.assertEqual(call(self.imds, "POST", "/_testbed/faults", json.dumps(rules))[0], 200)
        query = {"api-version": "2018-02-01", "resource": "https://management.azure.com/"}
        self.assertEqual(self.metadata(query, {"Metadata": "true"})[0], 429)
        with self.assertRaises((ConnectionError, http.client.HTTPException)):
            self.metadata(query, {"Metadata": "true"})
        self.assertEqual(self.metadata(query, {"Metadata": "true"})[0], 200)
        status, _, answer = call(self.idp, "POST", "/_testbed/faults",
                                 json.dumps({"client_id": PUSHER, "rules": [{"corrupt": True}]}))
        self.assertEqual(status, 400)
        self.assertIn("a token endpoint's rule", answer["error"])

    # -- ACR's token server

    def test_the_exchange_takes_an_arm_or_acr_token_for_a_refresh_token(self):
        for scope in ("https://management.azure.com/.default", "https://containerregistry.azure.net/.default",
                      "https://management.core.windows.net//.default"):
            with self.subTest(scope=scope):
                claims = az.parse(self.refresh_token(scope=scope))[1]
                self.assertEqual((claims["grant_type"], claims["aud"], claims["tenant"], claims["sub"]),
                                 ("refresh_token", REGISTRY, az.TENANT, az.IDENTITIES[PUSHER]["oid"]))

    def test_the_exchange_refuses_what_is_not_an_entra_token_for_it(self):
        claims = az.parse(self.entra_token())[1]
        stranger = az.sign(az.new_key(), {"alg": "RS256"}, claims)
        expired = az.sign(self.entra.key, {"alg": "RS256"}, {**claims, "exp": int(time.time()) - 1})
        cases = [
            (self.exchange(self.entra_token(scope="https://storage.azure.com/.default")), 401, "audience"),
            (self.exchange(stranger), 401, "bad signature"),
            (self.exchange(expired), 401, "expired"),
            (self.exchange(self.federated()), 401, "bad signature"),
            (self.exchange(self.entra_token(), tenant="00000000-1111-2222-3333-444444444444"), 401, "tenant"),
            (self.exchange(self.entra_token(), service="other.azurecr.io"), 400, "service"),
            (self.exchange(self.entra_token(), grant_type="refresh_token"), 400, "grant_type"),
        ]
        for (status, _, answer), want, says in cases:
            with self.subTest(says=says):
                self.assertEqual(status, want, answer)
                self.assertIn(says, answer["errors"][0]["message"])

    def test_an_access_token_is_scoped_by_the_identitys_role(self):
        scope = "repository:team/app:pull,push repository:team/other:pull"
        claims = az.parse(self.access_token(scope))[1]
        self.assertEqual((claims["grant_type"], claims["aud"], claims["iss"]),
                         ("access_token", REGISTRY, "Azure Container Registry"))
        self.assertEqual(claims["access"], [{"type": "repository", "name": "team/app", "actions": ["pull", "push"]},
                                            {"type": "repository", "name": "team/other", "actions": ["pull"]}])
        reader = self.refresh_token(client_id=PULLER, secret="ecrcpbed-pull-secret")
        claims = az.parse(self.access_token("repository:team/app:pull,push", reader))[1]
        self.assertEqual(claims["access"], [{"type": "repository", "name": "team/app", "actions": ["pull"]}])

    def test_only_a_refresh_token_buys_an_access_token(self):
        access = self.access_token("repository:team/app:pull")
        for refresh in (access, self.entra_token(), "garbage"):
            status, _, answer = call(self.acr, "POST", "/oauth2/token",
                                     {"grant_type": "refresh_token", "service": REGISTRY,
                                      "scope": "repository:team/app:pull", "refresh_token": refresh})
            self.assertEqual(status, 401, answer)

    def test_docker_logins_with_the_guid_user(self):
        refresh = self.refresh_token()
        query = "/oauth2/token?" + urllib.parse.urlencode({"service": REGISTRY, "scope": "repository:team/app:pull"})
        # what ecrcp sends today for an `az acr login` config: Basic GUID and an empty password
        status, _, answer = call(self.acr, "GET", query, headers=basic(az.ACR_USER, ""))
        self.assertEqual((status, answer["errors"][0]["code"]), (401, "UNAUTHORIZED"))
        status, _, answer = call(self.acr, "GET", query, headers=basic("someone", refresh))
        self.assertEqual(status, 401)
        status, _, answer = call(self.acr, "GET", query, headers=basic(az.ACR_USER, refresh))
        self.assertEqual(status, 200, answer)
        self.assertEqual(az.parse(answer["access_token"])[1]["access"][0]["actions"], ["pull"])
        self.assertNotIn("refresh_token", answer)
        # `docker login -u GUID -p RT` (what `az acr login` runs): a token to keep, the identitytoken
        status, _, answer = call(self.acr, "GET", query + "&offline_token=true&client_id=docker",
                                 headers=basic(az.ACR_USER, refresh))
        self.assertEqual((status, answer.get("refresh_token")), (200, refresh), answer)
        # the OAuth flavour of the same: the password grant
        status, _, answer = call(self.acr, "POST", "/oauth2/token",
                                 {"grant_type": "password", "username": az.ACR_USER, "password": refresh,
                                  "service": REGISTRY, "client_id": "docker", "access_type": "offline", "scope": ""})
        self.assertEqual((status, answer.get("refresh_token")), (200, refresh), answer)
        status, _, _ = call(self.acr, "POST", "/oauth2/token",
                            {"grant_type": "password", "username": az.ACR_USER, "password": "",
                             "service": REGISTRY})
        self.assertEqual(status, 401)
        # the token server's log tells the grants apart
        _, _, answer = call(self.acr, "GET", "/_testbed/oauth")
        mine = [(r["method"], r["status"], r["grant_type"], r["basic_user"], r["username"])
                for r in answer["requests"] if r["path"] == "/oauth2/token"][-6:]
        self.assertEqual(mine, [("GET", 401, None, az.ACR_USER, None), ("GET", 401, None, "someone", None),
                                ("GET", 200, None, az.ACR_USER, None), ("GET", 200, None, az.ACR_USER, None),
                                ("POST", 200, "password", None, az.ACR_USER),
                                ("POST", 401, "password", None, az.ACR_USER)])

    # -- the registry behind the front

    def test_the_registry_takes_only_a_covering_access_token(self):
        seen = self.upstream.seen
        manifest = "/v2/team/app/manifests/v1"
        refresh = self.refresh_token()
        pull = self.access_token("repository:team/app:pull", refresh)
        refused = [
            ("GET", manifest, basic(az.ACR_USER, ""), "invalid_token"),
            ("GET", "/v2/", basic(az.ACR_USER, refresh), "invalid_token"),
            ("GET", manifest, {"Authorization": f"Bearer {refresh}"}, "invalid_token"),
            ("GET", manifest, {"Authorization": f"Bearer {self.entra_token()}"}, "invalid_token"),
            ("PUT", manifest, {"Authorization": f"Bearer {pull}"}, "insufficient_scope"),
            ("GET", "/v2/team/other/manifests/v1", {"Authorization": f"Bearer {pull}"}, "insufficient_scope"),
        ]
        for method, path, headers, error in refused:
            with self.subTest(method=method, path=path, headers=headers["Authorization"][:12]):
                before = len(seen)
                status, answer_headers, answer = call(self.acr, method, path, headers=headers)
                self.assertEqual((status, answer["errors"][0]["code"]), (401, "UNAUTHORIZED"))
                challenge = answer_headers["WWW-Authenticate"]
                self.assertTrue(challenge.startswith(
                    f'Bearer realm="https://{REGISTRY}/oauth2/token",service="{REGISTRY}"'), challenge)
                self.assertIn(f'error="{error}"', challenge)
                self.assertEqual(len(seen), before, "the registry saw a refused request")
        push = self.access_token("repository:team/app:pull,push", refresh)
        for method, path, token in (("GET", manifest, pull), ("HEAD", manifest, pull), ("PUT", manifest, push),
                                    ("POST", "/v2/team/app/blobs/uploads/", push), ("GET", "/v2/", pull)):
            with self.subTest(method=method, path=path):
                status, _, _ = call(self.acr, method, path, headers={"Authorization": f"Bearer {token}"})
                self.assertEqual(status, 200)
                self.assertEqual(seen[-1], (method, path))

    def test_an_expired_token_is_refused_with_acrs_own_challenge(self):
        seen = self.upstream.seen
        manifest = "/v2/team/app/manifests/v1"
        push = self.access_token("repository:team/app:pull,push", self.refresh_token())
        rules = {"repository": "team/app", "rules": [{"method": "PUT", "expire_token": True, "times": 1}]}
        self.assertEqual(call(self.acr, "POST", "/_testbed/faults", json.dumps(rules))[0], 200)
        try:
            before = len(seen)
            status, headers, answer = call(self.acr, "PUT", manifest, headers={"Authorization": f"Bearer {push}"})
            self.assertEqual((status, answer["errors"][0]["code"]), (401, "UNAUTHORIZED"))
            challenge = headers["WWW-Authenticate"]
            self.assertTrue(challenge.startswith(f'Bearer realm="https://{REGISTRY}/oauth2/token"'), challenge)
            self.assertIn('error="invalid_token"', challenge)
            self.assertEqual(len(seen), before, "the registry saw the refused request")
            status, _, _ = call(self.acr, "PUT", manifest, headers={"Authorization": f"Bearer {push}"})
            self.assertEqual(status, 200)
        finally:
            call(self.acr, "POST", "/_testbed/faults", json.dumps({"repository": "team/app", "rules": []}))

    # -- az acr login

    def test_acr_login_writes_the_config_az_acr_login_leaves(self):
        origin = lambda server: "http://127.0.0.1:%d" % server.server_address[1]  # noqa: E731
        refresh = az.acr_login(origin(self.idp), origin(self.acr), REGISTRY, az.TENANT, PUSHER,
                               "ecrcpbed-push-secret")
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "config.json"), "w") as f:
                json.dump({"auths": {"registry.example.test": {"auth": "YWxpY2U6YWxpY2Utc2VjcmV0"}}}, f)
            with open(az.write_docker_config(d, REGISTRY, refresh)) as f:
                config = json.load(f)
        self.assertEqual(config["auths"]["registry.example.test"], {"auth": "YWxpY2U6YWxpY2Utc2VjcmV0"})
        login = config["auths"][REGISTRY]
        self.assertEqual(base64.b64decode(login["auth"]).decode(), "00000000-0000-0000-0000-000000000000:")
        self.assertEqual(login["identitytoken"], refresh)
        self.assertEqual(az.parse(self.access_token("repository:team/app:push", login["identitytoken"]))[1]
                         ["access"][0]["actions"], ["push"])

    # -- az, the Azure CLI's stand-in

    def test_az_logs_in_and_hands_out_tokens_as_the_azure_cli_does(self):
        here = os.path.dirname(os.path.abspath(__file__))
        origin = lambda server: "http://127.0.0.1:%d" % server.server_address[1]  # noqa: E731
        with tempfile.TemporaryDirectory() as d:
            env = {**os.environ, "AZURE_CONFIG_DIR": d, "ECRCP_TESTBED_AZ_AUTHORITY": origin(self.idp),
                   "ECRCP_TESTBED_AZ_ACR_ORIGIN": origin(self.acr), "ECRCP_TESTBED_PYTHON": sys.executable}

            def run(*args):
                done = subprocess.run([os.path.join(here, "azure-cli", "az"), *args], env=env,
                                      capture_output=True, text=True, timeout=30)
                return done.returncode, done.stdout, done.stderr

            token = ["account", "get-access-token", "-o", "json", "--scope",
                     "https://containerregistry.azure.net/.default"]
            self.assertEqual(run(*token), (1, "", "ERROR: Please run 'az login' to setup account.\n"))
            status, _, err = run("login", "--service-principal", "-u", PUSHER, "-p", "wrong", "--tenant", az.TENANT)
            self.assertEqual(status, 1)
            self.assertIn("AADSTS7000215", err)
            status, out, err = run("login", "--service-principal", "-u", PUSHER, "-p", "ecrcpbed-push-secret",
                                   "--tenant", az.TENANT)
            self.assertEqual(status, 0, err)
            status, out, err = run(*token)
            self.assertEqual(status, 0, err)
            answer = json.loads(out)
            self.assertEqual((answer["tokenType"], answer["tenant"]), ("Bearer", az.TENANT))
            self.assertIsInstance(answer["expires_on"], int)
            claims = az.verified(answer["accessToken"], self.jwks_key())
            self.assertEqual((claims["aud"], claims["appid"]), ("https://containerregistry.azure.net", PUSHER))
            status, out, err = run("acr", "login", "--name", "ecrcpbed", "--expose-token")
            self.assertEqual(status, 0, err)
            answer = json.loads(out)
            self.assertEqual((answer["loginServer"], answer["username"]), (REGISTRY, az.ACR_USER))
            self.assertEqual(az.parse(answer["accessToken"])[1]["grant_type"], "refresh_token")


if __name__ == "__main__":
    unittest.main()
