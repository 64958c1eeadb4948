"""Benchmark: `tunebook.eval.generate` (batched, left padding, KV cache, finished rows leave the batch) vs the
usual one-prompt-at-a-time loop (`model.generate` per prompt, stopping at EOS/end-of-turn), same prompts, greedy.

    python bench/bench_generate.py [--model smollm2-135m-instruct] [--n 64] [--batch-size 32] [--max-new-tokens 48]

Also times `model.generate` on the same left-padded batches (static batching: every row runs until the longest is done), to
show what dropping finished rows adds. Prints wall times, speed-ups, and whether every greedy answer is identical to the
one-at-a-time loop's. Slow (minutes on a CPU): not run in CI. Speed figures are ratios measured side by side in one run.
"""
import argparse, json, time, os
from pathlib import Path
import torch

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--model', default='smollm2-135m-instruct')
    ap.add_argument('--data', default=str(Path(__file__).resolve().parents[1]/'tunebook'/'samples'/'sample_chat.jsonl'))
    ap.add_argument('--n', type=int, default=64)
    ap.add_argument('--batch-size', type=int, default=32)
    ap.add_argument('--max-new-tokens', type=int, default=48)
    ap.add_argument('--device', default=None)
    ap.add_argument('--json', default=None, help='also write the figures to this file')
    a = ap.parse_args()
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    from tunebook.models import load_base
    from tunebook.eval import generate, split_conversation, encode_prompt, stop_token_ids
    from tunebook.core import device_summary
    model, tok = load_base(a.model, device=a.device)
    rows = [json.loads(l) for l in open(a.data)][:a.n]
    prompts = [split_conversation(r['messages'])[0] for r in rows]
    dev, stops = next(model.parameters()).device, stop_token_ids(tok)
    enc = [encode_prompt(tok, p) for p in prompts]
    def one_at_a_time():  # one prompt at a time, the usual loop: model.generate per prompt, greedy, stop at EOS/end-of-turn
        outs = []
        for e in enc:
            g = model.generate(input_ids=torch.tensor([e], device=dev), attention_mask=torch.ones(1, len(e), dtype=torch.long, device=dev),
                               max_new_tokens=a.max_new_tokens, do_sample=False, eos_token_id=stops, pad_token_id=tok.pad_token_id)
            new = g[0, len(e):].tolist(); new = new[:next((k for k, t in enumerate(new) if t in stops), len(new))]
            outs.append(tok.decode(new, skip_special_tokens=True).strip())
        return outs
    def static_batches():  # the same left-padded batches through model.generate: every row runs until the batch's longest answer ends
        import numpy as np
        order, outs = np.argsort([-len(e) for e in enc], kind='stable'), [None]*len(enc)
        for i in range(0, len(order), a.batch_size):
            idx = order[i:i+a.batch_size]; L = max(len(enc[j]) for j in idx)
            ids = torch.full((len(idx), L), tok.pad_token_id); att = torch.zeros((len(idx), L), dtype=torch.long)
            for r, j in enumerate(idx): ids[r, L-len(enc[j]):], att[r, L-len(enc[j]):] = torch.tensor(enc[j]), 1
            g = model.generate(input_ids=ids.to(dev), attention_mask=att.to(dev), max_new_tokens=a.max_new_tokens, do_sample=False,
                               eos_token_id=stops, pad_token_id=tok.pad_token_id)
            for r, j in enumerate(idx):
                new = g[r, L:].tolist(); new = new[:next((k for k, t in enumerate(new) if t in stops), len(new))]
                outs[j] = tok.decode(new, skip_special_tokens=True).strip()
        return outs
    generate(model, tok, prompts[:2], max_new_tokens=4, batch_size=2)  # warm-up
    def timed(f):
        t = time.perf_counter(); out = f(); return out, time.perf_counter() - t
    ours, tb = timed(lambda: generate(model, tok, prompts, a.max_new_tokens, batch_size=a.batch_size))
    static, tst = timed(static_batches)
    single, ts = timed(one_at_a_time)
    same = sum(x == y for x, y in zip(ours, single))
    new_tokens = sum(len(tok(o, add_special_tokens=False)['input_ids']) for o in single)
    res = dict(model=a.model, device=str(dev), threads=torch.get_num_threads(), prompts=len(prompts), batch_size=a.batch_size,
               max_new_tokens=a.max_new_tokens, answer_tokens_mean=round(new_tokens/len(prompts), 1),
               ours_batched_s=round(tb, 2), static_batched_generate_s=round(tst, 2), one_at_a_time_s=round(ts, 2),
               speedup_ours_vs_one_at_a_time=round(ts/tb, 2), speedup_static_vs_one_at_a_time=round(ts/tst, 2),
               identical_outputs=f'{same}/{len(prompts)}', identical_static=f'{sum(x == y for x, y in zip(static, single))}/{len(prompts)}',
               load_avg=os.getloadavg(), machine=device_summary())
    for i, (x, y) in enumerate(zip(ours, single)):
        if x != y: print(f'differs at {i}:\n  batched: {x!r}\n  single:  {y!r}')
    print(json.dumps(res, indent=2))
    if a.json: Path(a.json).write_text(json.dumps(res, indent=2))

if __name__ == '__main__': main()
