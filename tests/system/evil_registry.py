#!/usr/bin/python3
"""A registry that lies, for the image fault tests: it speaks enough of the
OCI Distribution API (GET /v2/, manifests, blobs) to serve images whose bytes
are wrong in one way each.

  evil_registry.py PORTFILE

Binds 127.0.0.1:0, writes the port to PORTFILE, serves until killed.
Repositories (tag "1"):
  evil/baddigest    a layer whose bytes do not hash to the digest named
  evil/badmanifest  a manifest announced with another Docker-Content-Digest
  evil/hugemanifest a manifest of 5 MiB
  evil/escape       a layer with an entry "../../escape"
  evil/absolute     a layer with an entry "/etc/evil"
  evil/device       a layer with a character device node
  evil/diffid       a layer whose tar does not match the config's diff_id
  evil/truncated    a layer blob cut short (served with its full length)
  evil/bomb         a 2 MB layer (gzip) that unpacks to 2 GiB of zeros
                    (made when first asked for, about 5 s)
"""
import gzip
import hashlib
import http.server
import io
import json
import sys
import tarfile

def sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()

def layer(entries):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, kind, data in entries:
            ti = tarfile.TarInfo(name)
            ti.mtime = 1700000000
            if kind == "file":
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))
            elif kind == "chr":
                ti.type = tarfile.CHRTYPE
                ti.devmajor, ti.devminor = 1, 3
                t.addfile(ti)
    tar = raw.getvalue()
    return tar, gzip.compress(tar, mtime=0)

BLOBS, MANIFESTS = {}, {}

def image(repo, entries, *, lie_blob=False, lie_diffid=False, truncate=False, lie_manifest=False, pad=0):
    tar, gz = layer(entries)
    diff = sha(tar if not lie_diffid else tar + b"\0")
    cfg = json.dumps({"architecture": "amd64", "os": "linux",
                      "config": {"Cmd": ["/bin/true"]},
                      "rootfs": {"type": "layers", "diff_ids": [diff]}}).encode()
    BLOBS[sha(cfg)] = cfg
    served = gz
    if lie_blob:
        served = gz[:-1] + bytes([gz[-1] ^ 1])
    BLOBS[sha(gz)] = (served, len(gz)) if truncate else served
    man = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(cfg), "size": len(cfg)},
           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha(gz), "size": len(gz)}]}
    if pad:
        man["annotations"] = {"padding": "x" * pad}
    body = json.dumps(man).encode()
    announced = sha(body + b" ") if lie_manifest else sha(body)
    MANIFESTS[(repo, "1")] = (body, announced)

def ok(tag):
    return [("hello.txt", "file", b"hello from " + tag.encode() + b"\n")]

image("evil/baddigest", ok("baddigest"), lie_blob=True)
image("evil/badmanifest", ok("badmanifest"), lie_manifest=True)
image("evil/hugemanifest", ok("hugemanifest"), pad=5 << 20)
image("evil/escape", [("../../escape", "file", b"x")])
image("evil/absolute", [("/etc/evil", "file", b"x")])
image("evil/device", [("dev/mem", "chr", b"")])
image("evil/diffid", ok("diffid"), lie_diffid=True)
# a good image sharing its layer with the one above: the layer is unpacked
# once, and the lie of the other config is still caught
image("evil/good", ok("diffid"))
image("evil/truncated", [("big.bin", "file", bytes(range(256)) * 4096)], truncate=True)

def bomb():
    """A tar of one 2 GiB file of zeros, gzipped as it is made: 2 MB."""
    import zlib
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    ti = tarfile.TarInfo("zeros")
    ti.size, ti.mtime = 2 << 30, 1700000000
    parts, h = [c.compress(ti.tobuf(tarfile.PAX_FORMAT))], hashlib.sha256(ti.tobuf(tarfile.PAX_FORMAT))
    zero = bytes(16 << 20)
    for _ in range((2 << 30) // len(zero)):
        parts.append(c.compress(zero))
        h.update(zero)
    parts.append(c.compress(bytes(1024)))
    h.update(bytes(1024))
    parts.append(c.flush())
    gz = b"".join(parts)
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/true"]},
                      "rootfs": {"type": "layers", "diff_ids": ["sha256:" + h.hexdigest()]}}).encode()
    BLOBS[sha(cfg)], BLOBS[sha(gz)] = cfg, gz
    man = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(cfg), "size": len(cfg)},
           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha(gz), "size": len(gz)}]}
    body = json.dumps(man).encode()
    MANIFESTS[("evil/bomb", "1")] = (body, sha(body))

class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def send(self, code, body=b"", headers=None, length=None):
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        if self.command != "HEAD":
            try:
                self.wfile.write(body)
            except OSError:
                pass
        if length is not None and length != len(body):
            self.close_connection = True

    def do_GET(self):
        p = self.path.split("?")[0]
        if p == "/v2/":
            return self.send(200, b"{}", {"Content-Type": "application/json"})
        parts = p.split("/")
        if len(parts) >= 5 and parts[1] == "v2":
            kind, ref = parts[-2], parts[-1]
            repo = "/".join(parts[2:-2])
            if kind == "manifests" and (repo, ref) == ("evil/bomb", "1") and (repo, ref) not in MANIFESTS:
                bomb()
            if kind == "manifests" and (repo, ref) in MANIFESTS:
                body, digest = MANIFESTS[(repo, ref)]
                return self.send(200, body, {"Content-Type": "application/vnd.oci.image.manifest.v1+json",
                                             "Docker-Content-Digest": digest})
            if kind == "blobs" and ref in BLOBS:
                b = BLOBS[ref]
                if isinstance(b, tuple):
                    body, full = b
                    return self.send(200, body[: len(body) // 2], {"Content-Type": "application/octet-stream"},
                                     length=full)
                return self.send(200, b, {"Content-Type": "application/octet-stream"})
        err = json.dumps({"errors": [{"code": "NAME_UNKNOWN", "message": "not here"}]}).encode()
        self.send(404, err, {"Content-Type": "application/json"})

    do_HEAD = do_GET

srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
import os
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
srv.serve_forever()
