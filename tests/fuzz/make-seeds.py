#!/usr/bin/python3
"""Writes seed inputs for fuzz_wire: one valid body of each message type
(type byte first, no length prefix) plus JOIN and BLOCK headers."""
import os, struct, sys

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), 'corpus', 'wire')
os.makedirs(out, exist_ok=True)

def s(t): b = t.encode(); return struct.pack('>H', len(b)) + b
def entry(typ, path, size, mode, mtime): return bytes([typ]) + s(path) + struct.pack('>QIq', size, mode, mtime)

seeds = {
    'hello': bytes([1]) + struct.pack('>IHBBHIQ', 0x4a4d424f, 2, 1, 1, 4, 8 << 20, 0) + s('run7/a.h5') + s('kisti'),
    'hello_route': bytes([1]) + struct.pack('>IHBBHIQ', 0x4a4d424f, 2, 1, 8, 4, 8 << 20, 0) + s('in/x') + s('alpha')
            + s('alpha') + bytes([1, 2]) + s('relay2') + s('beta'),
    # custody and the route's congestion control (flags 1 | 2), after the hops
    'hello_route_cc': bytes([1]) + struct.pack('>IHBBHIQ', 0x4a4d424f, 2, 1, 8, 4, 8 << 20, 0) + s('in/x') + s('alpha')
            + s('alpha') + bytes([3, 1]) + s('beta') + s('cubic'),
    'welcome': bytes([2]) + struct.pack('>HBHI', 2, 0, 4, 8 << 20) + b'\x11' * 16 + b'\x22' * 32 + s('caltech'),
    'error': bytes([3]) + struct.pack('>H', 13) + s('unknown peer'),
    'files': bytes([4]) + struct.pack('>II', 0, 2) + entry(2, 'd', 0, 0o755, 1) + entry(1, 'd/x', 100, 0o644, 2),
    'files_end': bytes([5]) + struct.pack('>IQ', 2, 100),
    'need': bytes([6]) + struct.pack('>II', 1, 2) + struct.pack('>QQQQ', 0, 3, 5, 1),
    'need_end': bytes([7]),
    'file_end': bytes([8]) + struct.pack('>I', 1) + b'\x33' * 16,
    'file_done': bytes([9]) + struct.pack('>IH', 1, 0) + b'\x33' * 16 + s(''),
    'resend': bytes([10]) + struct.pack('>IQ', 1, 7),
    'bye': bytes([11]),
    'file_abort': bytes([12]) + struct.pack('>IH', 3, 13) + s('d/x: cannot open: Permission denied'),
    'held': bytes([16]) + struct.pack('>II', 4, 1) + struct.pack('>QQ', 7, 1),
    'need_again': bytes([13]) + struct.pack('>II', 1, 1) + struct.pack('>QQ', 0, 4),
    # a file of 3 blocks at 64 KiB sealed in two pieces (blocks 0-1, then 2 and the root), a directory
    'seal': bytes([14]) + b'\x77' * 16 + s('CERT') + struct.pack('>I', 3)
            + struct.pack('>I', 1) + entry(1, 'd/x', 150000, 0o644, 2) + struct.pack('>III', 65536, 0, 2) + b'\x01' * 64 + b'\x00'
            + struct.pack('>I', 1) + entry(1, 'd/x', 150000, 0o644, 2) + struct.pack('>III', 65536, 2, 1) + b'\x02' * 32 + b'\x01' + b'\x03' * 32
            + struct.pack('>I', 0) + entry(2, 'd', 0, 0o755, 1) + struct.pack('>III', 65536, 0, 0) + b'\x00'
            + b'\x99' * 64,
    'receipt': bytes([15]) + b'\x77' * 16 + s('relay-r') + struct.pack('>qIQ', 1764000000000000000, 2, 150000) + b'\x44' * 32
            + b'\x00' + s('CERT') + b'\x99' * 64,
    'files_far': bytes([4]) + struct.pack('>II', 4000000000, 1) + entry(1, 'd/y', 1, 0o644, 3),
    'join': struct.pack('>IH', 0x4a4d424a, 2) + b'\x44' * 16 + struct.pack('>H', 2) + b'\x55' * 32,
    'block': struct.pack('>IIQII', 0x4a4d4242, 1, 7, 65536, 0) + b'\x66' * 16,
}
for name, data in seeds.items():
    with open(os.path.join(out, 'seed-' + name), 'wb') as f:
        f.write(data)
