#!/usr/bin/python3
"""sample.py OUT PID...: until every PID has exited, every 0.1 s, the open
descriptors and resident memory of each PID and of every process below it.
Writes to OUT one JSON object: for each PID given, the peak over its
process tree of the descriptors held at once (summed over the tree) and of
the resident set (the largest process, and the tree's sum), in KiB."""
import json, os, sys, time

out, roots = sys.argv[1], [int(p) for p in sys.argv[2:]]


def children():
    kids = {}
    for d in os.listdir('/proc'):
        if not d.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % d) as f:
                ppid = int(f.read().rsplit(')', 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(int(d))
    return kids


def tree(pid, kids):
    todo, seen = [pid], []
    while todo:
        p = todo.pop()
        seen.append(p)
        todo.extend(kids.get(p, []))
    return seen


def rss_kib(p):
    try:
        with open('/proc/%d/status' % p) as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def nfds(p):
    try:
        return len(os.listdir('/proc/%d/fd' % p))
    except OSError:
        return 0


peak = {p: {'fds': 0, 'rss_kib_max': 0, 'rss_kib_sum': 0} for p in roots}
while any(os.path.exists('/proc/%d' % p) for p in roots):
    kids = children()
    for r in roots:
        procs = tree(r, kids)
        fds = sum(nfds(p) for p in procs)
        rss = [rss_kib(p) for p in procs]
        pk = peak[r]
        pk['fds'] = max(pk['fds'], fds)
        pk['rss_kib_max'] = max(pk['rss_kib_max'], max(rss) if rss else 0)
        pk['rss_kib_sum'] = max(pk['rss_kib_sum'], sum(rss))
    with open(out, 'w') as f:
        json.dump({str(k): v for k, v in peak.items()}, f)
    time.sleep(0.1)
