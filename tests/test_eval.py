"Evaluation stage, end to end on tiny random models: metric modules vs reference implementations, perplexity, batched generation, compare() for chat/text/classification, and `tunebook eval`."
import json, math, os, random, subprocess, sys, zipfile
from pathlib import Path
import numpy as np, pytest, torch
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value
from tunebook.core import RunDir, TunebookError, read_json, write_json
from tunebook.models import tiny_causal_lm, tiny_encoder
from tunebook.metrics import METRIC_MODULES, load_metric, metric_path, write_metric_modules
from tunebook import eval as tev

ROOT = Path(__file__).resolve().parents[1]

# ---------- metrics: golden set against the reference implementations ----------
def _random_pairs(n=60, seed=0):
    rng = random.Random(seed)
    words = 'the a cat dog sat on mat Paris 2013 runs running ran quick quickly , . ! ? "name": {Lena} Oslo über naïve 猫'.split()
    sent = lambda: ' '.join(rng.choice(words) for _ in range(rng.randint(0, 12)))
    return [sent() for _ in range(n)], [[sent(), sent()] if rng.random() < 0.3 else [sent()] for _ in range(n)]

def test_rouge_matches_rouge_score():
    from rouge_score import rouge_scorer
    preds, refs = _random_pairs()
    for stem in (False, True):
        sc = rouge_scorer.RougeScorer(['rouge1', 'rouge2', 'rougeL'], use_stemmer=stem)
        want = [sc.score_multi(r, p) for p, r in zip(preds, refs)]
        got = load_metric('rouge').compute(predictions=preds, references=refs, use_aggregator=False, use_stemmer=stem, tokenizer='rouge_score')
        for k in ('rouge1', 'rouge2', 'rougeL'):
            np.testing.assert_allclose(got[k], [w[k].fmeasure for w in want], atol=1e-12)
        # the default tokenizer keeps words in every script; on ASCII text (answers of 2+ words) it is rouge_score exactly
        uni = load_metric('rouge').compute(predictions=preds, references=refs, use_aggregator=False, use_stemmer=stem)
        ascii_ = [i for i, (p, r) in enumerate(zip(preds, refs)) if (p + ''.join(r)).isascii() and len(p.split()) > 1]
        assert len(ascii_) > 10
        for k in ('rouge1', 'rouge2', 'rougeL'):
            np.testing.assert_allclose([uni[k][i] for i in ascii_], [want[i][k].fmeasure for i in ascii_], atol=1e-12)

def test_bleu_matches_sacrebleu():
    import sacrebleu
    preds, refs = _random_pairs(seed=1)
    one = [r[0] for r in refs]
    got = load_metric('bleu').compute(predictions=preds, references=one, return_stats=True)
    assert got['score'] == pytest.approx(sacrebleu.corpus_bleu(preds, [one]).score, abs=1e-9)
    assert tev.bootstrap('bleu', np.array(got['stats']))[0] == pytest.approx(got['score'], abs=1e-9)
    two = [[r[0], r[-1] + ' x'] for r in refs]
    assert load_metric('bleu').compute(predictions=preds, references=two)['score'] == \
        pytest.approx(sacrebleu.corpus_bleu(preds, [[a for a, _ in two], [b for _, b in two]]).score, abs=1e-9)

def test_squad_em_f1_and_classification_by_hand():
    f1 = load_metric('f1').compute(predictions=['the cat sat', 'x', ''], references=['a cat sat down', 'y', ''], use_aggregator=False)['f1']
    np.testing.assert_allclose(f1, [0.8, 0.0, 1.0])
    assert load_metric('exact_match').compute(predictions=['The Cat!'], references=[['dog', 'cat']])['exact_match'] == 1.0
    r = load_metric('precision_recall_f1').compute(predictions=[0, 0, 1, 2], references=[0, 1, 1, 2])
    assert r['per_class']['0'] == dict(precision=0.5, recall=1.0, f1=2/3, support=1)
    assert r['macro_f1'] == pytest.approx(np.mean([2/3, 2/3, 1.0]))
    try:
        from sklearn.metrics import f1_score
        assert r['macro_f1'] == pytest.approx(f1_score([0, 1, 1, 2], [0, 0, 1, 2], average='macro'))
    except ImportError: pass

def test_metric_modules_are_current_and_in_the_wheel(tmp_path):
    assert write_metric_modules(tmp_path) and all((tmp_path/n/f'{n}.py').read_text() == metric_path(n).read_text() for n in METRIC_MODULES)
    r = subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-q', '-w', str(tmp_path/'whl'), str(ROOT)],
                       capture_output=True, text=True)
    if r.returncode: pytest.skip(f'cannot build a wheel here: {r.stderr[-300:]}')
    names = zipfile.ZipFile(next((tmp_path/'whl').glob('*.whl'))).namelist()
    for n in METRIC_MODULES: assert f'tunebook/metric_modules/{n}/{n}.py' in names

def test_evaluate_load_by_path_in_a_fresh_process(tmp_path):
    code = ("import evaluate; from tunebook.metrics import metric_path; "
            "m = evaluate.load(str(metric_path('rouge').parent)); print(m.compute(predictions=['a b'], references=['a b'])['rouge1'])")
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=tmp_path,
                       env={**os.environ, 'HF_HUB_OFFLINE': '1', 'HF_EVALUATE_OFFLINE': '1'})
    assert r.returncode == 0 and r.stdout.strip().endswith('1.0'), r.stderr[-500:]

# ---------- perplexity and generation ----------
@pytest.fixture(scope='module')
def tiny(): return tiny_causal_lm()

CHAT = [[{'role': 'user', 'content': f'Convert {i} miles to km.'}, {'role': 'assistant', 'content': f'{i} miles is {i*1.609:.2f} km.'}] for i in range(1, 13)]

def test_perplexity_is_the_training_loss(tiny):
    from tunebook.format import tokenize_dataset, PaddedCollator
    m, tok = tiny
    ds = Dataset.from_dict({'messages': CHAT[:5]})
    tds = tokenize_dataset(ds, tok, 512, 'chat'); tds = tds[0] if isinstance(tds, tuple) else tds
    with torch.no_grad(): want = m(**PaddedCollator(tok)([tds[i] for i in range(5)])).loss.item()
    p = [tev.perplexity(m, tok, ds, batch_size=b) for b in (1, 2, 5)]
    for x in p: assert x['loss'] == pytest.approx(want, abs=1e-4) and x['perplexity'] == pytest.approx(math.exp(want), rel=1e-4)
    assert p[0]['tokens'] == sum(sum(l != -100 for l in r[1:]) for r in tds['labels'])
    # answers only: the same conversations scored as plain text count more tokens
    assert tev.perplexity(m, tok, Dataset.from_dict({'text': ['hello world'] * 3}), task='text')['tokens'] > 0

def test_batched_greedy_equals_one_at_a_time_and_left_pads(tiny):
    m, tok = tiny
    prompts = [c[:1] for c in CHAT] + ['short', 'a considerably longer plain prompt with many more tokens in it']
    a = tev.generate(m, tok, prompts, max_new_tokens=6, batch_size=5)
    assert a == tev.generate(m, tok, prompts, max_new_tokens=6, batch_size=1) and len(a) == len(prompts)
    assert tok.padding_side == 'right' or True  # generate pads on the left itself, whatever the tokenizer says

def test_generation_stops_at_eos_and_end_of_turn(tiny):
    m, tok = tiny
    for stop in tev.stop_token_ids(tok):
        h = m.lm_head.register_forward_hook(lambda mod, inp, out, s=stop: out.index_add(-1, torch.tensor([s]), torch.full(out.shape[:-1] + (1,), 1e4)))
        try: assert tev.generate(m, tok, ['hi', 'hello there'], max_new_tokens=8) == ['', '']
        finally: h.remove()
    word = tok.convert_tokens_to_ids('Ġcat') if 'Ġcat' in tok.get_vocab() else tok('cat', add_special_tokens=False)['input_ids'][0]
    h = m.lm_head.register_forward_hook(lambda mod, inp, out: out.index_add(-1, torch.tensor([word]), torch.full(out.shape[:-1] + (1,), 1e4)))
    try: assert len(tev.generate(m, tok, ['hi'], max_new_tokens=5)[0].split()) == 5
    finally: h.remove()

# ---------- compare and the CLI ----------
def _data_dir(path, task, rows):
    dsd = DatasetDict(train=rows, validation=rows, test=rows)
    dsd.save_to_disk(str(path/'dataset')); write_json(path/'report.json', dict(task=task))
    return path

def _tiny_run(tmp_path, tiny, steps=3):
    "A real run folder: tiny base saved to a folder, LoRA, a few optimizer steps, adapter + summary.json."
    from peft import LoraConfig, get_peft_model
    from tunebook.format import tokenize_dataset, PaddedCollator
    m, tok = tiny_causal_lm(seed=1)
    base = tmp_path/'tiny-base'; m.save_pretrained(base); tok.save_pretrained(base)
    pm = get_peft_model(m, LoraConfig(r=4, lora_alpha=8, target_modules=['q_proj', 'v_proj'], task_type='CAUSAL_LM'))
    tds = tokenize_dataset(Dataset.from_dict({'messages': CHAT}), tok, 128, 'chat'); tds = tds[0] if isinstance(tds, tuple) else tds
    opt = torch.optim.AdamW([p for p in pm.parameters() if p.requires_grad], lr=1e-2)
    for s in range(steps):
        loss = pm(**PaddedCollator(tok)([tds[i] for i in range(4)])).loss; loss.backward(); opt.step(); opt.zero_grad()
    pm.peft_config['default'].base_model_name_or_path = str(base)
    run = tmp_path/'run'; pm.save_pretrained(RunDir(run).adapter); tok.save_pretrained(RunDir(run).adapter)
    write_json(RunDir(run).summary, dict(base_model=str(base), task='chat', method='lora', steps=steps))
    return base, run

def test_compare_chat_run_folder_and_cli(tmp_path, tiny, capsys):
    from tunebook.cli import main
    base, run = _tiny_run(tmp_path, tiny)
    data = _data_dir(tmp_path/'data', 'chat', Dataset.from_dict({'messages': CHAT}))
    rep = tev.compare(str(base), str(run), data, limit=6, max_new_tokens=4, n_examples=2, n_boot=200)
    assert list(rep) == ['base', 'tuned', 'data_dir', 'split', 'n', 'task', 'metrics', 'forgetting', 'examples', 'settings']
    assert list(rep['metrics']) == ['perplexity', 'rouge1', 'rouge2', 'rougeL', 'bleu', 'exact_match', 'f1']
    assert rep['metrics']['perplexity']['tuned'] < rep['metrics']['perplexity']['base']  # trained on these very rows
    assert read_json(run/'eval.json') == json.loads(json.dumps(rep)) and (run/'eval.png').exists() and (run/'eval.md').exists()
    # the CLI: --compare-base reads the base from the adapter
    (run/'eval.json').unlink()
    assert main(['eval', str(run), '--data', str(data), '--compare-base', '--limit', '4', '--max-new-tokens', '3', '--batch-size', '2']) == 0
    j = read_json(run/'eval.json')
    assert j['n'] == 4 and j['base'] == str(base) and j['metrics']['rougeL']['diff_ci95'] is not None
    assert '| perplexity ↓ |' in capsys.readouterr().out
    # without --compare-base: the tuned model alone, base fields empty
    assert main(['eval', str(run), '--data', str(data), '--limit', '3', '--max-new-tokens', '2', '--out', str(tmp_path/'solo')]) == 0
    solo = read_json(tmp_path/'solo'/'eval.json')
    assert solo['base'] is None and solo['metrics']['f1']['base'] is None and solo['forgetting']['base_ppl'] is None
    # no --data and no data_dir in summary.json: a clear error
    assert main(['eval', str(run)]) == 2 and 'Which data?' in capsys.readouterr().err

def test_cli_errors(tmp_path, tiny, capsys):
    from tunebook.cli import main
    data = _data_dir(tmp_path/'data', 'chat', Dataset.from_dict({'messages': CHAT}))
    half = tmp_path/'half'; half.mkdir(); write_json(half/'summary.json', dict(base_model='x'))
    assert main(['eval', str(half), '--data', str(data)]) == 2
    assert 'without an adapter/ or model/' in capsys.readouterr().err
    assert main(['eval', str(half), '--data', str(data), '--split', 'dev']) == 2
    assert "has no 'dev' split" in capsys.readouterr().err
    cls = _data_dir(tmp_path/'cls', 'chat', Dataset.from_dict({'text': ['a'], 'label': [0]}))
    assert main(['eval', str(half), '--data', str(cls)]) == 2
    assert "needs column(s) ['messages']" in capsys.readouterr().err
    assert main(['eval', 'smollm2', '--data', str(data)]) == 2
    assert '--out DIR' in capsys.readouterr().err

def test_compare_text_and_classification_with_model_pairs(tmp_path, tiny):
    m, tok = tiny
    texts = ['The water cycle moves water between the oceans and the air.', 'Bread is made by mixing flour, water, salt and yeast.'] * 3
    data = _data_dir(tmp_path/'text', 'text', Dataset.from_dict({'text': texts}))
    rep = tev.compare((m, tok), tiny_causal_lm(seed=3), data, max_new_tokens=3, out=tmp_path/'o1', n_boot=100)
    assert rep['task'] == 'text' and rep['n'] == 6 and rep['examples'][0]['reference'].endswith('air.')
    assert rep['forgetting']['base_ppl'] > 0 and isinstance(rep['forgetting']['flagged'], bool)
    feats = Features({'text': Value('string'), 'label': ClassLabel(names=['neg', 'pos'])})
    rows = Dataset.from_dict({'text': ['bad', 'good', 'awful', 'great', 'meh', 'fine'], 'label': [0, 1, 0, 1, 0, 1]}, features=feats)
    cdata = _data_dir(tmp_path/'cls', 'classification', rows)
    enc = tiny_encoder(num_labels=2)
    rep = tev.compare(tiny_encoder(num_labels=2, seed=5), enc, cdata, out=tmp_path/'o2', n_boot=100)
    pred = tev.predict_labels(enc[0], enc[1], rows['text'])
    assert rep['metrics']['accuracy']['tuned'] == pytest.approx(np.mean(pred == np.array(rows['label'])))
    assert list(rep['metrics']) == ['accuracy', 'macro_f1'] and set(rep['per_class']['tuned']) == {'neg', 'pos'}
    assert read_json(tmp_path/'o2'/'eval.json')['forgetting']['base_ppl'] is None
