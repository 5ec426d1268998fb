#!/usr/bin/python3
"""Throws random requests at jumbod's REST API: methods, paths (climbing,
encoded, NUL, very long), query strings, headers, and bodies (random JSON,
deep nesting, huge numbers, broken UTF-8, megabytes of garbage), with and
without a token.  Prints one line per kind of answer and exits non-zero if
the daemon stopped answering, answered 5xx other than 503, or answered
without a JSON error where one is due.

  api_fuzz.py HOST:PORT TOKEN [N] [SEED]
"""
import http.client
import json
import random
import sys
import urllib.parse

host, token = sys.argv[1], sys.argv[2]
n = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
rnd = random.Random(int(sys.argv[4]) if len(sys.argv) > 4 else 7)

PATHS = ["/api/v1/jobs", "/api/v1/jobs/{id}", "/api/v1/jobs/{id}/kill", "/api/v1/jobs/{id}/logs",
         "/api/v1/jobs/{id}/rerun", "/api/v1/datasets", "/api/v1/provenance", "/api/v1/rules",
         "/api/v1/health", "/api/v1/peers", "/metrics", "/api/v1/{x}", "/{x}", "/api/v1/jobs/{x}/{x}"]
WEIRD = ["..", "../../etc/passwd", "%2e%2e%2f", "%00", "a" * 5000, "é", "\u202e", "ffffffffffff", "", "/",
         "0" * 12, "-1", "%ff%fe", "jobs", "{}", "'", '"']
KEYS = ["image", "args", "env", "data", "cpus", "memory", "pids", "gpus", "timeout", "network", "output", "rule",
        "rerun_of", "name", "path", "x"]


def rjson(depth=0):
    k = rnd.random()
    if depth > 4 or k < 0.3:
        return rnd.choice([None, True, False, 0, -1, 1e308, -1e308, 2 ** 63, 2 ** 64, 1.5, "", "x" * rnd.randint(0, 300),
                           rnd.choice(WEIRD), "jumbo/minimal", "/etc/passwd", "../x", "1G", "-5"])
    if k < 0.6:
        return [rjson(depth + 1) for _ in range(rnd.randint(0, 5))]
    return {rnd.choice(KEYS): rjson(depth + 1) for _ in range(rnd.randint(0, 6))}


def body():
    k = rnd.random()
    if k < 0.5:
        return json.dumps(rjson()).encode()
    if k < 0.6:
        return b"[" * 100000 + b"]" * 100000
    if k < 0.7:
        return bytes(rnd.getrandbits(8) for _ in range(rnd.randint(0, 2000)))
    if k < 0.75:
        return b"x" * (2 << 20)
    if k < 0.85:
        return b'{"image": "jumbo/minimal", "args": ["\xff\xfe"]}'
    return b""


counts = {}
bad = []
for i in range(n):
    path = rnd.choice(PATHS).replace("{id}", rnd.choice(WEIRD + ["%012x" % rnd.getrandbits(48)]))
    path = path.replace("{x}", rnd.choice(WEIRD))
    if rnd.random() < 0.3:
        path += "?" + "&".join("%s=%s" % (rnd.choice(["path", "stream", "offset", "x"]), rnd.choice(WEIRD))
                               for _ in range(rnd.randint(1, 3)))
    method = rnd.choice(["GET", "GET", "POST", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS"])
    headers = {}
    r = rnd.random()
    if r < 0.7:
        headers["Authorization"] = "Bearer " + token
    elif r < 0.8:
        headers["Authorization"] = "Bearer " + rnd.choice(WEIRD)
    elif r < 0.85:
        headers["Authorization"] = "Basic Zm9vOmJhcg=="
    data = body() if method in ("POST", "PUT", "PATCH") else None
    try:
        c = http.client.HTTPConnection(host, timeout=30)
        target = "".join(ch if 32 < ord(ch) < 127 else urllib.parse.quote(ch) for ch in path)
        c.putrequest(method, target, skip_accept_encoding=True)
        for k, v in headers.items():
            c.putheader(k, v.encode("utf-8").decode("latin-1"))
        if data is not None:
            c.putheader("Content-Length", str(len(data)))
        c.endheaders()
        if data is not None:
            try:
                c.send(data)
            except OSError:
                pass
        resp = c.getresponse()
        payload = resp.read()
        status = resp.status
        c.close()
    except (http.client.HTTPException, OSError) as e:
        # the server may close a connection it will not read (a body too large)
        status = "closed:" + type(e).__name__
        payload = b""
    counts[status] = counts.get(status, 0) + 1
    if isinstance(status, int):
        if status >= 500 and status != 503:
            bad.append((method, path[:80], status, payload[:200]))
        if status >= 400 and method != "HEAD" and not payload.startswith(b"{"):
            bad.append((method, path[:80], status, b"not JSON: " + payload[:100]))

# the daemon is still there and well
c = http.client.HTTPConnection(host, timeout=10)
c.request("GET", "/api/v1/health")
h = c.getresponse()
alive = h.status == 200 and json.loads(h.read()).get("status") == "ok"
for k in sorted(counts, key=str):
    print("%s %d" % (k, counts[k]))
for b in bad[:20]:
    print("BAD", b)
print("alive" if alive else "DEAD")
sys.exit(0 if alive and not bad else 1)
