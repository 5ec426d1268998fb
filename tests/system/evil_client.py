#!/usr/bin/python3
"""A small, independent implementation of the client side of the jumbo
protocol (docs/PROTOCOL.md), used by the system tests to send what a real
client never would: oversized, truncated and malformed frames, escaping
paths, bad block headers.  Prints what the server answered.

usage: evil_client.py HOST:PORT IDENTITY_DIR CASE
"""
import hashlib, hmac, socket, ssl, struct, sys, time

HOST, PORT = sys.argv[1].rsplit(':', 1)
PORT = int(PORT)
IDDIR, CASE = sys.argv[2], sys.argv[3]


def tls_connect():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.load_cert_chain(IDDIR + '/cert.pem', IDDIR + '/key.pem')
    raw = socket.create_connection((HOST, PORT), timeout=10)
    return ctx.wrap_socket(raw)


def s(t):
    b = t.encode() if isinstance(t, str) else t
    return struct.pack('>H', len(b)) + b


def frame(body):
    return struct.pack('>I', len(body)) + body


VERSION = 2  # the protocol version this client speaks (docs/PROTOCOL.md)


def hello(op, path, streams=1, bs=1 << 20, version=VERSION, flags=0):
    return frame(bytes([1]) + struct.pack('>IHBBHIQ', 0x4a4d424f, version, op, flags, streams, bs, 0) + s(path) + s('evil'))


def read_frame(c):
    hdr = recv_exact(c, 4)
    if not hdr:
        return None
    n = struct.unpack('>I', hdr)[0]
    return recv_exact(c, n)


def recv_exact(c, n):
    buf = b''
    while len(buf) < n:
        try:
            d = c.recv(n - len(buf))
        except (ConnectionError, ssl.SSLError, socket.timeout):
            return None
        if not d:
            return None
        buf += d
    return buf


def answer(c):
    """Print the server's first answer: ERROR text, a message type, or EOF."""
    body = read_frame(c)
    if body is None:
        print('EOF')
    elif body[0] == 3:
        code = struct.unpack('>H', body[1:3])[0]
        n = struct.unpack('>H', body[3:5])[0]
        print('ERROR %d %s' % (code, body[5:5 + n].decode()))
    else:
        print('MSG %d' % body[0])
    return body


def entry(typ, path, size, mode=0o644, mtime=0):
    return bytes([typ]) + s(path) + struct.pack('>QIq', size, mode, mtime)


def join_stream(c, version=VERSION):
    """Open data stream 0 for the session whose WELCOME is next on c; returns
    (data socket, JOINED status or None)."""
    w = read_frame(c)
    assert w and w[0] == 2, w
    session, secret = w[10:26], w[26:58]
    d = socket.create_connection((HOST, PORT), timeout=10)
    token = hmac.new(secret, session + struct.pack('>H', 0), hashlib.sha256).digest()
    d.sendall(struct.pack('>IH', 0x4a4d424a, version) + session + struct.pack('>H', 0) + token)
    ack = recv_exact(d, 8)
    return d, (struct.unpack('>H', ack[4:6])[0] if ack and ack[:4] == b'JMBK' else None)


def push_session(path='evil'):
    """HELLO(PUSH) + one clear data stream joined; returns (control, data)."""
    c = tls_connect()
    c.sendall(hello(1, path))
    d, status = join_stream(c)
    assert status == 0, status
    return c, d


if CASE == 'oversized':
    c = tls_connect(); c.sendall(struct.pack('>I', 0x7fffffff) + b'\x01' * 64); answer(c)
elif CASE == 'zero-length':
    c = tls_connect(); c.sendall(struct.pack('>I', 0)); answer(c)
elif CASE == 'malformed-hello':
    c = tls_connect(); c.sendall(frame(b'\x01garbage-that-is-not-a-hello')); answer(c)
elif CASE == 'unknown-type':
    c = tls_connect(); c.sendall(frame(b'\xee\x00\x01')); answer(c)
elif CASE == 'truncated':
    c = tls_connect(); c.sendall(struct.pack('>I', 100) + b'\x01' * 10); c.shutdown(socket.SHUT_WR) if False else None
    c.unwrap() if False else None
    c.close(); print('closed')
elif CASE == 'not-tls':
    raw = socket.create_connection((HOST, PORT), timeout=10); raw.sendall(b'GET / HTTP/1.0\r\n\r\n')
    print('EOF' if recv_exact(raw, 1) is None else 'DATA')
elif CASE == 'bad-join':
    raw = socket.create_connection((HOST, PORT), timeout=10)
    raw.sendall(struct.pack('>IH', 0x4a4d424a, VERSION) + b'\x01' * 16 + struct.pack('>H', 0) + b'\x02' * 32)
    ack = recv_exact(raw, 8); print('REFUSED' if ack and ack[4:6] != b'\0\0' else 'ACCEPTED?')
elif CASE == 'join-bad-version':
    # a valid token for a waiting session, but a JOIN of another protocol version
    c = tls_connect(); c.sendall(hello(1, 'evil-v2'))
    d, status = join_stream(c, version=VERSION + 1)
    print('REFUSED' if status else 'ACCEPTED?' if status == 0 else 'EOF')
elif CASE == 'hold':
    # a session whose streams never come: HELLO, WELCOME, then silence
    c = tls_connect(); c.sendall(hello(1, 'evil-hold'))
    w = read_frame(c); print('WAITING' if w and w[0] == 2 else 'NO WELCOME', flush=True)
    time.sleep(20)
elif CASE == 'bad-version':
    c = tls_connect(); c.sendall(hello(1, 'x', version=9)); answer(c)
elif CASE == 'bad-block-size':
    c = tls_connect(); c.sendall(hello(1, 'x', bs=1000)); answer(c)
elif CASE.startswith('hello:'):
    # hello:push|pull|list:PATH: the server's first answer to that request
    _, op, path = CASE.split(':', 2)
    c = tls_connect(); c.sendall(hello({'push': 1, 'pull': 2, 'list': 3}[op], path, flags=4 if op == 'pull' else 0))
    answer(c)
elif CASE == 'pull-missing':
    c = tls_connect(); c.sendall(hello(2, 'no/such/file')); answer(c)
elif CASE == 'not-hello':
    c = tls_connect(); c.sendall(frame(bytes([11]))); answer(c)
elif CASE == 'escape-hello':
    c = tls_connect(); c.sendall(hello(1, '../../etc')); answer(c)
elif CASE == 'escape-pull':
    c = tls_connect(); c.sendall(hello(2, 'a/../../../etc/passwd')); answer(c)
elif CASE.startswith('escape-entry:'):
    bad = CASE.split(':', 1)[1]
    c, d = push_session()
    c.sendall(frame(bytes([4]) + struct.pack('>II', 0, 1) + entry(1, bad, 5)))
    c.sendall(frame(bytes([5]) + struct.pack('>IQ', 1, 5)))
    answer(c)
elif CASE == 'files-out-of-order':
    c, d = push_session()
    c.sendall(frame(bytes([4]) + struct.pack('>II', 0, 2) + entry(1, 'b', 1) + entry(1, 'a', 1)))
    answer(c)
elif CASE in ('bad-block-header', 'block-outside', 'truncated-block'):
    c, d = push_session()
    c.sendall(frame(bytes([4]) + struct.pack('>II', 0, 1) + entry(1, 'x.bin', 100)))
    c.sendall(frame(bytes([5]) + struct.pack('>IQ', 1, 100)))
    need = read_frame(c); assert need[0] == 6, need
    assert read_frame(c)[0] == 7
    if CASE == 'bad-block-header':
        d.sendall(b'XXXX' + b'\0' * 36)
    elif CASE == 'block-outside':
        d.sendall(struct.pack('>IIQII', 0x4a4d4242, 9, 0, 100, 0) + b'\0' * 16)
    else:
        d.sendall(struct.pack('>IIQII', 0x4a4d4242, 0, 0, 100, 0) + b'\0' * 16 + b'a' * 40)
        d.shutdown(socket.SHUT_WR)
    answer(c)
elif CASE == 'several-tops':
    # two top-level names pushed to a path that is not a directory, the
    # second one in a later frame than the first
    c, d = push_session('evil-tops')
    c.sendall(frame(bytes([4]) + struct.pack('>II', 0, 1) + entry(1, 'a', 1)))
    c.sendall(frame(bytes([4]) + struct.pack('>II', 1, 1) + entry(1, 'b', 1)))
    while True:
        f = answer(c)
        if f is None or f[0] != 6:
            break
elif CASE == 'block-before-need':
    # a block for a file the manifest has not reached yet: the server's stream
    # threads already read while it plans, and must refuse it
    c, d = push_session()
    c.sendall(frame(bytes([4]) + struct.pack('>II', 0, 1) + entry(1, 'early0.bin', 100)))
    need = read_frame(c); assert need[0] == 6, need
    d.sendall(struct.pack('>IIQII', 0x4a4d4242, 1, 0, 100, 0) + b'\0' * 16 + b'a' * 100)
    answer(c)
elif CASE == 'need-out-of-order':
    # PULL of a directory of two files, then NEEDs for the second before the first
    c = tls_connect(); c.sendall(hello(2, 'two', flags=4))
    d, status = join_stream(c)
    assert status == 0, status
    while True:
        f = read_frame(c); assert f and f[0] in (4, 5), f
        if f[0] == 5:
            break
    c.sendall(frame(bytes([6]) + struct.pack('>II', 2, 0)) + frame(bytes([6]) + struct.pack('>II', 1, 0)))
    # the sender may finish file 1 (FILE_END) before it reads the second NEED
    while True:
        f = answer(c)
        if f is None or f[0] == 3:
            break
else:
    sys.exit('unknown case ' + CASE)
