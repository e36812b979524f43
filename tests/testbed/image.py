#!/usr/bin/env python3
# tests/testbed/image.py -- owned by the ecrcp test bed (tests/testbed/).
#
# Builds small, deterministic container images (fixed bytes, fixed timestamps,
# so the same arguments always give the same digests) and talks to a registry
# through the plain registry HTTP API (no docker daemon needed):
#
#   image.py push     --registry HOST[:PORT] --repo NAME --tag TAG [--tag TAG2]
#                     [--seed S] [--platforms linux/amd64,linux/arm64] [--index]
#                     [--format docker|oci] [--layer-size BYTES|64M] [--user USER:PASS]
#                     [--layers N] [--base-layers K --base-seed B]
#       pushes blobs + manifest(s) and prints the top manifest digest. Each layer holds a
#       small text file plus --layer-size bytes of incompressible filler (stored, not
#       compressed: the sizes are real). The first K of N layers depend on B alone, so
#       images with the same base share them (across repositories and registries).
#       Blobs are built and sent in pieces, never joined into one buffer.
#   image.py digest   --registry HOST --repo NAME --ref TAG|DIGEST [--user U:P] [--get]
#       HEAD (or GET with --get) on the manifest; prints Docker-Content-Digest.
#   image.py manifest --registry HOST --repo NAME --ref TAG|DIGEST [--user U:P]
#       prints the manifest body.
#
# Auth: answers the registry's WWW-Authenticate challenge, either Bearer (the
# Docker Hub token flow: GET realm?service=..&scope=.., anonymous or with
# --user) or Basic (--user). TLS trusts the bundle named by SSL_CERT_FILE (the
# bed exports it) and the system store. Standard library only.

import argparse
import base64
import gzip
import hashlib
import http.client
import io
import json
import os
import re
import ssl
import sys
import tarfile
import urllib.parse

FIXED_TIME = "2024-01-01T00:00:00Z"
FIXED_EPOCH = 1704067200  # 2024-01-01T00:00:00Z

MT = {
    "docker": {
        "manifest": "application/vnd.docker.distribution.manifest.v2+json",
        "index": "application/vnd.docker.distribution.manifest.list.v2+json",
        "config": "application/vnd.docker.container.image.v1+json",
        "layer": "application/vnd.docker.image.rootfs.diff.tar.gzip",
    },
    "oci": {
        "manifest": "application/vnd.oci.image.manifest.v1+json",
        "index": "application/vnd.oci.image.index.v1+json",
        "config": "application/vnd.oci.image.config.v1+json",
        "layer": "application/vnd.oci.image.layer.v1.tar+gzip",
    },
}
SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+prettyjws"
ALL_MANIFEST_TYPES = ", ".join(
    [MT["oci"]["index"], MT["oci"]["manifest"], MT["docker"]["index"], MT["docker"]["manifest"]]
)


class RegistryError(Exception):
    pass


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


# ---------------------------------------------------------------- image build


FILLER_BLOCK = 1 << 20


class Filler(io.RawIOBase):
    """Deterministic, incompressible bytes, read in pieces: SHAKE-128 output in 1 MiB
    blocks, each keyed by the seed and its index (so no block repeats)."""

    def __init__(self, seed: str, size: int):
        super().__init__()
        self.seed, self.left, self.block, self.buf = seed, size, 0, b""

    def readable(self):
        return True

    def read(self, n=-1):
        n = self.left if n is None or n < 0 else min(n, self.left)
        while len(self.buf) < n:
            self.buf += hashlib.shake_128(f"{self.seed}:{self.block}".encode()).digest(FILLER_BLOCK)
            self.block += 1
        data, self.buf = self.buf[:n], self.buf[n:]
        self.left -= n
        return data


class Blob:
    """A blob built in pieces that are never joined: its digest, size and the pieces.
    Also the file object that gzip writes into."""

    def __init__(self, data: bytes = b""):
        self.pieces, self.size, self.hash = [], 0, hashlib.sha256()
        if data:
            self.write(data)

    def write(self, data) -> int:
        data = bytes(data)
        if not data:
            return 0
        self.pieces.append(data)
        self.size += len(data)
        self.hash.update(data)
        return len(data)

    def flush(self):
        pass

    @property
    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


class TarSink:
    """What tarfile writes into: hashes the tar (the layer's diff ID) and passes it to gzip."""

    def __init__(self, out):
        self.out, self.offset, self.hash = out, 0, hashlib.sha256()

    def write(self, data) -> int:
        self.hash.update(data)
        self.offset += len(data)
        return self.out.write(data)

    def tell(self) -> int:
        return self.offset


def make_layer(text_name: str, text: str, bin_name: str, filler_seed: str, layer_size: int):
    """One layer: a small text file, plus `layer_size` bytes of filler when it is not 0.
    Returns (diff ID, gzip blob). A layer without filler is compressed at level 6 (the
    seeded images' digests depend on it); filler is incompressible, so it is stored."""
    files = [(text_name, len(text.encode()), io.BytesIO(text.encode()))]
    if layer_size > 0:
        files.append((bin_name, layer_size, Filler(filler_seed, layer_size)))
    blob = Blob()
    level = 0 if layer_size > 0 else 6
    with gzip.GzipFile(filename="", mode="wb", fileobj=blob, mtime=0, compresslevel=level) as gz:
        sink = TarSink(gz)
        with tarfile.open(fileobj=sink, mode="w", format=tarfile.USTAR_FORMAT, copybufsize=FILLER_BLOCK) as tar:
            for name, size, data in files:
                info = tarfile.TarInfo(name)
                info.size = size
                info.mtime = FIXED_EPOCH
                info.mode = 0o644
                info.uid = info.gid = 0
                info.uname = info.gname = "root"
                tar.addfile(info, data)
    return "sha256:" + sink.hash.hexdigest(), blob


def image_layers(repo: str, platform: str, seed: str, layers: int, layer_size: int,
                 base_layers: int, base_seed: str):
    """The layers of one image: the first `base_layers` depend on `base_seed` and their
    index alone, so images that name the same base share them; the others are the image's
    own. A one-layer image without a base is the layer the seeded images have."""
    made = []
    for i in range(layers):
        if i < base_layers:
            made.append(make_layer(f"ecrcp-testbed-base-{i}.txt", f"base={base_seed}\nlayer={i}\n",
                                   f"ecrcp-testbed-base-{i}.bin", f"base/{base_seed}/{i}", layer_size))
        elif i == 0:
            made.append(make_layer("ecrcp-testbed.txt", f"image={repo}\nplatform={platform}\nseed={seed}\n",
                                   "ecrcp-testbed.bin", f"{repo}/{platform}/{seed}", layer_size))
        else:
            made.append(make_layer(f"ecrcp-testbed-{i}.txt",
                                   f"image={repo}\nplatform={platform}\nseed={seed}\nlayer={i}\n",
                                   f"ecrcp-testbed-{i}.bin", f"{repo}/{platform}/{seed}/{i}", layer_size))
    return made


def parse_platform(text: str) -> dict:
    path, _, os_version = text.strip().partition(":")
    parts = path.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise SystemExit(f"image.py: bad platform {text!r} (want os/arch[/variant][:osversion])")
    plat = {"os": parts[0], "architecture": parts[1]}
    if len(parts) == 3:
        plat["variant"] = parts[2]
    if os_version:
        plat["os.version"] = os_version
    return plat


def build_image(repo: str, platform: str, seed: str, fmt: str, layer_size: int,
                layers: int = 1, base_layers: int = 0, base_seed: str = "base"):
    """One single-platform image: returns (manifest bytes, [Blob], platform)."""
    mt = MT[fmt]
    plat = parse_platform(platform)
    made = image_layers(repo, platform, seed, layers, layer_size, base_layers, base_seed)
    config = {
        "architecture": plat["architecture"],
        "os": plat["os"],
        "created": FIXED_TIME,
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["/bin/sh"],
            "Labels": {"org.opencontainers.image.title": repo, "ecrcp.testbed.seed": seed},
        },
        "history": [{"created": FIXED_TIME, "created_by": f"ecrcp testbed image.py seed={seed}"}]
        + [{"created": FIXED_TIME, "created_by": f"ecrcp testbed image.py seed={seed} layer={i}"}
           for i in range(1, len(made))],
        "rootfs": {"type": "layers", "diff_ids": [diff_id for diff_id, _ in made]},
    }
    for key in ("variant", "os.version"):
        if key in plat:
            config[key] = plat[key]
    config_bytes = canonical_json(config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": mt["manifest"],
        "config": {"mediaType": mt["config"], "size": len(config_bytes), "digest": sha256(config_bytes)},
        "layers": [{"mediaType": mt["layer"], "size": blob.size, "digest": blob.digest} for _, blob in made],
    }
    blobs = [blob for _, blob in made] + [Blob(config_bytes)]
    return canonical_json(manifest), blobs, plat


def build_index(children, fmt: str) -> bytes:
    mt = MT[fmt]
    return canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": mt["index"],
            "manifests": [
                {"mediaType": mt["manifest"], "size": len(m), "digest": sha256(m), "platform": plat}
                for m, plat in children
            ],
        }
    )


# ---------------------------------------------------------------- registry client


def ssl_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    bundle = os.environ.get("SSL_CERT_FILE")
    if bundle and os.path.exists(bundle):
        ctx.load_verify_locations(cafile=bundle)
    return ctx


def parse_challenge(header: str):
    """'Bearer realm="x",service="y"' -> ('bearer', {'realm': 'x', 'service': 'y'})"""
    scheme, _, rest = header.strip().partition(" ")
    params = dict(re.findall(r'(\w+)="([^"]*)"', rest))
    return scheme.lower(), params


class Registry:
    def __init__(self, host: str, user: str | None, verbose: bool = False):
        self.host = host
        self.user = user
        self.verbose = verbose
        self.ctx = ssl_context()
        self.auth_header = None  # current Authorization header value

    def log(self, msg):
        if self.verbose:
            print(f"image.py: {msg}", file=sys.stderr)

    def _raw(self, method, url, body=None, headers=None):
        """One HTTPS request; url is a path or an absolute https URL."""
        parsed = urllib.parse.urlsplit(url)
        host = parsed.netloc or self.host
        path = parsed.path + (("?" + parsed.query) if parsed.query else "")
        conn = http.client.HTTPSConnection(host, context=self.ctx, timeout=120)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            self.log(f"{method} https://{host}{path} -> {resp.status}")
            return resp.status, resp.headers, data
        finally:
            conn.close()

    def _basic(self):
        if not self.user:
            raise RegistryError(f"{self.host} wants basic auth: pass --user USER:PASS")
        return "Basic " + base64.b64encode(self.user.encode()).decode()

    def _token(self, params: dict, scope: str):
        realm = params.get("realm")
        if not realm:
            raise RegistryError(f"bearer challenge from {self.host} has no realm")
        query = {"service": params.get("service", "")}
        query["scope"] = scope
        if self.user:
            query["account"] = self.user.split(":", 1)[0]
        url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(query)
        headers = {}
        if self.user:
            headers["Authorization"] = self._basic()
        status, _, data = self._raw("GET", url, headers=headers)
        if status != 200:
            raise RegistryError(f"token request to {realm} failed: HTTP {status}: {data[:200]!r}")
        doc = json.loads(data)
        token = doc.get("token") or doc.get("access_token")
        if not token:
            raise RegistryError(f"token response from {realm} has no token")
        return "Bearer " + token

    def request(self, method, url, scope, body=None, headers=None):
        """Request with auth: on 401 answer the challenge once and retry."""
        headers = dict(headers or {})
        if self.auth_header:
            headers["Authorization"] = self.auth_header
        status, rh, data = self._raw(method, url, body, headers)
        if status != 401:
            return status, rh, data
        challenge = rh.get("WWW-Authenticate", "")
        scheme, params = parse_challenge(challenge)
        if scheme == "bearer":
            self.auth_header = self._token(params, scope)
        elif scheme == "basic":
            self.auth_header = self._basic()
        else:
            raise RegistryError(f"{self.host}: unsupported auth challenge {challenge!r}")
        headers["Authorization"] = self.auth_header
        return self._raw(method, url, body, headers)

    # -- registry operations

    def push_blob(self, repo, blob: Blob, scope):
        """Uploads a blob unless the repository has it; the pieces stream, never joined."""
        digest = blob.digest
        status, _, _ = self.request("HEAD", f"/v2/{repo}/blobs/{digest}", scope)
        if status == 200:
            self.log(f"blob {digest} already there")
            return
        status, rh, body = self.request("POST", f"/v2/{repo}/blobs/uploads/", scope,
                                        body=b"", headers={"Content-Length": "0"})
        if status != 202:
            raise RegistryError(f"starting upload to {self.host}/{repo} failed: HTTP {status}: {body[:300]!r}")
        location = rh.get("Location")
        sep = "&" if "?" in location else "?"
        url = f"{location}{sep}digest={urllib.parse.quote(digest)}"
        status, _, body = self.request("PUT", url, scope, body=blob.pieces, headers={
            "Content-Type": "application/octet-stream", "Content-Length": str(blob.size)})
        if status != 201:
            raise RegistryError(f"uploading blob to {self.host}/{repo} failed: HTTP {status}: {body[:300]!r}")

    def put_manifest(self, repo, ref, manifest: bytes, scope):
        media_type = json.loads(manifest)["mediaType"]
        status, rh, body = self.request("PUT", f"/v2/{repo}/manifests/{ref}", scope, body=manifest,
                                        headers={"Content-Type": media_type})
        if status != 201:
            raise RegistryError(f"pushing manifest {self.host}/{repo}:{ref} failed: HTTP {status}: {body[:300]!r}")
        got = rh.get("Docker-Content-Digest")
        if got and got != sha256(manifest):
            raise RegistryError(f"registry reports digest {got}, expected {sha256(manifest)}")

    def manifest(self, repo, ref, method):
        status, rh, body = self.request(method, f"/v2/{repo}/manifests/{ref}", f"repository:{repo}:pull",
                                        headers={"Accept": ALL_MANIFEST_TYPES})
        if status != 200:
            raise RegistryError(f"{method} {self.host}/{repo} manifest {ref}: HTTP {status}: {body[:300]!r}")
        return rh, body


# ---------------------------------------------------------------- commands


def cmd_push(args):
    platforms = [p for p in args.platforms.split(",") if p.strip()]
    if not platforms:
        raise SystemExit("image.py: --platforms is empty")
    if not 0 <= args.base_layers <= args.layers:
        raise SystemExit(f"image.py: --base-layers {args.base_layers} is not within --layers {args.layers}")
    reg = Registry(args.registry, args.user, args.verbose)
    scope = f"repository:{args.repo}:pull,push"
    children = []
    for platform in platforms:
        manifest, blobs, plat = build_image(args.repo, platform, str(args.seed), args.format, args.layer_size,
                                            args.layers, args.base_layers, args.base_seed)
        for blob in blobs:
            reg.push_blob(args.repo, blob, scope)
        children.append((manifest, plat))
    if len(children) > 1 or args.index:
        for manifest, _ in children:
            reg.put_manifest(args.repo, sha256(manifest), manifest, scope)
        top = build_index(children, args.format)
    else:
        top = children[0][0]
    for tag in args.tag:
        reg.put_manifest(args.repo, tag, top, scope)
    print(sha256(top))


def cmd_digest(args):
    reg = Registry(args.registry, args.user, args.verbose)
    rh, body = reg.manifest(args.repo, args.ref, "GET" if args.get else "HEAD")
    digest = rh.get("Docker-Content-Digest") or (sha256(body) if body else None)
    if not digest:
        raise RegistryError("registry sent no Docker-Content-Digest")
    print(digest)


def cmd_schema1(args):
    """Stores TAG (a docker v2 image) again as the signed schema 1 manifest the registry
    converts it to for a client that accepts nothing newer, as old docker clients pushed."""
    reg = Registry(args.registry, args.user, args.verbose)
    scope = f"repository:{args.repo}:pull,push"
    path = f"/v2/{args.repo}/manifests/{args.tag}"
    status, rh, body = reg.request("GET", path, scope, headers={"Accept": SCHEMA1})
    if status != 200 or rh.get("Content-Type") != SCHEMA1:
        raise RegistryError(f"{args.registry}/{args.repo}:{args.tag} as schema 1: HTTP {status}: {body[:300]!r}")
    status, rh, body = reg.request("PUT", path, scope, body=body, headers={"Content-Type": SCHEMA1})
    if status != 201:
        raise RegistryError(f"storing schema 1 as {args.registry}/{args.repo}:{args.tag}: HTTP {status}: {body[:300]!r}")
    print(rh.get("Docker-Content-Digest"))


def cmd_manifest(args):
    reg = Registry(args.registry, args.user, args.verbose)
    _, body = reg.manifest(args.repo, args.ref, "GET")
    sys.stdout.write(body.decode() + "\n")


def size_arg(text: str) -> int:
    """BYTES, or a number with a binary K, M or G suffix."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip().upper()
    if text and text[-1] in units:
        return int(text[:-1]) * units[text[-1]]
    return int(text)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="image.py", description="deterministic test images for the ecrcp test bed")
    sub = ap.add_subparsers(dest="cmd", required=True)

    def common(p):
        p.add_argument("--registry", required=True, help="registry host[:port], e.g. registry-1.docker.io")
        p.add_argument("--repo", required=True, help="repository, e.g. library/nginx")
        p.add_argument("--user", default=os.environ.get("IMAGE_PY_USER"), help="USER:PASS for basic auth / token")
        p.add_argument("-v", "--verbose", action="store_true")

    p = sub.add_parser("push", help="build and push an image, print its digest")
    common(p)
    p.add_argument("--tag", action="append", required=True, help="tag to push (repeatable)")
    p.add_argument("--seed", default="1", help="changes the image content (and so the digest)")
    p.add_argument("--platforms", default="linux/amd64", help="comma list of os/arch[/variant][:osversion]")
    p.add_argument("--index", action="store_true", help="push an index even for one platform")
    p.add_argument("--format", choices=["docker", "oci"], default="docker", help="media types to use")
    p.add_argument("--layer-size", type=size_arg, default=0,
                   help="add BYTES (or 32K, 64M, 1G) of incompressible filler to each layer")
    p.add_argument("--layers", type=int, default=1, help="layers per image")
    p.add_argument("--base-layers", type=int, default=0,
                   help="how many of the first layers are shared with every image of the same --base-seed")
    p.add_argument("--base-seed", default="base", help="names the shared base layers")
    p.set_defaults(func=cmd_push)

    p = sub.add_parser("schema1", help="store a docker v2 image's tag again as schema 1 (signed by the "
                                       "registry, which must store schema 1), print its digest")
    common(p)
    p.add_argument("--tag", required=True, help="tag of a docker v2 image")
    p.set_defaults(func=cmd_schema1)

    for name, func, helptext in (("digest", cmd_digest, "print a manifest's digest (HEAD)"),
                                 ("manifest", cmd_manifest, "print a manifest")):
        p = sub.add_parser(name, help=helptext)
        common(p)
        p.add_argument("--ref", required=True, help="tag or digest")
        if name == "digest":
            p.add_argument("--get", action="store_true", help="use GET instead of HEAD")
        p.set_defaults(func=func)

    args = ap.parse_args(argv)
    try:
        args.func(args)
    except (RegistryError, OSError) as e:
        print(f"image.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
