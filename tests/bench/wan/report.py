#!/usr/bin/python3
"""Turns the WAN benchmark's measurements into a table, JSON and a bar chart.

    report.py RESULTS OUT.json OUT.png BYTES SMALL_FILES CPUS KERNEL

RESULTS has one line per run: SCENARIO TOOL REP GBPS STATUS [OWN] (STATUS:
ok, timeout, failed; OWN: the rate iperf3 reports itself, over its data phase
only, kept in the JSON beside the wall-clock rate every tool is rated by).  Ratios: jumbo -P N against iperf3 -P N (same streams), and jumbo's
best against the best of the other file movers in the same scenario.
"""
import json
import statistics
import sys
import time

PEERS = ('gridftp-1', 'gridftp-8', 'xrootd-1', 'xrootd-8', 'scp', 'rsync')


def main():
    res_path, out_json, out_png, nbytes, small_n, cpus, kernel = sys.argv[1:8]
    runs = {}
    order_sc, order_tool = [], []
    own = {}
    for line in open(res_path):
        f = line.split()
        sc, tool, _rep, gbps, status = f[:5]
        runs.setdefault((sc, tool), []).append((float(gbps), status))
        if len(f) > 5:
            own.setdefault((sc, tool), []).append(float(f[5]))
        if sc not in order_sc:
            order_sc.append(sc)
        if tool not in order_tool:
            order_tool.append(tool)
    table = {}
    for (sc, tool), rs in runs.items():
        good = [g for g, s in rs if s != 'failed']
        table.setdefault(sc, {})[tool] = {
            'median': statistics.median(good) if good else None,
            'min': min(good) if good else None,
            'max': max(good) if good else None,
            'runs': [g for g, _ in rs],
            'status': sorted({s for _, s in rs}),
        }
        if (sc, tool) in own:
            table[sc][tool]['own_report'] = own[(sc, tool)]
    # ratios
    for sc, row in table.items():
        r = {}
        for n in ('1', '8'):
            j, i = row.get('jumbo-' + n), row.get('iperf3-' + n)
            if j and i and j['median'] and i['median']:
                r['jumbo_%s_vs_iperf3_%s' % (n, n)] = round(j['median'] / i['median'], 3)
        jb = max((row[t]['median'] or 0 for t in row if t.startswith('jumbo')), default=0)
        peers = [(row[t]['median'] or 0, t) for t in row if t in PEERS]
        if peers and jb:
            best, who = max(peers)
            r['best_peer'] = who
            r['jumbo_vs_best_peer'] = round(jb / best, 2) if best else None
            slower = [t for g, t in peers if g > jb]
            r['peers_faster_than_jumbo'] = slower
        row['_ratios'] = r

    width = max(len(t) for t in order_tool) + 2
    print()
    print('Gbit/s, median of runs (min-max); * = stopped at the timeout and rated by bytes arrived; x = failed')
    print('%-11s' % 'scenario' + ''.join('%-*s' % (width + 12, t) for t in order_tool))
    for sc in order_sc:
        row = table[sc]
        cells = []
        for t in order_tool:
            c = row.get(t)
            if not c:
                cells.append('%-*s' % (width + 12, '-'))
            elif c['median'] is None:
                cells.append('%-*s' % (width + 12, 'x'))
            else:
                mark = '*' if 'timeout' in c['status'] else ''
                cells.append('%-*s' % (width + 12, '%.2f%s (%.2f-%.2f)' % (c['median'], mark, c['min'], c['max'])))
        print('%-11s' % sc + ''.join(cells))
    print()
    for sc in order_sc:
        r = table[sc]['_ratios']
        parts = ['%s %.2f' % (k.replace('_vs_', '/'), v) for k, v in r.items() if k.startswith('jumbo_') and v]
        if 'best_peer' in r:
            parts.append('best peer %s' % r['best_peer'])
        if r.get('peers_faster_than_jumbo'):
            parts.append('FASTER THAN JUMBO: %s' % ', '.join(r['peers_faster_than_jumbo']))
        print('%-11s %s' % (sc, '; '.join(parts)))

    doc = {'date': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
           'machine': {'cpus': int(cpus), 'kernel': kernel},
           'file_bytes': int(nbytes), 'small_files': int(small_n), 'scenarios': table}
    with open(out_json, 'w') as f:
        json.dump(doc, f, indent=2)
    print('\nresults: %s' % out_json)

    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        print('no chart: python3-matplotlib is not installed')
        return
    fig, ax = plt.subplots(figsize=(max(8, 1.6 * len(order_sc)), 5))
    w = 0.8 / len(order_tool)
    for k, t in enumerate(order_tool):
        xs, ys, es = [], [], []
        for i, sc in enumerate(order_sc):
            c = table[sc].get(t)
            if c and c['median'] is not None:
                xs.append(i + k * w)
                ys.append(c['median'])
                es.append([[c['median'] - c['min']], [c['max'] - c['median']]])
        if xs:
            lo = [e[0][0] for e in es]
            hi = [e[1][0] for e in es]
            ax.bar(xs, ys, w, yerr=[lo, hi], label=t, capsize=2)
    ax.set_xticks([i + 0.4 - w / 2 for i in range(len(order_sc))])
    ax.set_xticklabels(order_sc)
    ax.set_ylabel('Gbit/s (median, min-max)')
    ax.set_title('jumbo and peers on an emulated WAN (%s, %s CPUs)' % (kernel, cpus))
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    print('chart: %s' % out_png)


if __name__ == '__main__':
    main()
