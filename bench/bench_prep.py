"""Benchmark of the data stage: `tunebook.clean.prep` on 100,000 short chat records (~300 characters each).

    python bench/bench_prep.py [--n 100000] [--num-proc N]

Writes a synthetic OpenAI-chat JSONL (random sentences over the 3,000 commonest words of the standard library's docs, with 3% exact duplicates,
2% near duplicates, 2% rows carrying PII and 1% carrying HTML), runs `prep` with default settings (clean + PII +
exact/near dedup + token lengths + split + leakage check + save) and prints records/s end to end and where the
time goes. It prints figures and asserts nothing about time (timings depend on the machine)."""
import argparse, json, random, tempfile, time, os, shutil
from pathlib import Path

def english_words(n=3000):
    "Real English words (so that tokenization costs what it costs on real text), from the docstrings of the standard library."
    import re, pydoc, importlib, collections
    c = collections.Counter()
    for m in ('os', 'json', 're', 'collections', 'argparse', 'logging', 'subprocess', 'pathlib', 'typing', 'random', 'datetime', 'email', 'http.client', 'unittest', 'asyncio'):
        c.update(re.findall(r'\b[a-z]{2,12}\b', pydoc.render_doc(importlib.import_module(m), renderer=pydoc.plaintext)))
    return [w for w, _ in c.most_common(n)]

def make_records(n, seed=0):
    R = random.Random(seed)
    vocab = english_words()
    cw = list(__import__('itertools').accumulate(1 / (r + 1) for r in range(len(vocab))))  # Zipf: common words are common
    def sent(k): return ' '.join(R.choices(vocab, cum_weights=cw, k=k)).capitalize() + '.'
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

def cpu_seconds():
    "User + system CPU time of this process and its finished child processes (the `num_proc` workers)."
    import resource
    return sum(getattr(resource.getrusage(w), f) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN) for f in ('ru_utime', 'ru_stime'))

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
        cpu0 = cpu_seconds(); t = time.time(); rep = prep(src, tmp/'out', num_proc=a.num_proc); wall, cpu = time.time() - t, cpu_seconds() - cpu0
        print(summary(rep, tmp/'out'))
        print(f"\nend to end: {wall:.1f} s for {a.n:,} records = {a.n/wall:,.0f} records/s  (cpus: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f})")
        print(f"CPU time (this process + workers): {cpu:.1f} s = {a.n/cpu:,.0f} records per CPU-second")
        print('where the time goes (s):')
        for k, v in rep['timings_s'].items(): print(f"  {k:15} {v:7.2f}  {100*v/rep['timings_s']['total']:5.1f}%")
    finally: shutil.rmtree(tmp, ignore_errors=True)

if __name__ == '__main__': main()
