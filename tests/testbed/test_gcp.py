#!/usr/bin/env python3
# tests/testbed/test_gcp.py -- owned by the ecrcp test bed (tests/testbed/).
#
# Tests of the bed's Google Cloud (gcp_front.py) on plain-HTTP loopback ports, no TLS, no
# registry, no root: the metadata server's header checks and token, the token endpoint's
# grants (JWT bearer, refresh token, STS exchange) good and bad, the Artifact Registry API's
# auth and long-running operations, and the registry front's auth and its refusal of a push
# into a repository that does not exist (the pass-through once it does). Run by .ci/run:
#
#   $ECRCP_VENV/bin/python -m unittest discover -s tests/testbed -p 'test_*.py'
#
# Needs `cryptography` (the bed's venv has it); skipped without it.

import base64
import http.client
import http.server
import json
import os
import shutil
import sys
import tempfile
import time
import unittest
import unittest.mock
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import front  # noqa: E402
from test_front import Upstream, serve  # noqa: E402

try:
    import gcp_front  # noqa: E402
    from cryptography.hazmat.primitives import serialization  # noqa: E402
    from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402
except ImportError:  # no cryptography outside the bed's venv
    gcp_front = None

KEY = OTHER_KEY = None


def setUpModule():
    global KEY, OTHER_KEY
    if gcp_front is not None:
        # one key for all tests: generating one takes a good part of a second
        KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def call(server, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    try:
        if isinstance(body, dict):
            body = json.dumps(body)
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        return response.status, dict(response.getheaders()), data
    finally:
        conn.close()


def as_json(answer):
    status, headers, data = answer
    return status, json.loads(data or b"{}")


def form(**fields) -> tuple:
    return urllib.parse.urlencode(fields), {"Content-Type": "application/x-www-form-urlencoded"}


def basic(user, password) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@unittest.skipIf(gcp_front is None, "needs cryptography (the bed's venv)")
class GoogleBed(unittest.TestCase):
    def setUp(self):
        for module in (front, gcp_front):
            quiet = unittest.mock.patch.object(module, "log", lambda *args: None)
            quiet.start()
            self.addCleanup(quiet.stop)
        self.dir = tempfile.mkdtemp(prefix="gcp-bed-")
        self.addCleanup(shutil.rmtree, self.dir)
        self.cloud = gcp_front.Cloud(self.dir, key=KEY)
        self.cloud.write_files()
        self.metadata = serve(gcp_front.plain_server("127.0.0.1:0", gcp_front.MetadataHandler))
        self.metadata.cloud = self.cloud
        self.upstream = serve(http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream))
        self.upstream.seen = []
        self.upstream.answers = {
            ("POST", "/v2/ecrcp-testbed/team/app/blobs/uploads/"): (202, {"Location": "/v2/x/blobs/uploads/s1"}, b""),
            ("POST", "/v2/ecrcp-testbed/app/blobs/uploads/"): (202, {"Location": "/v2/y/blobs/uploads/s2"}, b""),
            ("GET", "/v2/_catalog"): (200, {}, json.dumps(
                {"repositories": ["ecrcp-testbed/team/app", "ecrcp-testbed/team/empty", "other/team/x"]}).encode()),
            ("GET", "/v2/ecrcp-testbed/team/app/tags/list"): (200, {}, b'{"tags": ["v1"]}'),
            ("GET", "/v2/ecrcp-testbed/team/empty/tags/list"): (200, {}, b'{"tags": null}'),
            ("HEAD", "/v2/ecrcp-testbed/team/app/manifests/v1"): (
                200, {"Docker-Content-Digest": "sha256:ab", "Content-Type": "application/vnd.oci.image.index.v1+json"},
                b""),
        }
        upstream = "127.0.0.1:%d" % self.upstream.server_address[1]
        self.api = serve(gcp_front.plain_server("127.0.0.1:0", gcp_front.ApiHandler))
        self.api.cloud = self.cloud
        self.api.images = lambda name: gcp_front.list_images(upstream, name, gcp_front.host_of)
        self.registry = serve(http.server.ThreadingHTTPServer(("127.0.0.1", 0), gcp_front.RegistryHandler))
        self.registry.upstream = upstream
        self.registry.label = "test-gcp-registry"
        self.registry.faults = front.Faults()
        self.registry.stats = front.Stats()
        self.registry.etags = {}
        self.registry.cloud = self.cloud
        self.registry.bearers = {}
        self.cloud.bearer_tables.append(self.registry.bearers)

    def tearDown(self):
        for server in (self.registry, self.api, self.upstream, self.metadata):
            server.shutdown()
            server.server_close()

    # -- helpers

    def file(self, name):
        with open(os.path.join(self.dir, name)) as f:
            return json.load(f) if name.endswith(".json") else f.read()

    def assertion(self, key=None, **claims):
        now = int(time.time())
        doc = {"iss": gcp_front.SA_EMAIL, "scope": gcp_front.CLOUD_PLATFORM,
               "aud": gcp_front.TOKEN_URI, "iat": now, "exp": now + 3600}
        doc.update(claims)
        doc = {k: v for k, v in doc.items() if v is not None}
        sa = self.file("service-account.json")
        key = key or serialization.load_pem_private_key(sa["private_key"].encode(), password=None)
        return gcp_front.sign_jwt(key, {"alg": "RS256", "typ": "JWT", "kid": sa["private_key_id"]}, doc)

    def token(self, **fields):
        body, headers = form(**fields)
        return as_json(call(self.api, "POST", "/token", body, headers))

    def access_token(self):
        status, doc = self.token(grant_type=gcp_front.JWT_BEARER, assertion=self.assertion())
        self.assertEqual(status, 200, doc)
        return doc["access_token"]

    def ar(self, method, path, token, body=None):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return as_json(call(self.api, method, path, body, headers))

    def create(self, token, location="us", repository="team", polls=2):
        parent = f"/v1/projects/ecrcp-testbed/locations/{location}"
        status, op = self.ar("POST", f"{parent}/repositories?repositoryId={repository}", token,
                             {"format": "DOCKER", "dockerConfig": {"immutableTags": True}})
        self.assertEqual(status, 200, op)
        for _ in range(polls):
            status, doc = self.ar("GET", f"/v1/{op['name']}", token)
            self.assertEqual(status, 200, doc)
        self.assertTrue(doc.get("done"), doc)
        return doc

    def push(self, name, headers, host="us-docker.pkg.dev"):
        return call(self.registry, "POST", f"/v2/{name}/blobs/uploads/", b"", dict(headers, Host=host))

    # -- metadata server

    def test_the_metadata_server_wants_its_header_as_google_does(self):
        path = "/computeMetadata/v1/instance/service-accounts/default/token"
        status, headers, _ = call(self.metadata, "GET", path)
        self.assertEqual((status, headers["Metadata-Flavor"]), (403, "Google"))
        status, _, _ = call(self.metadata, "GET", path, headers={"Metadata-Flavor": "google-ish"})
        self.assertEqual(status, 403)
        status, _, _ = call(self.metadata, "GET", path,
                            headers={"Metadata-Flavor": "Google", "X-Forwarded-For": "10.0.0.1"})
        self.assertEqual(status, 403, "a proxied request is refused")
        status, headers, data = call(self.metadata, "GET", path, headers={"Metadata-Flavor": "Google"})
        self.assertEqual((status, headers["Metadata-Flavor"]), (200, "Google"))
        doc = json.loads(data)
        self.assertEqual(sorted(doc), ["access_token", "expires_in", "token_type"])
        self.assertEqual(doc["token_type"], "Bearer")
        self.assertEqual(self.ar("GET", "/v1/projects/p/locations/us/repositories", doc["access_token"]),
                         (200, {}), "the metadata server's token opens the API")

    def test_the_metadata_server_names_its_account_and_project(self):
        flavor = {"Metadata-Flavor": "Google"}
        for path, want in [
            ("/computeMetadata/v1/instance/service-accounts/default/email", gcp_front.GCE_EMAIL),
            ("/computeMetadata/v1/project/project-id", "ecrcp-testbed"),
            ("/computeMetadata/v1/universe/universe-domain", "googleapis.com"),
        ]:
            with self.subTest(path=path):
                self.assertEqual(call(self.metadata, "GET", path, headers=flavor)[2].decode(), want)
        _, _, data = call(self.metadata, "GET", "/computeMetadata/v1/instance/service-accounts/default/?recursive=true",
                          headers=flavor)
        self.assertEqual(json.loads(data)["email"], gcp_front.GCE_EMAIL)
        self.assertEqual(call(self.metadata, "GET", "/computeMetadata/v1/instance/nothing", headers=flavor)[0], 404)
        # asked scopes are the token's: read-only opens GETs and no more
        _, _, data = call(self.metadata, "GET", "/computeMetadata/v1/instance/service-accounts/default/token"
                          "?scopes=https://www.googleapis.com/auth/cloud-platform.read-only", headers=flavor)
        token = json.loads(data)["access_token"]
        self.assertEqual(self.ar("GET", "/v1/projects/p/locations/us/repositories", token)[0], 200)
        status, doc = self.ar("POST", "/v1/projects/p/locations/us/repositories?repositoryId=x", token,
                              {"format": "DOCKER"})
        self.assertEqual((status, doc["error"]["status"]), (403, "PERMISSION_DENIED"))

    # -- the token endpoint

    def test_the_service_account_file_holds_the_key_the_bed_checks(self):
        sa = self.file("service-account.json")
        self.assertEqual((sa["type"], sa["client_email"], sa["token_uri"]),
                         ("service_account", gcp_front.SA_EMAIL, "https://oauth2.googleapis.com/token"))
        status, doc = self.token(grant_type=gcp_front.JWT_BEARER, assertion=self.assertion())
        self.assertEqual(status, 200, doc)
        self.assertEqual((doc["token_type"], doc["expires_in"]), ("Bearer", 3599))
        self.assertEqual(self.cloud.principal(doc["access_token"]),
                         (gcp_front.SA_EMAIL, [gcp_front.CLOUD_PLATFORM]))

    def test_bad_jwt_bearer_grants_get_googles_errors(self):
        now = int(time.time())
        for name, assertion, want in [
            ("another key", self.assertion(key=OTHER_KEY), ("invalid_grant", "Invalid JWT Signature.")),
            ("not a JWT", "abc.def", ("invalid_grant", "Invalid JWT Signature.")),
            ("unknown account", self.assertion(iss="x@p.iam.gserviceaccount.com"),
             ("invalid_grant", "Invalid grant: account not found")),
            ("audience", self.assertion(aud="https://example.test/token"),
             ("invalid_grant", "Invalid JWT: Failed audience check. The right audience is "
                               "https://oauth2.googleapis.com/token")),
            ("expired", self.assertion(iat=now - 7200, exp=now - 3600), ("invalid_grant", gcp_front.SHORT_LIVED)),
            ("too long", self.assertion(exp=now + 7200), ("invalid_grant", gcp_front.SHORT_LIVED)),
            ("no scope", self.assertion(scope=None),
             ("invalid_scope", "Invalid OAuth scope or ID token audience provided.")),
        ]:
            with self.subTest(name):
                status, doc = self.token(grant_type=gcp_front.JWT_BEARER, assertion=assertion)
                self.assertEqual((status, doc["error"], doc["error_description"]), (400,) + want)
        status, doc = self.token(grant_type="client_credentials")
        self.assertEqual((status, doc), (400, {"error": "unsupported_grant_type",
                                               "error_description": "Invalid grant_type: client_credentials"}))
        self.assertEqual(self.cloud.issued, {})

    def test_the_refresh_grant_of_the_authorized_user_file(self):
        user = self.file("authorized-user.json")
        self.assertEqual(user["type"], "authorized_user")
        # JSON, as google-cloud-auth sends it, and a form, as gcloud does
        status, doc = as_json(call(self.api, "POST", "/token", {
            "grant_type": "refresh_token", "client_id": user["client_id"],
            "client_secret": user["client_secret"], "refresh_token": user["refresh_token"]},
            {"Content-Type": "application/json"}))
        self.assertEqual((status, doc["token_type"]), (200, "Bearer"), doc)
        self.assertEqual(self.ar("GET", "/v1/projects/p/locations/us/repositories", doc["access_token"])[0], 200)
        status, _ = self.token(grant_type="refresh_token", client_id=user["client_id"],
                               client_secret=user["client_secret"], refresh_token=user["refresh_token"])
        self.assertEqual(status, 200)
        for fields, want in [
            ({"client_id": "nobody"}, (401, "invalid_client")),
            ({"client_secret": "wrong"}, (401, "invalid_client")),
            ({"refresh_token": "1//stale"}, (400, "invalid_grant")),
        ]:
            with self.subTest(fields=fields):
                sent = dict(grant_type="refresh_token", client_id=user["client_id"],
                            client_secret=user["client_secret"], refresh_token=user["refresh_token"])
                sent.update(fields)
                status, doc = self.token(**sent)
                self.assertEqual((status, doc["error"]), want)

    def test_the_sts_exchange_of_the_external_account_file(self):
        account = self.file("external-account.json")
        self.assertEqual((account["type"], account["token_url"]),
                         ("external_account", "https://sts.googleapis.com/v1/token"))
        with open(account["credential_source"]["file"]) as f:
            subject = f.read()
        good = dict(grant_type=gcp_front.TOKEN_EXCHANGE, audience=account["audience"],
                    scope=gcp_front.CLOUD_PLATFORM, requested_token_type=gcp_front.ACCESS_TOKEN_TYPE,
                    subject_token=subject, subject_token_type=account["subject_token_type"])
        status, doc = as_json(call(self.api, "POST", "/v1/token", *form(**good)))
        self.assertEqual((status, doc["issued_token_type"]), (200, gcp_front.ACCESS_TOKEN_TYPE), doc)
        self.assertEqual(self.ar("GET", "/v1/projects/p/locations/us/repositories", doc["access_token"])[0], 200)
        for fields, want in [
            ({"subject_token": subject[:-2] + "xx"}, "invalid_grant"),
            ({"audience": account["audience"] + "-other"}, "invalid_target"),
            ({"subject_token_type": "urn:ietf:params:oauth:token-type:saml2"}, "invalid_request"),
            ({"grant_type": gcp_front.JWT_BEARER}, "unsupported_grant_type"),
        ]:
            with self.subTest(fields=fields):
                status, doc = as_json(call(self.api, "POST", "/v1/token", *form(**dict(good, **fields))))
                self.assertEqual((status, doc["error"]), (400, want))

    def test_the_url_sourced_file_reads_the_subject_token_from_the_bed_s_token_url(self):
        source = self.file("external-account-url.json")["credential_source"]
        self.assertEqual(source["url"], gcp_front.SUBJECT_TOKEN_URL)
        path = urllib.parse.urlsplit(source["url"]).path
        status, doc = as_json(call(self.api, "GET", path, None, source["headers"]))
        self.assertEqual((status, doc["value"]), (200, self.cloud.subject_token))
        self.assertEqual(call(self.api, "GET", path)[0], 401)

    def test_the_impersonation_file_trades_the_sts_token_for_the_service_account_s(self):
        account = self.file("external-account-impersonated.json")
        self.assertEqual(account["service_account_impersonation_url"], gcp_front.IMPERSONATION_URI)
        with open(account["credential_source"]["file"]) as f:
            subject = f.read()
        status, sts = as_json(call(self.api, "POST", "/v1/token", *form(
            grant_type=gcp_front.TOKEN_EXCHANGE, audience=account["audience"], scope=gcp_front.CLOUD_PLATFORM,
            requested_token_type=gcp_front.ACCESS_TOKEN_TYPE, subject_token=subject,
            subject_token_type=account["subject_token_type"])))
        self.assertEqual(status, 200, sts)
        path = urllib.parse.urlsplit(gcp_front.IMPERSONATION_URI).path
        body = {"scope": [gcp_front.CLOUD_PLATFORM], "lifetime": "3600s"}
        status, doc = self.ar("POST", path, sts["access_token"], body)
        self.assertEqual(status, 200, doc)
        self.assertTrue(doc["expireTime"].endswith("Z"), doc)
        self.assertEqual(self.ar("GET", "/v1/projects/p/locations/us/repositories", doc["accessToken"])[0], 200)
        for token, sent, want in [
            (None, body, 401),
            (self.access_token(), body, 403),
            (sts["access_token"], {"lifetime": "3600s"}, 400),
            (sts["access_token"], dict(body, lifetime="7200s"), 400),
        ]:
            with self.subTest(token=token and token[:12], sent=sent):
                self.assertEqual(self.ar("POST", path, token, sent)[0], want)
        other = path.replace(gcp_front.SA_EMAIL, "nobody@ecrcp-testbed.iam.gserviceaccount.com")
        self.assertEqual(self.ar("POST", other, sts["access_token"], body)[0], 404)

    # -- the Artifact Registry API

    def test_the_api_wants_a_token_issued_here_or_a_self_signed_jwt(self):
        path = "/v1/projects/ecrcp-testbed/locations/us/repositories"
        for token in (None, "ya29.made-up", self.assertion(key=OTHER_KEY)):
            with self.subTest(token=token and token[:12]):
                status, doc = self.ar("GET", path, token)
                self.assertEqual((status, doc["error"]["status"]), (401, "UNAUTHENTICATED"))
        # AIP-4111: a JWT the service account signs itself, with scopes and no audience
        self_signed = self.assertion(aud=None)
        self.assertEqual(self.ar("GET", path, self_signed), (200, {}))
        status, doc = self.ar("GET", path, self.assertion(aud=None, scope="https://www.googleapis.com/auth/pubsub"))
        self.assertEqual((status, doc["error"]["status"]), (403, "PERMISSION_DENIED"))

    def test_a_repository_is_created_by_a_long_running_operation(self):
        token = self.access_token()
        parent = "/v1/projects/ecrcp-testbed/locations/us"
        for query, body, why in [
            ("", {"format": "DOCKER"}, "must not be empty"),
            ("?repositoryId=Team_1", {"format": "DOCKER"}, "must start with a letter"),
            ("?repositoryId=team", {}, "format must be specified"),
            ("?repositoryId=team", {"format": "DOCKER", "colour": "red"}, 'Unknown name "colour"'),
            ("?repositoryId=team", {"format": "DOCKER", "labels": {"Team": "a"}}, "Invalid labels: Team=a"),
            ("?repositoryId=team", {"format": "DOCKER", "labels": {"team": "A b"}}, "Invalid labels: team=A b"),
            ("?repositoryId=team", {"format": "DOCKER", "kmsKeyName": "alias/ecr"}, 'Invalid KMS key name "alias/ecr"'),
        ]:
            with self.subTest(query=query, body=body):
                status, doc = self.ar("POST", f"{parent}/repositories{query}", token, body)
                self.assertEqual((status, doc["error"]["status"]), (400, "INVALID_ARGUMENT"))
                self.assertIn(why, doc["error"]["message"])
        status, op = self.ar("POST", f"{parent}/repositories?repositoryId=team", token,
                             {"format": "DOCKER", "labels": {"team": "a"}, "dockerConfig": {"immutableTags": True}})
        self.assertEqual(status, 200)
        self.assertRegex(op["name"], r"^projects/ecrcp-testbed/locations/us/operations/[0-9a-f-]{36}$")
        self.assertNotIn("done", op)
        self.assertEqual(self.ar("GET", f"{parent}/repositories/team", token)[0], 404, "not before it is done")
        self.assertEqual(self.ar("POST", f"{parent}/repositories?repositoryId=team", token,
                                 {"format": "DOCKER"})[0], 409, "a create under way counts")
        status, doc = self.ar("GET", f"/v1/{op['name']}", token)
        self.assertEqual((status, doc.get("done")), (200, None), "the first poll: still running")
        _, doc = self.ar("GET", f"/v1/{op['name']}", token)
        self.assertTrue(doc["done"])
        self.assertEqual(doc["response"]["name"], "projects/ecrcp-testbed/locations/us/repositories/team")
        status, repository = self.ar("GET", f"{parent}/repositories/team", token)
        self.assertEqual((status, repository["format"], repository["labels"], repository["dockerConfig"]),
                         (200, "DOCKER", {"team": "a"}, {"immutableTags": True}))
        status, doc = self.ar("POST", f"{parent}/repositories?repositoryId=team", token, {"format": "DOCKER"})
        self.assertEqual((status, doc["error"]["status"]), (409, "ALREADY_EXISTS"))
        _, listed = self.ar("GET", f"{parent}/repositories", token)
        self.assertEqual([r["name"] for r in listed["repositories"]], [repository["name"]])
        self.assertEqual(self.ar("GET", f"/v1/{repository['name']}/dockerImages", token),
                         (200, {"dockerImages": [{
                             "name": f"{repository['name']}/dockerImages/app@sha256:ab",
                             "uri": "us-docker.pkg.dev/ecrcp-testbed/team/app@sha256:ab", "tags": ["v1"],
                             "mediaType": "application/vnd.oci.image.index.v1+json"}]}))
        status, op = self.ar("DELETE", f"{parent}/repositories/team", token)
        self.assertEqual(status, 200)
        for _ in range(2):
            _, doc = self.ar("GET", f"/v1/{op['name']}", token)
        self.assertTrue(doc["done"])
        status, doc = self.ar("GET", f"{parent}/repositories/team", token)
        self.assertEqual((status, doc["error"]["status"]), (404, "NOT_FOUND"))
        self.assertEqual(self.ar("GET", "/v1/projects/ecrcp-testbed/locations/us/operations/nope", token)[0], 404)

    def test_the_knobs_expire_tokens_fail_operations_and_deny_creates(self):
        token = self.access_token()
        parent = "/v1/projects/ecrcp-testbed/locations/us"

        def knob(doc):
            return as_json(call(self.api, "POST", "/_testbed/gcp", doc))

        self.assertEqual(knob({"colour": "red"})[0], 400)
        self.assertEqual(knob({"throttle_api": -1})[0], 400)
        knob({"throttle_api": 2})
        for _ in range(2):
            status, doc = self.ar("GET", f"{parent}/repositories", token)
            self.assertEqual((status, doc["error"]["status"]), (429, "RESOURCE_EXHAUSTED"))
        self.assertEqual(self.ar("GET", f"{parent}/repositories", token)[0], 200, "the third passes")
        self.assertEqual(knob({"deny_create": True})[0], 200)
        status, doc = self.ar("POST", f"{parent}/repositories?repositoryId=team", token, {"format": "DOCKER"})
        self.assertEqual((status, doc["error"]["status"]), (403, "PERMISSION_DENIED"))
        self.assertIn("artifactregistry.repositories.create", doc["error"]["message"])
        knob({"deny_create": False, "fail_operations": 1, "polls": 1})
        _, op = self.ar("POST", f"{parent}/repositories?repositoryId=team", token, {"format": "DOCKER"})
        _, doc = self.ar("GET", f"/v1/{op['name']}", token)
        self.assertEqual((doc["done"], doc["error"]["code"], "response" in doc), (True, 9, False), "one poll now")
        self.assertEqual(self.ar("GET", f"{parent}/repositories/team", token)[0], 404, "a failed create made nothing")
        self.create(token, polls=1)
        _, _, data = call(self.registry, "GET", "/v2/token?scope=repository:ecrcp-testbed/team/app:push",
                          headers=dict(basic("oauth2accesstoken", token), Host="us-docker.pkg.dev"))
        bearer = {"Authorization": "Bearer " + json.loads(data)["token"]}
        self.assertEqual(self.push("ecrcp-testbed/team/app", bearer)[0], 202)
        _, state = knob({"expire_tokens": True})
        self.assertEqual(state["repositories"], ["projects/ecrcp-testbed/locations/us/repositories/team"])
        self.assertEqual(self.ar("GET", f"{parent}/repositories", token)[0], 401)
        self.assertEqual(self.push("ecrcp-testbed/team/app", bearer)[0], 401)
        self.assertEqual(self.push("ecrcp-testbed/team/app", basic("oauth2accesstoken", token))[0], 401)
        self.assertEqual(self.push("ecrcp-testbed/team/app", basic("oauth2accesstoken", self.access_token()))[0], 202)

    # -- the registry front

    def test_a_push_into_a_missing_repository_is_refused_then_passes_once_created(self):
        token = self.access_token()
        auth = basic("oauth2accesstoken", token)
        status, _, data = self.push("ecrcp-testbed/team/app", auth)
        self.assertEqual((status, json.loads(data)), (404, {"errors": [{
            "code": "NAME_UNKNOWN", "message": 'Repository "team" not found'}]}))
        status, _, _ = call(self.registry, "PUT", "/v2/ecrcp-testbed/team/app/manifests/v1", b"{}",
                            dict(auth, Host="us-docker.pkg.dev"))
        self.assertEqual(status, 404)
        status, _, data = self.push("ecrcp-testbed/app", auth)
        self.assertEqual((status, json.loads(data)["errors"][0]["code"]), (400, "NAME_INVALID"))
        self.assertEqual(self.upstream.seen, [], "the registry saw none of it")
        self.create(token)
        status, headers, _ = self.push("ecrcp-testbed/team/app", auth)
        self.assertEqual((status, headers["Location"]), (202, "/v2/x/blobs/uploads/s1"))
        self.assertEqual(self.upstream.seen, [("POST", "/v2/ecrcp-testbed/team/app/blobs/uploads/")])
        # the same repository id in another location is another repository
        self.assertEqual(self.push("ecrcp-testbed/team/app", auth, host="europe-docker.pkg.dev")[0], 404)

    def test_the_registry_takes_only_tokens_issued_here(self):
        self.create(self.access_token())
        status, headers, data = self.push("ecrcp-testbed/team/app", {})
        self.assertEqual(status, 401)
        self.assertEqual(headers["WWW-Authenticate"],
                         'Bearer realm="https://us-docker.pkg.dev/v2/token",service="us-docker.pkg.dev"')
        for auth in (basic("oauth2accesstoken", "ya29.made-up"), basic("alice", self.access_token()),
                     basic("_json_key", '{"private_key": "no"}'), {"Authorization": "Bearer gar.made-up"}):
            with self.subTest(auth=auth):
                self.assertEqual(self.push("ecrcp-testbed/team/app", auth)[0], 401)
        key = json.dumps(self.file("service-account.json"))
        self.assertEqual(self.push("ecrcp-testbed/team/app", basic("_json_key", key))[0], 202)
        self.assertEqual(self.push("ecrcp-testbed/team/app",
                                   basic("_json_key_base64", base64.b64encode(key.encode()).decode()))[0], 202)
        self.assertEqual(len(self.upstream.seen), 2)

    def test_the_challenge_flow_hands_out_bearer_tokens_for_the_scope_asked(self):
        self.create(self.access_token())
        host = {"Host": "us-docker.pkg.dev"}
        scope = "?service=us-docker.pkg.dev&scope=repository:ecrcp-testbed/team/app:pull,push"
        status, _, data = call(self.registry, "GET", "/v2/token" + scope,
                               headers=dict(basic("oauth2accesstoken", "ya29.made-up"), **host))
        self.assertEqual(status, 401)
        status, _, data = call(self.registry, "GET", "/v2/token" + scope,
                               headers=dict(basic("oauth2accesstoken", self.access_token()), **host))
        self.assertEqual(status, 200)
        bearer = {"Authorization": "Bearer " + json.loads(data)["token"]}
        self.assertEqual(call(self.registry, "GET", "/v2/", headers=dict(bearer, **host))[0], 404,
                         "the ping passes (the stand-in registry answers 404)")
        self.assertEqual(self.push("ecrcp-testbed/team/app", bearer)[0], 202)
        status, _, data = self.push("ecrcp-testbed/team/other", bearer)
        self.assertEqual((status, json.loads(data)["errors"][0]["code"]), (403, "DENIED"))
        self.assertEqual(self.push("ecrcp-testbed/team/app", bearer, host="gcr.io")[0], 401,
                         "a bearer token is its host's")
        # anonymous: a token that grants nothing
        _, _, data = call(self.registry, "GET", "/v2/token" + scope, headers=host)
        anonymous = {"Authorization": "Bearer " + json.loads(data)["token"]}
        status, _, data = self.push("ecrcp-testbed/team/app", anonymous)
        self.assertEqual(status, 403)
        self.assertIn("Unauthenticated request", json.loads(data)["errors"][0]["message"])

    def test_gcr_io_names_live_in_the_gcr_io_repository(self):
        token = self.access_token()
        auth = basic("oauth2accesstoken", token)
        status, _, data = self.push("ecrcp-testbed/app", auth, host="gcr.io")
        self.assertEqual((status, json.loads(data)["errors"][0]["message"]), (404, 'Repository "gcr.io" not found'))
        self.create(token, repository="gcr.io")
        self.assertEqual(self.push("ecrcp-testbed/app", auth, host="gcr.io")[0], 202)
        # the regional hosts are repositories of their own, in their multi-region
        self.assertEqual(self.push("ecrcp-testbed/app", auth, host="eu.gcr.io")[0], 404)
        self.create(token, location="europe", repository="eu.gcr.io")
        self.assertEqual(self.push("ecrcp-testbed/app", auth, host="eu.gcr.io")[0], 202)


if __name__ == "__main__":
    unittest.main()
