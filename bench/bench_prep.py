"""Benchmark of the data stage: `tunebook.clean.prep` on 100,000 short chat records (~300 characters each).

    python bench/bench_prep.py [--n 100000] [--num-proc N]

Writes a synthetic OpenAI-chat JSONL (random sentences from a 2,000-word vocabulary, with 3% exact duplicates,
2% near duplicates, 2% rows carrying PII and 1% carrying HTML), runs `prep` with default settings (clean + PII +
exact/near dedup + token lengths + split + leakage check + save) and prints records/s end to end and where the
time goes. It prints figures and asserts nothing about time (timings depend on the machine)."""
import argparse, json, random, tempfile, time, os, shutil
from pathlib import Path

def make_records(n, seed=0):
    R = random.Random(seed)
    vocab = [''.join(R.choice('abcdefghijklmnopqrstuvwxyz') for _ in range(R.randint(2, 9))) for _ in range(2000)]
    def sent(k): return ' '.join(R.choice(vocab) for _ in range(k)).capitalize() + '.'
    rows = []
    for i in range(n):
        r = R.random()
        if rows and r < 0.03: rows.append(json.loads(json.dumps(R.choice(rows)))); continue           # exact duplicate
        if rows and r < 0.05:                                                                    # near duplicate: one word added
            d = json.loads(json.dumps(R.choice(rows))); d['messages'][-1]['content'] += ' Thanks.'; rows.append(d); continue
        user, answer = sent(R.randint(8, 16)) + ' ' + sent(R.randint(4, 8)), sent(R.randint(20, 34))
        if r < 0.07: user += f" Mail me at user{i}@example.com or call +44 20 7946 {i % 10000:04d}."
        elif r < 0.08: answer = f"<div><p>{answer}</p><script>track({i})</script></div>"
        rows.append({'messages': [{'role': 'user', 'content': user}, {'role': 'assistant', 'content': answer}]})
    return rows

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--n', type=int, default=100_000); ap.add_argument('--num-proc', type=int, default=None)
    a = ap.parse_args()
    from tunebook.clean import prep, summary
    tmp = Path(tempfile.mkdtemp(prefix='bench_prep_'))
    try:
        t = time.time(); rows = make_records(a.n)
        src = tmp/'bench.jsonl'; src.write_text(''.join(json.dumps(r) + '\n' for r in rows))
        size = src.stat().st_size
        print(f"generated {a.n:,} records ({size/a.n:.0f} bytes/record as JSON) in {time.time()-t:.1f} s")
        t = time.time(); rep = prep(src, tmp/'out', num_proc=a.num_proc); wall = time.time() - t
        print(summary(rep, tmp/'out'))
        print(f"\nend to end: {wall:.1f} s for {a.n:,} records = {a.n/wall:,.0f} records/s  (cpus: {os.cpu_count()})")
        print('where the time goes (s):')
        for k, v in rep['timings_s'].items(): print(f"  {k:15} {v:7.2f}  {100*v/rep['timings_s']['total']:5.1f}%")
    finally: shutil.rmtree(tmp, ignore_errors=True)

if __name__ == '__main__': main()
