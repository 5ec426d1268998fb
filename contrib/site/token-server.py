#!/usr/bin/python3
"""Minimal token server for the CNCF distribution registry's `token` auth.

Started by registry-up (--auth token); usable on its own:

  token-server.py --listen 127.0.0.1:PORT --htpasswd FILE \
      --key key.pem --cert cert.pem --issuer ISSUER --service SERVICE

Implements the "Docker Registry v2 authentication" token endpoint:

  GET  /token?service=S&scope=repository:NAME:pull,push[&scope=...]
       with HTTP basic credentials checked against a bcrypt htpasswd file;
  POST /token  (OAuth2 password grant: grant_type=password, username,
       password, service, scope="space separated scopes").

Every authenticated user is granted what it asks for (pull, push, delete,
*) on `repository` scopes and `*` on `registry:catalog:*`.  The answer is
{"token", "access_token", "expires_in", "issued_at"}.

The JWT is signed RS256 (or ES256 for an EC key) and carries the signing
certificate in the `x5c` header; the registry accepts it when that
certificate is in its `rootcertbundle` (distribution 2.8 tries x5c before
kid).  Needs only the standard library plus python3-cryptography, and
python3-bcrypt or the (bookworm) stdlib `crypt` module for bcrypt.

GET /healthz answers 200 "ok" (used by registry-up to wait for start-up).

  token-server.py --gen-cert --key key.pem --cert cert.pem [--issuer CN]
creates an RSA-2048 key and a self-signed certificate for it (10 years),
then exits: the certificate is both the registry's rootcertbundle and the
x5c of every token.
"""

import argparse
import base64
import datetime
import hmac
import json
import os
import sys
import threading
import time
import urllib.parse
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import \
    decode_dss_signature

try:
    import bcrypt as _bcrypt
except ImportError:
    _bcrypt = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import crypt as _crypt
        except ImportError:
            _crypt = None

ALLOWED_REPO_ACTIONS = ("pull", "push", "delete", "*")


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def check_bcrypt(password, hashed):
    if not hashed.startswith(("$2a$", "$2b$", "$2y$")):
        return False
    if _bcrypt is not None:
        # python3-bcrypt does not know the $2y$ prefix htpasswd -B writes
        h = "$2b$" + hashed[4:] if hashed.startswith("$2y$") else hashed
        try:
            return _bcrypt.checkpw(password.encode(), h.encode())
        except ValueError:
            return False
    if _crypt is not None:
        out = _crypt.crypt(password, hashed)
        return out is not None and hmac.compare_digest(out, hashed)
    raise RuntimeError("no bcrypt implementation: install python3-bcrypt")


class Htpasswd:
    """bcrypt htpasswd file, re-read when it changes."""

    def __init__(self, path):
        self.path = path
        self.mtime = None
        self.users = {}
        self.lock = threading.Lock()

    def _load(self):
        st = os.stat(self.path)
        if st.st_mtime_ns == self.mtime:
            return
        users = {}
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if line and not line.startswith("#") and ":" in line:
                    user, hashed = line.split(":", 1)
                    users[user] = hashed
        self.users, self.mtime = users, st.st_mtime_ns

    def check(self, user, password):
        with self.lock:
            self._load()
            hashed = self.users.get(user)
        return hashed is not None and check_bcrypt(password, hashed)


class Signer:
    def __init__(self, key_path, cert_path):
        with open(key_path, "rb") as f:
            self.key = serialization.load_pem_private_key(f.read(), None)
        with open(cert_path, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        self.x5c = [base64.b64encode(
            cert.public_bytes(serialization.Encoding.DER)).decode("ascii")]
        if isinstance(self.key, rsa.RSAPrivateKey):
            self.alg = "RS256"
        elif isinstance(self.key, ec.EllipticCurvePrivateKey) and \
                self.key.curve.name == "secp256r1":
            self.alg = "ES256"
        else:
            raise SystemExit("token-server: key must be RSA or EC P-256")

    def sign(self, claims):
        header = {"typ": "JWT", "alg": self.alg, "x5c": self.x5c}
        signing_input = (b64url(json.dumps(header, separators=(",", ":")).encode())
                         + "." +
                         b64url(json.dumps(claims, separators=(",", ":")).encode()))
        data = signing_input.encode("ascii")
        if self.alg == "RS256":
            sig = self.key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        else:
            r, s = decode_dss_signature(self.key.sign(data, ec.ECDSA(hashes.SHA256())))
            sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return signing_input + "." + b64url(sig)


def gen_cert(key_path, cert_path, cn):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True,
                                         crl_sign=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    old = os.umask(0o077)
    try:
        with open(key_path, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    finally:
        os.umask(old)
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))


def parse_scope(scope):
    """'repository:name:pull,push' -> dict for the `access` claim, or None."""
    parts = scope.split(":")
    if len(parts) < 3:
        return None
    rtype, name, actions = parts[0], ":".join(parts[1:-1]), parts[-1]
    if "(" in rtype:                 # "repository(plugin)" class suffix
        rtype = rtype.split("(", 1)[0]
    wanted = [a for a in actions.split(",") if a]
    if rtype == "repository":
        granted = [a for a in wanted if a in ALLOWED_REPO_ACTIONS]
    elif rtype == "registry" and name == "catalog":
        granted = ["*"] if "*" in wanted else []
    else:
        granted = []
    return {"type": rtype, "name": name, "actions": granted}


class Handler(BaseHTTPRequestHandler):
    server_version = "jumbo-token-server/1"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s - %s\n" % (
            time.strftime("%Y-%m-%dT%H:%M:%S"), self.address_string(), fmt % args))

    def _send(self, code, body, extra=None):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _unauthorized(self, msg):
        cfg = self.server.cfg
        self._send(401, {"errors": [{"code": "UNAUTHORIZED", "message": msg}]},
                   {"WWW-Authenticate": 'Basic realm="%s"' % cfg.service})

    def _basic_creds(self):
        h = self.headers.get("Authorization", "")
        if not h.lower().startswith("basic "):
            return None, None
        try:
            user, _, pw = base64.b64decode(h[6:].strip()).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return None, None
        return user, pw

    def _issue(self, user, password, service, scopes, oauth):
        cfg = self.server.cfg
        if user is None:
            return self._unauthorized("credentials required")
        if not self.server.htpasswd.check(user, password):
            self.log_message("authentication failed for user %r", user)
            return self._unauthorized("invalid username or password")
        if service and service != cfg.service:
            return self._send(400, {"errors": [{"code": "DENIED",
                                                "message": "unknown service %r" % service}]})
        access = [a for a in (parse_scope(s) for s in scopes) if a]
        now = int(time.time())
        claims = {
            "iss": cfg.issuer,
            "sub": user,
            "aud": cfg.service,
            "exp": now + cfg.expires,
            "nbf": now - 1,
            "iat": now,
            "jti": b64url(os.urandom(16)),
            "access": access,
        }
        token = self.server.signer.sign(claims)
        issued = datetime.datetime.fromtimestamp(now, datetime.timezone.utc)
        body = {"token": token, "access_token": token, "expires_in": cfg.expires,
                "issued_at": issued.strftime("%Y-%m-%dT%H:%M:%SZ")}
        if oauth:
            body["scope"] = " ".join(scopes)
        self.log_message("token for %r: %s", user,
                         " ".join("%s:%s:%s" % (a["type"], a["name"], ",".join(a["actions"]))
                                  for a in access) or "(no scope)")
        self._send(200, body)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/healthz":
            return self._send(200, "ok")
        if url.path != self.server.cfg.path:
            return self._send(404, {"errors": [{"code": "NOT_FOUND", "message": "not found"}]})
        q = urllib.parse.parse_qs(url.query)
        scopes = []
        for s in q.get("scope", []):
            scopes.extend(s.split(" "))
        user, pw = self._basic_creds()
        self._issue(user, pw, q.get("service", [""])[0], [s for s in scopes if s], False)

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path != self.server.cfg.path:
            return self._send(404, {"errors": [{"code": "NOT_FOUND", "message": "not found"}]})
        length = int(self.headers.get("Content-Length") or 0)
        if length > 65536:
            return self._send(413, {"error": "request too large"})
        form = urllib.parse.parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
        grant = form.get("grant_type", [""])[0]
        if grant != "password":
            return self._send(400, {"error": "unsupported_grant_type",
                                    "error_description": "only grant_type=password"})
        scopes = " ".join(form.get("scope", [])).split()
        self._issue(form.get("username", [None])[0], form.get("password", [""])[0],
                    form.get("service", [""])[0], scopes, True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--listen", default="127.0.0.1:5001", help="HOST:PORT (default %(default)s)")
    p.add_argument("--gen-cert", action="store_true",
                   help="only create --key and --cert (self-signed, CN = --issuer) and exit")
    p.add_argument("--htpasswd", help="bcrypt htpasswd file")
    p.add_argument("--key", required=True, help="PEM private key (RSA or EC P-256)")
    p.add_argument("--cert", required=True, help="PEM certificate of that key (the registry's rootcertbundle)")
    p.add_argument("--issuer", default="jumbo-token-server",
                   help="must equal the registry's auth.token.issuer (default %(default)s)")
    p.add_argument("--service", default="jumbo-registry",
                   help="must equal the registry's auth.token.service (default %(default)s)")
    p.add_argument("--path", default="/token", help="token endpoint path (default %(default)s)")
    p.add_argument("--expires", type=int, default=300, help="token lifetime, seconds (default %(default)s)")
    cfg = p.parse_args()
    if cfg.gen_cert:
        gen_cert(cfg.key, cfg.cert, cfg.issuer)
        return
    if not cfg.htpasswd:
        p.error("--htpasswd is required")

    if _bcrypt is None and _crypt is None:
        sys.exit("token-server: need python3-bcrypt (or the stdlib crypt module) to check bcrypt passwords")
    host, _, port = cfg.listen.rpartition(":")
    srv = ThreadingHTTPServer((host or "127.0.0.1", int(port)), Handler)
    srv.daemon_threads = True
    srv.cfg = cfg
    srv.htpasswd = Htpasswd(cfg.htpasswd)
    srv.htpasswd._load()
    srv.signer = Signer(cfg.key, cfg.cert)
    sys.stderr.write("token-server: listening on http://%s:%s%s (issuer %s, service %s, %s)\n"
                     % (host, port, cfg.path, cfg.issuer, cfg.service, srv.signer.alg))
    sys.stderr.flush()
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
