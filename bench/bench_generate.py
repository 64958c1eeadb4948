"""Benchmark: batched generation (left padding + KV cache) vs the one-prompt-at-a-time loop, same prompts, greedy.

    python bench/bench_generate.py [--model smollm2-135m-instruct] [--n 64] [--batch-size 32] [--max-new-tokens 32]

Prints both wall times, the speed-up, and whether every greedy answer is identical. Slow (minutes on a CPU): not run in CI.
Speed figures are ratios measured side by side in one run; never assert on them.
"""
import argparse, json, time, os
from pathlib import Path
import torch

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--model', default='smollm2-135m-instruct')
    ap.add_argument('--data', default=str(Path(__file__).resolve().parents[1]/'data'/'sample_chat.jsonl'))
    ap.add_argument('--n', type=int, default=64)
    ap.add_argument('--batch-size', type=int, default=32)
    ap.add_argument('--max-new-tokens', type=int, default=32)
    ap.add_argument('--device', default=None)
    ap.add_argument('--json', default=None, help='also write the figures to this file')
    a = ap.parse_args()
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    from tunebook.models import load_base
    from tunebook.eval import generate, split_conversation
    from tunebook.core import device_summary
    model, tok = load_base(a.model, device=a.device)
    rows = [json.loads(l) for l in open(a.data)][:a.n]
    prompts = [split_conversation(r['messages'])[0] for r in rows]
    generate(model, tok, prompts[:2], max_new_tokens=4, batch_size=2)  # warm-up
    t = time.perf_counter(); batched = generate(model, tok, prompts, a.max_new_tokens, batch_size=a.batch_size); tb = time.perf_counter() - t
    t = time.perf_counter(); single = generate(model, tok, prompts, a.max_new_tokens, batch_size=1); ts = time.perf_counter() - t
    same = sum(x == y for x, y in zip(batched, single))
    res = dict(model=a.model, device=str(next(model.parameters()).device), threads=torch.get_num_threads(), prompts=len(prompts),
               batch_size=a.batch_size, max_new_tokens=a.max_new_tokens, batched_s=round(tb, 2), one_at_a_time_s=round(ts, 2),
               speedup=round(ts/tb, 2), identical_outputs=f'{same}/{len(prompts)}', machine=device_summary())
    for i, (x, y) in enumerate(zip(batched, single)):
        if x != y: print(f'differs at {i}:\n  batched: {x!r}\n  single:  {y!r}')
    print(json.dumps(res, indent=2))
    if a.json: Path(a.json).write_text(json.dumps(res, indent=2))

if __name__ == '__main__': main()
