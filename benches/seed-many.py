#!/usr/bin/env python3
# benches/seed-many.py -- seeds many small images into the test bed, fast, for the scale
# benchmark (benches/sync-scale) and the scale test (tests/e2e/scale.rs).
#
#   seed-many.py --count N --repo-prefix bench/img --tag 1
#                [--mirror HOST --mirror-prefix bench/ --mirror-user USER:PASS]
#
# Pushes one tiny image (tests/testbed/image.py's, deterministic) under N repositories of
# the fake Docker Hub, PREFIX1 .. PREFIXN, all with tag TAG: its blobs are uploaded once, to
# PREFIX1, and every other repository gets them by a cross-repository mount and then the
# manifest, so each repository costs three requests (a registry that answers a mount with
# an upload session gets the blob sent). With --mirror, the same image lands
# under MIRROR_PREFIX + PREFIXi on that registry too (an up-to-date mirror: a no-change
# sync finds the same digest on both sides). Tokens for the hub cover 50 repositories
# each. Requests run in parallel (--jobs), each thread keeping its connection open.
# Prints the image's manifest digest. Standard library, plus image.py.

import argparse
import base64
import concurrent.futures
import http.client
import json
import os
import sys
import threading
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "testbed"))
import image  # noqa: E402  (tests/testbed/image.py)

HUB = "registry-1.docker.io"
HUB_USER = "hubadmin:hubadmin-secret"
TOKEN_REALM = "auth.docker.io"
TOKEN_SERVICE = "registry.docker.io"
SCOPES_PER_TOKEN = 50


class Connections(threading.local):
    """One open HTTPS connection per thread and host."""

    def __init__(self):
        self.by_host = {}

    def request(self, host, method, path, body=None, headers=None):
        for attempt in (1, 2):
            conn = self.by_host.get(host)
            if conn is None:
                conn = http.client.HTTPSConnection(host, context=image.ssl_context(), timeout=120)
                self.by_host[host] = conn
            try:
                conn.request(method, path, body=body, headers=headers or {})
                resp = conn.getresponse()
                return resp.status, resp.headers, resp.read()
            except (http.client.HTTPException, OSError):
                conn.close()
                del self.by_host[host]
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


CONNECTIONS = Connections()


def basic(user: str) -> str:
    return "Basic " + base64.b64encode(user.encode()).decode()


def hub_token(repositories, source) -> str:
    query = [("service", TOKEN_SERVICE), ("scope", f"repository:{source}:pull")]
    query += [("scope", f"repository:{name}:pull,push") for name in repositories]
    status, _, body = CONNECTIONS.request(TOKEN_REALM, "GET", "/token?" + urllib.parse.urlencode(query),
                                          headers={"Authorization": basic(HUB_USER)})
    if status != 200:
        raise SystemExit(f"seed-many: token request failed: HTTP {status}: {body[:200]!r}")
    return "Bearer " + json.loads(body)["token"]


def upload(host, auth, repository, blob):
    """Uploads `blob` into `repository` unless it is there."""
    headers = {"Authorization": auth}
    status, _, _ = CONNECTIONS.request(host, "HEAD", f"/v2/{repository}/blobs/{blob.digest}", headers=headers)
    if status == 200:
        return
    status, rh, body = CONNECTIONS.request(host, "POST", f"/v2/{repository}/blobs/uploads/", body=b"",
                                           headers=dict(headers, **{"Content-Length": "0"}))
    if status != 202:
        raise SystemExit(f"seed-many: starting an upload to {host}/{repository}: HTTP {status}: {body[:200]!r}")
    finish_upload(host, headers, repository, rh["Location"], blob)


def finish_upload(host, headers, repository, location, blob):
    """Sends `blob` whole to the upload session at `location`."""
    location = urllib.parse.urlsplit(location)
    path = location.path + "?" + "&".join(filter(None, [location.query, "digest=" + urllib.parse.quote(blob.digest)]))
    status, _, body = CONNECTIONS.request(host, "PUT", path, body=b"".join(blob.pieces), headers=dict(
        headers, **{"Content-Type": "application/octet-stream", "Content-Length": str(blob.size)}))
    if status != 201:
        raise SystemExit(f"seed-many: uploading to {host}/{repository}: HTTP {status}: {body[:200]!r}")


def mount_and_tag(host, auth, repository, source, blobs, manifest, tag):
    headers = {"Authorization": auth}
    for blob in blobs:
        query = urllib.parse.urlencode({"mount": blob.digest, "from": source})
        status, rh, body = CONNECTIONS.request(host, "POST", f"/v2/{repository}/blobs/uploads/?{query}", body=b"",
                                               headers=dict(headers, **{"Content-Length": "0"}))
        if status == 202:
            # The registry opened an upload instead (distribution does, now and then, under
            # load): finish it with the blob.
            finish_upload(host, headers, repository, rh["Location"], blob)
        elif status != 201:
            raise SystemExit(f"seed-many: mounting into {host}/{repository}: HTTP {status}: {body[:200]!r}")
    status, _, body = CONNECTIONS.request(host, "PUT", f"/v2/{repository}/manifests/{tag}", body=manifest,
                                          headers=dict(headers, **{"Content-Type": image.MT["docker"]["manifest"]}))
    if status != 201:
        raise SystemExit(f"seed-many: tagging {host}/{repository}:{tag}: HTTP {status}: {body[:200]!r}")


def seed(host, names, tag, blobs, manifest, auth_for, jobs):
    """The image under every name in `names` on `host`; `auth_for(group)` authorizes a group."""
    first = names[0]
    auth = auth_for([first])
    for blob in blobs:
        upload(host, auth, first, blob)
    groups = [names[i:i + SCOPES_PER_TOKEN] for i in range(0, len(names), SCOPES_PER_TOKEN)]

    def one_group(group):
        auth = auth_for(group)
        for name in group:
            mount_and_tag(host, auth, name, first, blobs, manifest, tag)

    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        for _ in pool.map(one_group, groups):
            pass


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--repo-prefix", required=True, help="hub repositories are PREFIX1 .. PREFIXN")
    ap.add_argument("--tag", default="1")
    ap.add_argument("--mirror", help="a registry to hold the same images (an up-to-date mirror)")
    ap.add_argument("--mirror-prefix", default="", help="the mirror's repositories are MIRROR_PREFIX + hub name")
    ap.add_argument("--mirror-user", help="USER:PASS for the mirror (basic auth)")
    ap.add_argument("--jobs", type=int, default=8)
    args = ap.parse_args()
    if args.count < 1:
        raise SystemExit("seed-many: --count must be at least 1")

    manifest, blobs, _ = image.build_image(args.repo_prefix, "linux/amd64", "scale", "docker", 0)
    names = [f"{args.repo_prefix}{i}" for i in range(1, args.count + 1)]
    source = names[0]
    seed(HUB, names, args.tag, blobs, manifest, lambda group: hub_token(group, source), args.jobs)
    if args.mirror:
        mirror_auth = basic(args.mirror_user) if args.mirror_user else ""
        seed(args.mirror, [args.mirror_prefix + name for name in names], args.tag, blobs, manifest,
             lambda group: mirror_auth, args.jobs)
    print(image.sha256(manifest))


if __name__ == "__main__":
    main()
