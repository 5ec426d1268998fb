#!/usr/bin/python3
"""Slow clients, for tests/system/t_trickle.sh: connections that each send
one byte of a request every second or so and never finish it.

usage: trickle.py KIND PORT SECONDS [--pause S] [--once] GROUP...

KIND    tls:    the bytes of a TLS 1.3 ClientHello (to the transfer port)
        http:   the headers of a GET, never ending (to the API)
        silent: nothing at all
GROUP   ADDR:N  N connections from the local address ADDR (any of 127/8)

Every connection is made from its group's address.  When the server closes
one, it is counted (how long it lived, and whether it was closed at once:
within 0.5 s, before the client sent its second byte) and, unless --once,
made again after --pause seconds (default 1), until SECONDS have passed.
Prints one JSON object per group on stdout at the end:
  {"addr", "made", "at_once", "closed", "lifetimes": [s...],
   "held_max": most open at once, "held_end": open at the end}
and, as soon as every connection of every group has been made once, the
line "READY" on stderr.
"""
import json, selectors, socket, ssl, sys, time

kind, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
args = sys.argv[4:]
pause, once = 1.0, False
while args and args[0].startswith('--'):
    if args[0] == '--pause':
        pause = float(args[1]); args = args[2:]
    elif args[0] == '--once':
        once = True; args = args[1:]
    else:
        sys.exit('unknown option ' + args[0])


def client_hello():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


PAYLOAD = {'tls': client_hello(),
           'http': b'GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n' + b'X-Slow: ' + b'a' * 4000,
           'silent': b''}[kind]


class Group:
    def __init__(self, addr, n):
        self.addr, self.n = addr, n
        self.made = self.at_once = self.closed = 0
        self.lifetimes, self.held, self.held_max = [], 0, 0


class Conn:
    def __init__(self, g):
        self.g, self.sock, self.t0, self.sent, self.next = g, None, 0.0, 0, 0.0


sel = selectors.DefaultSelector()
groups = [Group(a, int(n)) for a, n in (x.rsplit(':', 1) for x in args)]
conns = [Conn(g) for g in groups for _ in range(g.n)]
retry = []  # (when, conn)


def connect(c, now):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((c.g.addr, 0))
    s.setblocking(False)
    try:
        s.connect(('127.0.0.1', port))
    except BlockingIOError:
        pass
    c.sock, c.t0, c.sent, c.next = s, now, 0, now
    c.g.made += 1
    c.g.held += 1
    c.g.held_max = max(c.g.held_max, c.g.held)
    sel.register(s, selectors.EVENT_READ, c)


def closed(c, now):
    sel.unregister(c.sock)
    c.sock.close()
    c.sock = None
    g = c.g
    g.held -= 1
    g.closed += 1
    life = now - c.t0
    g.lifetimes.append(round(life, 2))
    if life < 0.5 and c.sent <= 1:
        g.at_once += 1
    if not once:
        retry.append((now + pause, c))


start = time.monotonic()
for c in conns:
    connect(c, time.monotonic())
print('READY', file=sys.stderr, flush=True)
while True:
    now = time.monotonic()
    if now - start >= seconds:
        break
    for ev_key, _ in sel.select(timeout=0.05):
        c = ev_key.data
        try:
            data = c.sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            continue
        except OSError:
            data = b''
        if not data:
            closed(c, time.monotonic())
    now = time.monotonic()
    for c in conns:
        if c.sock and PAYLOAD and now >= c.next and c.sent < len(PAYLOAD):
            try:
                c.sock.send(PAYLOAD[c.sent:c.sent + 1])
                c.sent += 1
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                closed(c, now)
                continue
            c.next = now + 1.0
    due = [r for r in retry if r[0] <= now]
    retry[:] = [r for r in retry if r[0] > now]
    for _, c in due:
        connect(c, now)
for g in groups:
    print(json.dumps({'addr': g.addr, 'made': g.made, 'at_once': g.at_once, 'closed': g.closed,
                      'lifetimes': g.lifetimes, 'held_max': g.held_max, 'held_end': g.held}), flush=True)
