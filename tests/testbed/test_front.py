#!/usr/bin/env python3
# tests/testbed/test_front.py -- owned by the ecrcp test bed (tests/testbed/).
#
# Tests of the fronts' rule engine (front.py, api_front.py, hub_front.py): which rules are
# valid, which requests they match, which rule fires and how often ("times", "skip",
# "every"), the path helpers, the counters; then the actions on the wire, through a front
# on a plain-HTTP loopback port in front of a small scripted upstream (no TLS, no registry,
# no root). Run by .ci/run, in a second or two:
#
#   $ECRCP_VENV/bin/python -m unittest discover -s tests/testbed -p 'test_*.py'
#
# Standard library only (hub_front.py needs cryptography, which the bed's venv has; its
# tests are skipped without it).

import hashlib
import http.client
import http.server
import json
import os
import sys
import threading
import unittest
import unittest.mock

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import api_front  # noqa: E402
import front  # noqa: E402

try:
    import hub_front  # noqa: E402
except ImportError:  # no cryptography outside the bed's venv
    hub_front = None


def take(faults, method="GET", path="/v2/team/app/manifests/1", repository="team/app", body=None,
         authorized=False):
    rule = faults.take(repository, method, path, body, authorized)
    return None if rule is None else rule.doc.get("name", rule.kind)


class RuleValidation(unittest.TestCase):
    def test_refused_rules_say_why(self):
        for doc, why in [
            ({"status": 500, "colour": "red"}, "unknown rule keys ['colour']"),
            ({"status": 500, "drop": True}, "one action per rule"),
            ({"method": "GET"}, "does nothing"),
            ({"status": 500, "on": "both"}, "'on' is 'request' or 'response'"),
            ({"status": 500, "every": -1}, "'every' is 1 or more"),
            ({"status": 500, "every": 0}, "'every' is 1 or more, not 0"),
            ({"status": 429, "over": 0}, "'over' is 1 or more, not 0"),
            ({"serve": "text"}, "'serve' is"),
            ("status", "a rule is an object"),
        ]:
            with self.subTest(doc=doc):
                with self.assertRaisesRegex(ValueError, why.replace("[", r"\[").replace("(", r"\(")):
                    front.Rule(doc)

    def test_a_rule_is_its_action_or_else_its_delay_rate_or_content_type(self):
        for doc, kind in [
            ({"status": 503}, "status"),
            ({"drop": True, "delay": 1}, "drop"),
            ({"drop": False, "delay": 1}, "delay"),
            ({"rate": 1000}, "rate"),
            ({"content_type": "text/plain"}, "content_type"),
            ({"refuse_mount": True}, "refuse_mount"),
        ]:
            with self.subTest(doc=doc):
                self.assertEqual(front.Rule(doc).kind, kind)

    def test_a_delay_on_the_response_holds_the_answer_not_the_request(self):
        rule = front.Rule({"delay": 2, "on": "response"})
        self.assertEqual((rule.delay, rule.delay_answer), (0, 2))
        rule = front.Rule({"delay": 2})
        self.assertEqual((rule.delay, rule.delay_answer), (2, 0))

    def test_the_side_a_rule_acts_on(self):
        self.assertTrue(front.Rule({"reset_after": 5}).acts_on_request(True))
        self.assertFalse(front.Rule({"reset_after": 5}).acts_on_request(False))
        self.assertFalse(front.Rule({"reset_after": 5, "on": "response"}).acts_on_request(True))
        self.assertTrue(front.Rule({"reset_after": 5, "on": "request"}).acts_on_request(False))


class Matching(unittest.TestCase):
    def test_method_path_and_body(self):
        rule = front.Rule({"method": ["put", "POST"], "path": "/blobs/uploads/", "body": "needle",
                           "status": 500})
        self.assertTrue(rule.matches("PUT", "/v2/a/blobs/uploads/x", b"a needle here", False))
        self.assertFalse(rule.matches("GET", "/v2/a/blobs/uploads/x", b"needle", False))
        self.assertFalse(rule.matches("PUT", "/v2/a/manifests/1", b"needle", False))
        self.assertFalse(rule.matches("PUT", "/v2/a/blobs/uploads/x", b"haystack", False))
        # A body that was not looked at (large, or chunked) never matches a body rule.
        self.assertFalse(rule.matches("PUT", "/v2/a/blobs/uploads/x", None, False))

    def test_the_path_is_searched_with_its_query(self):
        rule = front.Rule({"path": r"digest=sha256%3Aab", "status": 500})
        self.assertTrue(rule.matches("PUT", "/upload/1?state=x&digest=sha256%3Aab12", None, False))
        self.assertTrue(front.Rule({"status": 500}).matches("HEAD", "/anything", None, False))

    def test_refuse_mount_matches_only_a_mounting_post(self):
        rule = front.Rule({"refuse_mount": True})
        self.assertTrue(rule.matches("POST", "/v2/a/blobs/uploads/?mount=sha256:1&from=b", None, False))
        self.assertFalse(rule.matches("POST", "/v2/a/blobs/uploads/", None, False))
        self.assertFalse(rule.matches("GET", "/v2/a/blobs/uploads/?mount=sha256:1", None, False))

    def test_expire_token_matches_only_an_authorized_request(self):
        rule = front.Rule({"expire_token": True})
        self.assertTrue(rule.matches("GET", "/v2/a/manifests/1", None, True))
        self.assertFalse(rule.matches("GET", "/v2/a/manifests/1", None, False))


class Firing(unittest.TestCase):
    def test_the_first_rule_with_uses_left_fires_and_counts_them(self):
        faults = front.Faults()
        faults.replace("team/app", [{"status": 503, "times": 2, "code": "first"},
                                    {"status": 500, "code": "second"}])
        fired = [faults.take("team/app", "GET", "/v2/team/app/manifests/1").code for _ in range(4)]
        self.assertEqual(fired, ["first", "first", "second", "second"])
        report = faults.report("team/app")["team/app"]
        self.assertEqual([(r["fired"], r["times_left"]) for r in report], [(2, 0), (2, None)])

    def test_skip_lets_requests_through_before_the_rule_fires(self):
        faults = front.Faults()
        faults.replace("team/app", [{"status": 503, "skip": 2, "times": 1}])
        fired = [take(faults) for _ in range(4)]
        self.assertEqual(fired, [None, None, "status", None])

    def test_every_fires_on_each_nth_match_after_the_skip(self):
        faults = front.Faults()
        faults.replace("team/app", [{"status": 503, "skip": 1, "every": 3}])
        fired = [take(faults) is not None for _ in range(8)]
        self.assertEqual(fired, [False, False, False, True, False, False, True, False])

    def test_over_fires_only_beyond_its_rate(self):
        faults = front.Faults()
        faults.replace("team/app", [{"status": 429, "over": 3}])
        fired = [take(faults) is not None for _ in range(5)]
        self.assertEqual(fired, [False, False, False, True, True])
        rule = faults.by_repository["team/app"][0]
        # A third of a second later, one token has come back; a second later, all three.
        rule.tokens_at -= 1 / 3 + 0.01
        self.assertEqual([take(faults) is not None for _ in range(2)], [False, True])
        rule.tokens_at -= 5
        self.assertEqual([take(faults) is not None for _ in range(4)], [False, False, False, True])

    def test_a_rule_that_does_not_match_uses_nothing(self):
        faults = front.Faults()
        faults.replace("team/app", [{"method": "PUT", "status": 503, "times": 1}])
        self.assertIsNone(take(faults, method="GET"))
        self.assertEqual(take(faults, method="PUT"), "status")
        self.assertIsNone(take(faults, method="PUT"))

    def test_rules_are_per_repository(self):
        faults = front.Faults()
        faults.replace("team/app", [{"status": 503}])
        self.assertIsNone(take(faults, repository="team/other"))
        self.assertEqual(take(faults), "status")

    def test_a_replacement_is_all_valid_or_changes_nothing(self):
        faults = front.Faults()
        faults.replace("team/app", [{"status": 503}])
        with self.assertRaises(ValueError):
            faults.replace("team/app", [{"status": 500}, {"bogus": 1}])
        self.assertEqual(faults.report("team/app")["team/app"][0]["status"], 503)
        faults.replace("team/app", [])
        self.assertEqual(faults.report(), {})
        self.assertIsNone(take(faults))

    def test_bodies_are_looked_at_only_for_a_repository_whose_rules_need_them(self):
        faults = front.Faults()
        faults.replace("team/app", [{"body": "subject", "status": 400}])
        faults.replace("team/other", [{"status": 400}])
        self.assertTrue(faults.looks_at_bodies("team/app"))
        self.assertFalse(faults.looks_at_bodies("team/other"))
        self.assertFalse(faults.looks_at_bodies("team/none"))


class Paths(unittest.TestCase):
    def test_repository_of(self):
        for path, repository in [
            ("/v2/team/app/manifests/1", "team/app"),
            ("/v2/a/b/c/blobs/uploads/?mount=x", "a/b/c"),
            ("/v2/library/redis/tags/list?n=2", "library/redis"),
            ("/v2/team/app/referrers/sha256:ab", "team/app"),
            ("/v2/", ""),
            ("/v2/_catalog", ""),
            ("/token?scope=repository:team/app:pull", ""),
        ]:
            with self.subTest(path=path):
                self.assertEqual(front.repository_of(path), repository)

    def test_a_mount_is_recognised_and_left_out(self):
        path = "/v2/a/blobs/uploads/?mount=sha256%3A1&from=team%2Fb&state=x"
        self.assertTrue(front.asks_mount(path))
        self.assertFalse(front.asks_mount("/v2/a/blobs/uploads/?from=b"))
        self.assertEqual(front.without_mount(path), "/v2/a/blobs/uploads/?state=x")
        self.assertEqual(front.without_mount("/v2/a/blobs/uploads/?mount=x&from=y"), "/v2/a/blobs/uploads/")


class Counters(unittest.TestCase):
    def test_totals_and_a_repository_log(self):
        stats = front.Stats()
        for method, status, fault in [("GET", 200, None), ("PUT", 503, "status"), ("PUT", 201, None)]:
            stats.add("team/app", {"method": method, "path": "/v2/team/app/x", "status": status,
                                   "bytes_in": 10, "bytes_out": 1, "fault": fault})
        stats.add("", {"method": "GET", "path": "/v2/", "status": 200, "bytes_in": 0, "bytes_out": 0,
                       "fault": None})
        total = stats.report()
        self.assertEqual((total["requests"], total["faults"], total["bytes_in"]), (4, 1, 30))
        self.assertEqual(total["repositories"]["team/app"]["requests"], 3)
        one = stats.report("team/app")
        self.assertEqual(one["by_method"], {"GET": 1, "PUT": 2})
        self.assertEqual(one["by_status"], {"200": 1, "503": 1, "201": 1})
        self.assertEqual([entry["status"] for entry in one["log"]], [200, 503, 201])
        self.assertEqual(stats.report("team/none")["requests"], 0)


class ApiRules(unittest.TestCase):
    def test_an_operation_matches_its_name_exactly(self):
        rule = api_front.ApiRule({"operation": ["CreateRepository", "PutImage"], "error": "ServerException"})
        self.assertTrue(rule.matches("POST", "CreateRepository", None, False))
        self.assertTrue(rule.matches("POST", "PutImage", None, False))
        self.assertFalse(rule.matches("POST", "CreateRepositoryCreationTemplate", None, False))
        self.assertEqual(rule.status, 500)
        self.assertEqual(rule.doc["operation"], ["CreateRepository", "PutImage"], "reported as written")

    def test_an_error_takes_the_apis_status_unless_given_one(self):
        self.assertEqual(api_front.ApiRule({"error": "ThrottlingException"}).status, 400)
        self.assertEqual(api_front.ApiRule({"error": "ThrottlingException", "status": 429}).status, 429)
        with self.assertRaisesRegex(ValueError, "no default status"):
            api_front.ApiRule({"error": "NoSuchException"})

    def test_rules_are_keyed_by_repository_or_access_key(self):
        self.assertEqual(api_front.key_of(b'{"repositoryName": "team/app"}', ""), "team/app")
        self.assertEqual(api_front.key_of(b'{"repositoryNames": ["one"]}', ""), "one")
        signed = "AWS4-HMAC-SHA256 Credential=AKIDTEST/20260101/us-east-1/ecr/aws4_request, SignedHeaders=x"
        self.assertEqual(api_front.key_of(b"{}", signed), "AKIDTEST")
        self.assertEqual(api_front.key_of(b'{"repositoryNames": ["a", "b"]}', signed), "AKIDTEST")
        self.assertEqual(api_front.key_of(b"not json", ""), "")
        self.assertEqual(api_front.operation_of("AmazonEC2ContainerRegistry_V20150921.PutImage"), "PutImage")

    def test_api_faults_take_api_rules(self):
        faults = api_front.ApiFaults()
        faults.replace("team/app", [{"operation": "PutImage", "error": "ThrottlingException", "times": 1}])
        self.assertIsNone(faults.take("team/app", "POST", "CreateRepository"))
        self.assertEqual(faults.take("team/app", "POST", "PutImage").error, "ThrottlingException")
        self.assertIsNone(faults.take("team/app", "POST", "PutImage"))


@unittest.skipIf(hub_front is None, "hub_front.py needs cryptography (the bed's venv has it)")
class HubRules(unittest.TestCase):
    def test_scopes_are_granted_by_caller_and_repository(self):
        exists = {"library/redis", "team/private"}.__contains__
        scopes = ["repository:library/redis:pull,push repository:library/none:pull"]
        anonymous = hub_front.grant(scopes, None, exists)
        self.assertEqual([(a["name"], a["actions"]) for a in anonymous],
                         [("library/redis", ["pull"]), ("library/none", [])])
        known = hub_front.grant(scopes, "someone", exists)
        self.assertEqual(known[0]["actions"], ["pull", "push"])
        self.assertEqual(hub_front.repositories(["repository:host:5000/a:pull"]),
                         [("repository", "host:5000/a", ["pull"])])

    def test_a_token_throttle_counts_its_times(self):
        throttles = hub_front.Throttles()
        throttles.update({"repository": "library/x", "status": 429, "retry_after": "60", "times": 2})
        self.assertEqual(throttles.take(["library/y", "library/x"])["status"], 429)
        self.assertIsNotNone(throttles.take(["library/x"]))
        self.assertIsNone(throttles.take(["library/x"]))
        throttles.update({"repository": "library/x", "status": 503})
        throttles.update({"repository": "library/x", "status": None})
        self.assertEqual(throttles.snapshot(), {})

    def test_a_spent_repository_is_exhausted_alone(self):
        limit = hub_front.RateLimit(100, 21600)
        limit.update({"spent": ["library/spent"]})
        self.assertTrue(limit.exhausted("library/spent"))
        self.assertFalse(limit.exhausted("library/other"))
        self.assertEqual(limit.headers("library/spent")["ratelimit-remaining"], "0;w=21600")
        limit.update({"remaining": 1, "enforce": True})
        limit.use_one()
        self.assertTrue(limit.exhausted("library/other"))


# ---------------------------------------------------------------- on the wire


class Upstream(http.server.BaseHTTPRequestHandler):
    """A registry stand-in: answers from `server.answers` by method and path prefix, and
    notes every request it sees in `server.seen`."""

    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.server.seen.append((self.command, self.path))
        status, headers, body = 404, {}, b""
        for (method, prefix), found in self.server.answers.items():
            if method == self.command and self.path.startswith(prefix):
                status, headers, body = found
                break
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = answer


def serve(server):
    server.daemon_threads = True
    # A short poll: shutdown() waits for it, once per test.
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    return server


class OnTheWire(unittest.TestCase):
    LAYER = bytes(range(256)) * 40

    def setUp(self):
        quiet = unittest.mock.patch.object(front, "log", lambda label, msg: None)
        quiet.start()
        self.addCleanup(quiet.stop)
        self.upstream = serve(http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream))
        self.upstream.seen = []
        self.upstream.answers = {
            ("POST", "/v2/team/app/blobs/uploads/"): (202, {"Location": "/v2/team/app/blobs/uploads/s1?x=1"}, b""),
            ("GET", "/v2/team/app/blobs/"): (200, {}, self.LAYER),
            ("GET", "/v2/team/app/tags/list"): (
                200, {"Content-Type": "application/json"},
                json.dumps({"name": "team/app", "tags": ["c", "a", "e", "b", "d"]}).encode()),
        }
        self.front = serve(http.server.ThreadingHTTPServer(("127.0.0.1", 0), front.FrontHandler))
        self.front.upstream = "127.0.0.1:%d" % self.upstream.server_address[1]
        self.front.label = "test-front"
        self.front.faults = front.Faults()
        self.front.stats = front.Stats()
        self.front.etags = {}

    def tearDown(self):
        for server in (self.front, self.upstream):
            server.shutdown()
            server.server_close()

    def request(self, method, path, body=None, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.front.server_address[1], timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            try:
                data = response.read()
            except http.client.IncompleteRead as cut:
                data = cut.partial
            return response.status, dict(response.getheaders()), data
        finally:
            conn.close()

    def rules(self, *rules, repository="team/app"):
        status, _, answer = self.request("POST", "/_testbed/faults",
                                         json.dumps({"repository": repository, "rules": list(rules)}))
        return status, json.loads(answer)

    def test_a_status_rule_answers_for_the_registry_which_sees_nothing(self):
        self.rules({"method": "GET", "status": 503, "retry_after": "2", "times": 1})
        status, headers, body = self.request("GET", "/v2/team/app/blobs/sha256:ab")
        self.assertEqual(status, 503)
        self.assertEqual(headers["Retry-After"], "2")
        self.assertEqual(json.loads(body)["errors"][0]["code"], "UNAVAILABLE")
        self.assertEqual(self.upstream.seen, [])
        status, _, body = self.request("GET", "/v2/team/app/blobs/sha256:ab")
        self.assertEqual((status, body), (200, self.LAYER), "one time only")
        stats = json.loads(self.request("GET", "/_testbed/stats?repo=team/app")[2])
        self.assertEqual([(e["status"], e["fault"]) for e in stats["log"]], [(503, "status"), (200, None)])

    def test_a_refused_mount_reaches_the_registry_as_a_plain_upload(self):
        self.rules({"refuse_mount": True})
        status, headers, _ = self.request("POST", "/v2/team/app/blobs/uploads/?mount=sha256%3A1&from=team%2Fb", b"")
        self.assertEqual(status, 202)
        self.assertEqual(self.upstream.seen, [("POST", "/v2/team/app/blobs/uploads/")])
        self.assertEqual(headers["Location"], "/v2/team/app/blobs/uploads/s1?x=1")

    def test_relocate_moves_the_session_to_another_origin_keeping_path_and_query(self):
        self.rules({"method": "POST", "relocate": "http://127.0.0.9:8080"})
        _, headers, _ = self.request("POST", "/v2/team/app/blobs/uploads/", b"")
        self.assertEqual(headers["Location"], "http://127.0.0.9:8080/v2/team/app/blobs/uploads/s1?x=1")

    def test_redirect_and_serve_answer_without_the_registry(self):
        self.rules({"path": "/blobs/", "redirect": "https://storage.example/blob?sig=1"},
                   {"path": "/manifests/", "serve": {"content_type": "text/plain", "body": "odd"}})
        status, headers, _ = self.request("GET", "/v2/team/app/blobs/sha256:ab")
        self.assertEqual((status, headers["Location"]), (307, "https://storage.example/blob?sig=1"))
        status, headers, body = self.request("GET", "/v2/team/app/manifests/1")
        self.assertEqual((status, body, headers["Content-Type"]), (200, b"odd", "text/plain"))
        self.assertEqual(headers["Docker-Content-Digest"], "sha256:" + hashlib.sha256(b"odd").hexdigest())
        self.assertEqual(self.upstream.seen, [])

    def test_corrupt_flips_one_byte_where_asked(self):
        self.rules({"method": "GET", "corrupt": True, "corrupt_at": 10})
        _, _, body = self.request("GET", "/v2/team/app/blobs/sha256:ab")
        self.assertEqual(len(body), len(self.LAYER))
        self.assertEqual([i for i in range(len(body)) if body[i] != self.LAYER[i]], [10])

    def test_reset_after_cuts_the_answer_short(self):
        self.rules({"method": "GET", "reset_after": 1000})
        try:
            _, _, body = self.request("GET", "/v2/team/app/blobs/sha256:ab")
        except ConnectionResetError:
            body = b""
        self.assertLess(len(body), len(self.LAYER))

    def test_an_invalid_rule_is_refused_with_its_reason(self):
        status, answer = self.rules({"status": 500, "drop": True})
        self.assertEqual(status, 400)
        self.assertIn("one action per rule", answer["error"])

    def test_tag_lists_are_paged_as_docker_hub_pages_them(self):
        status, headers, body = self.request("GET", "/v2/team/app/tags/list?n=2")
        self.assertEqual((status, json.loads(body)["tags"]), (200, ["a", "b"]))
        self.assertEqual(headers["Link"], '</v2/team/app/tags/list?n=2&last=b>; rel="next"')
        _, headers, body = self.request("GET", "/v2/team/app/tags/list?n=2&last=d")
        self.assertEqual(json.loads(body)["tags"], ["e"])
        self.assertNotIn("Link", headers)
        self.assertEqual(self.request("GET", "/v2/team/app/tags/list?n=1001")[0], 400)
        _, _, body = self.request("GET", "/v2/team/app/tags/list")
        self.assertEqual(json.loads(body)["tags"], ["c", "a", "e", "b", "d"], "unpaged: as the registry said")

    def test_a_repository_with_etags_gets_304_for_a_page_it_has(self):
        self.request("POST", "/_testbed/etags", json.dumps({"repository": "team/app", "page": 2}))
        status, headers, body = self.request("GET", "/v2/team/app/tags/list?n=100")
        self.assertEqual(json.loads(body)["tags"], ["a", "b"], "the page size wins over n")
        etag = headers["ETag"]
        status, _, _ = self.request("GET", "/v2/team/app/tags/list?n=100", headers={"If-None-Match": etag})
        self.assertEqual(status, 304)


if __name__ == "__main__":
    unittest.main()
