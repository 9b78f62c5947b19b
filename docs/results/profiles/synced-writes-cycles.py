"""Cycle analysis of a `perf trace` of closed-loop synced writers (group commit).
Usage: analyze.py TRACE  -> per-sync cycle breakdown of the writer threads."""
import re, sys, statistics as S
from collections import Counter, defaultdict
LINE = re.compile(r'^\s*([\d.]+) \(\s*([\d.]*)\s*(?:ms)?\s*\): (.+?)/(\d+)\s+(.*)$')
ev = []
pending = {}
for line in open(sys.argv[1]):
    m = LINE.match(line)
    if not m:
        continue
    ts, dur, comm, tid, rest = m.groups()
    tid = int(tid)
    op = 'WAIT' if 'WAIT' in rest else ('WAKE' if 'WAKE' in rest else ('REQUEUE' if 'REQUEUE' in rest else ''))
    if rest.startswith('... [continued]:'):
        name = rest.split(':', 1)[1].strip().split('(')[0]
        start, op0 = pending.pop(tid, (float(ts), ''))
        ev.append((start, float(dur or 0), tid, name, op0 or op, rest))
        continue
    name = rest.split('(')[0]
    if rest.rstrip().endswith('...'):
        pending[tid] = (float(ts), op)  # finished at its [continued] line
        continue
    if float(dur or 0) > 10_000:
        continue
    ev.append((float(ts), float(dur or 0), tid, name, op, rest))
main_tid = min(t for _, _, t, _, _, r in ev)
ev = [e for e in ev if e[2] != main_tid]
syncs_by_tid = Counter(t for _, _, t, n, _, _ in ev if n == 'fdatasync')
writers = {t for t, c in syncs_by_tid.items() if c > 20}
ev = [e for e in ev if e[2] in writers]
ev.sort()
syncs = [e for e in ev if e[3] == 'fdatasync']
def med(xs):
    xs = sorted(xs); return xs[len(xs)//2] if xs else 0
def pct(xs, p):
    xs = sorted(xs); return xs[min(len(xs)-1, int(p*len(xs)))] if xs else 0
# steady state: drop first and last 5 %
lo, hi = len(syncs)//20, len(syncs) - len(syncs)//20
cycles = []
for a, b in zip(syncs[lo:hi], syncs[lo+1:hi]):
    start, end = a[0], a[0] + a[1]
    inwin = [e for e in ev if start <= e[0] < b[0]]
    # bisect would be faster; traces are small enough
    cycles.append(dict(sync=a[1], gap=b[0]-end, cycle=b[0]-start,
        writes=sum(1 for e in inwin if e[3] in ('pwrite64', 'write')),
        wait=sum(1 for e in inwin if e[3] == 'futex' and e[4] == 'WAIT'),
        wake=sum(1 for e in inwin if e[3] == 'futex' and e[4] == 'WAKE'),
        yld=sum(1 for e in inwin if e[3] == 'sched_yield'),
        wdur=sum(e[1] for e in inwin if e[3] in ('pwrite64', 'write'))))
print(f'trace {sys.argv[1]}: {len(writers)} writer threads, {len(syncs)} syncs, {len(cycles)} steady cycles')
for k in ('sync', 'gap', 'cycle', 'wdur'):
    xs = [c[k]*1000 for c in cycles]
    print(f'  {k:6} us: median {med(xs):7.0f}  p10 {pct(xs,.1):7.0f}  p90 {pct(xs,.9):7.0f}')
for k in ('writes', 'wait', 'wake', 'yld'):
    xs = [c[k] for c in cycles]
    print(f'  {k:6} per cycle: median {med(xs):4}  mean {S.mean(xs):5.2f}')
allw = [e for e in ev if e[3] in ('pwrite64','write')]
allf = [e for e in ev if e[3] == 'futex']
print(f'  per write: futex calls {len(allf)/max(1,len(allw)):.2f} (WAIT {sum(1 for e in allf if e[4]=="WAIT")/max(1,len(allw)):.2f}, WAKE {sum(1 for e in allf if e[4]=="WAKE")/max(1,len(allw)):.2f}), sched_yield {sum(1 for e in ev if e[3]=="sched_yield")/max(1,len(allw)):.2f}, syncs {len(syncs)/max(1,len(allw)):.3f}')
# futex WAIT durations: how long writers sleep
fw = [e[1]*1000 for e in allf if e[4]=='WAIT']
print(f'  futex WAIT us: median {med(fw):.0f} p90 {pct(fw,.9):.0f}; pwrite us: median {med([e[1]*1000 for e in allw]):.0f} p90 {pct([e[1]*1000 for e in allw],.9):.0f}')
