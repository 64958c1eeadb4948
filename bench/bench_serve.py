"""Serving throughput of `tunebook serve`: requests/s and generated tokens/s with 1, 4 and 16 concurrent clients,
batched (one worker decodes up to --max-batch waiting requests together) against one at a time (--max-batch 1), on
this machine. A real server on 127.0.0.1, the official `openai` client, bounded request counts. Prints figures and
writes them to bench/results_serve_<device>.json; it asserts nothing about speed.

    python bench/bench_serve.py                                  # the bundled SmolLM2-135M-Instruct
    python bench/bench_serve.py --model runs/course/run --requests 32 --max-tokens 64
"""
import argparse, json, os, time, platform, concurrent.futures as cf
from pathlib import Path
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')
import torch
from openai import OpenAI
from tunebook.core import default_device
from tunebook.serve import load_for_serving, make_app, Server

QUESTIONS = ["What is the capital of France?", "Write one sentence about the sea.", "List three prime numbers.",
             "Name a colour and say why you like it.", "What is 12 times 7?", "Give me a tip for learning to cook.",
             "Describe a cat in a few words.", "What does a fine-tuned model learn?"]

def run_level(url:str, name:str, clients:int, n:int, max_tokens:int)->dict:
    "Send `n` chat requests from `clients` concurrent clients; wall time, requests/s, completion tokens/s."
    client = OpenAI(base_url=url, api_key='bench', max_retries=0, timeout=600)
    prompts = [f"{QUESTIONS[i % len(QUESTIONS)]} (request {i})" for i in range(n)]
    def ask(p): return client.chat.completions.create(model=name, messages=[{'role': 'user', 'content': p}], max_tokens=max_tokens).usage.completion_tokens
    t = time.perf_counter()
    with cf.ThreadPoolExecutor(clients) as ex: toks = list(ex.map(ask, prompts))
    wall = time.perf_counter() - t
    return dict(clients=clients, requests=n, wall_s=round(wall, 2), requests_per_s=round(n/wall, 3), tokens=sum(toks), tokens_per_s=round(sum(toks)/wall, 1))

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--model', default='smollm2-135m-instruct', help='run folder, model folder or alias')
    ap.add_argument('--clients', type=int, nargs='+', default=[1, 4, 16])
    ap.add_argument('--requests', type=int, default=16, help='requests per level')
    ap.add_argument('--max-tokens', type=int, default=32)
    ap.add_argument('--max-batch', type=int, default=16)
    ap.add_argument('--out', default=None, help='results JSON (default bench/results_serve_<device>.json)')
    a = ap.parse_args()
    torch.set_num_threads(int(os.environ.get('OMP_NUM_THREADS', 0)) or torch.get_num_threads())
    model, tok, _ = load_for_serving(a.model)
    name, rows = 'bench', []
    for mode, mb in [('batched', a.max_batch), ('one_at_a_time', 1)]:
        with Server(make_app(model, tok, name, max_tokens=a.max_tokens, max_batch=mb, max_queue=4*max(a.clients)+a.requests)) as s:
            run_level(s.url, name, 1, 2, a.max_tokens)  # warm-up
            for c in a.clients:
                r = dict(mode=mode, max_batch=mb, **run_level(s.url, name, c, a.requests, a.max_tokens)); rows.append(r)
                print(f"{mode:14} clients={c:3}  {r['requests_per_s']:7.2f} req/s  {r['tokens_per_s']:8.1f} tok/s  ({r['requests']} requests, {r['wall_s']} s)", flush=True)
    ratio = {c: round(next(r['requests_per_s'] for r in rows if r['mode'] == 'batched' and r['clients'] == c) /
                      next(r['requests_per_s'] for r in rows if r['mode'] == 'one_at_a_time' and r['clients'] == c), 2) for c in a.clients}
    print('batched / one-at-a-time requests/s:', ', '.join(f"{c} clients {v}x" for c, v in ratio.items()))
    dev = default_device()
    res = dict(model=a.model if not Path(a.model).exists() else Path(a.model).name, device=dev, threads=torch.get_num_threads(),
               cpu=platform.processor() or platform.machine(), requests_per_level=a.requests, max_tokens=a.max_tokens, rows=rows,
               batched_over_one_at_a_time=ratio)
    out = Path(a.out or Path(__file__).parent/f'results_serve_{dev}.json'); out.write_text(json.dumps(res, indent=2) + '\n')
    print(f"wrote {out}")

if __name__ == '__main__': main()
