#!/usr/bin/python3
"""A TCP relay that adds a fixed one-way delay in each direction.

    delay_proxy.py LISTEN_PORT TARGET_HOST:TARGET_PORT DELAY_MS [PORT_FILE]

This kernel has no sch_netem, so tests that need a round trip longer than
loopback's put this relay between the two ends: every chunk read from one
side is written to the other DELAY_MS later, in order.  It models latency,
not bandwidth or loss.  Listening on port 0 picks a free port, written to
PORT_FILE once the relay accepts connections.
"""
import collections
import socket
import sys
import threading
import time


def pump(src, dst, delay):
    q = collections.deque()
    cv = threading.Condition()
    done = [False]

    def reader():
        while True:
            try:
                b = src.recv(1 << 18)
            except OSError:
                b = b''
            with cv:
                q.append((time.monotonic() + delay, b))
                cv.notify()
            if not b:
                return

    def writer():
        while True:
            with cv:
                while not q:
                    cv.wait()
                due, b = q.popleft()
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if not b:
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            try:
                dst.sendall(b)
            except OSError:
                try:
                    src.shutdown(socket.SHUT_RD)
                except OSError:
                    pass
                return

    threading.Thread(target=reader, daemon=True).start()
    threading.Thread(target=writer, daemon=True).start()


def main():
    port, target, delay_ms = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    host, tport = target.rsplit(':', 1)
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(('127.0.0.1', port))
    ls.listen(128)
    if len(sys.argv) > 4:
        with open(sys.argv[4] + '.tmp', 'w') as f:
            f.write('%d\n' % ls.getsockname()[1])
        import os
        os.rename(sys.argv[4] + '.tmp', sys.argv[4])
    while True:
        c, _ = ls.accept()
        try:
            u = socket.create_connection((host, int(tport)))
        except OSError:
            c.close()
            continue
        for s in (c, u):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pump(c, u, delay_ms / 1000)
        pump(u, c, delay_ms / 1000)


if __name__ == '__main__':
    main()
