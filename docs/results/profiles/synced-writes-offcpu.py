"""Off-CPU attribution: sched_switch samples (perf record -e sched:sched_switch --call-graph dwarf)
of writer threads, classified by why the thread left the CPU and the engine frame that asked."""
import sys, re
from collections import Counter
OURS = re.compile(r'(engine_api|lsm_engine|bitcask_engine)::')
SKIP = re.compile(r'parking_lot|lock_api|core::|std::|alloc::|<.*as core')
def classify(frames):
    k = ' '.join(frames)
    if 'fdatasync' in k or 'file_write_and_wait' in k or 'jbd2' in k:
        why = 'fdatasync'
    elif 'pwrite' in k or 'vfs_write' in k:
        why = 'pwrite'
    elif 'futex_wait' in k:
        why = 'futex wait'
    elif 'sched_yield' in k or 'do_sched_yield' in k:
        why = 'sched_yield'
    elif 'irqentry_exit' in k or 'exit_to_user_mode' in k or 'preempt' in k:
        why = 'preempted'
    else:
        why = 'other'
    site = next((f for f in frames if OURS.search(f) and not SKIP.match(f)), '?')
    site = re.sub(r'::h[0-9a-f]{16}$', '', site)
    site = re.sub(r'<impl [^>]*>|\{\{closure\}\}', '', site)
    return why, site
samples, cur = [], None
for line in open(sys.argv[1]):
    if not line.strip():
        if cur: samples.append(cur)
        cur = None
        continue
    if not line.startswith('\t') and not line.startswith(' ' * 8):
        cur = (line.split()[0], [])
        continue
    if cur is not None:
        parts = line.split(None, 1)
        cur[1].append(parts[1].strip() if len(parts) > 1 else '')
if cur: samples.append(cur)
# writer threads: the ones with the most samples in GroupCommit
by_tid = Counter(t for t, fr in samples if any('wait_durable' in f for f in fr))
writers = {t for t, c in by_tid.items() if c > 20}
ws = [fr for t, fr in samples if t in writers]
writes = int(sys.argv[2])
print(f'{len(writers)} writer threads, {len(ws)} switches, {len(ws)/writes:.2f} per write ({writes} writes)')
c = Counter(classify(fr) for fr in ws)
for (why, site), n in c.most_common(14):
    print(f'  {n/writes:5.2f}/write  {why:12} {site[:110]}')
