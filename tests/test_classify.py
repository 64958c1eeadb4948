"End-to-end and bad-input tests of the classification stage, on a tiny random BERT with the real MiniLM tokenizer (~1 min on a 2-core CPU)."
import os, json, csv
from pathlib import Path
import numpy as np, pytest, torch
from tunebook.core import TunebookError, RunDir, read_json, write_json
from tunebook.models import tiny_encoder
from tunebook.clean import prep, class_balance
from tunebook.models import MINILM
from tunebook.classify import (prepared_classification, load_classifier, predict, train_classifier,
                               load_classifier_run, evaluate_classifier, classification_metrics, class_weights, oversample_classes)

def prepare(src, out): prep(src, out, format='classification', tokenizer=MINILM); return out

DATA = Path(__file__).parent.parent/'tunebook'/'samples'
slow = pytest.mark.skipif(not os.environ.get('TUNEBOOK_SLOW'), reason='slow: set TUNEBOOK_SLOW=1')

@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    "A tiny random BERT classifier saved as a model folder, as a user's own encoder would be."
    p = tmp_path_factory.mktemp('tiny')/'encoder'
    model, tok = tiny_encoder(num_labels=2)
    model.save_pretrained(p); tok.save_pretrained(p)
    return p

@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
    "The sample reviews, cut to 120 rows, prepared into a data folder."
    root = tmp_path_factory.mktemp('data')
    rows = list(csv.DictReader(open(DATA/'sample_reviews.csv', encoding='utf-8')))[:120]
    with open(root/'reviews.csv', 'w', newline='', encoding='utf-8') as f:
        w = csv.DictWriter(f, fieldnames=['text', 'label']); w.writeheader(); w.writerows(rows)
    return prepare(root/'reviews.csv', root/'prepared')

def test_prepared_folder(data_dir):
    dd, report, labels = prepared_classification(data_dir)
    assert labels == ['negative', 'neutral', 'positive'] and report['task'] == 'classification'
    assert sum(len(dd[s]) for s in dd) == 120
    bal = class_balance(dd)
    assert set(bal) == {'train', 'validation', 'test'} and all(set(v) == set(labels) for v in bal.values())
    assert sum(sum(v.values()) for v in bal.values()) == 120
    assert report['class_balance'] == bal                          # prep's report carries the same counts

def test_not_a_classification_folder(tmp_path, data_dir):
    with pytest.raises(TunebookError, match='not a prepared data folder'): prepared_classification(tmp_path)
    import shutil; other = tmp_path/'chat'; shutil.copytree(data_dir, other)  # a chat report on the same rows
    rep = read_json(other/'report.json'); rep['task'] = 'chat'; write_json(other/'report.json', rep)
    with pytest.raises(TunebookError, match="needs 'classification'"): prepared_classification(other)

def test_metrics_match_hand_computed():
    y, p = [0, 1, 1, 2, 2, 2], [0, 1, 2, 2, 2, 0]
    m = classification_metrics(y, p, ['a', 'b', 'c'])
    assert m['accuracy'] == pytest.approx(4/6)
    assert m['precision_c'] == pytest.approx(2/3) and m['recall_c'] == pytest.approx(2/3) and m['recall_b'] == pytest.approx(0.5)
    assert m['f1_a'] == pytest.approx(2*0.5*1/1.5)
    assert m['f1_macro'] == pytest.approx(np.mean([m['f1_a'], m['f1_b'], m['f1_c']]))

def test_weights_and_oversampling(data_dir):
    dd, _, _ = prepared_classification(data_dir)
    skewed = dd['train'].select([i for i, l in enumerate(dd['train']['label']) if l != 1 or i % 4 == 0])
    w = class_weights(skewed['label'], 3); counts = np.bincount(skewed['label'])
    assert torch.allclose(w*torch.tensor(counts, dtype=torch.float32), torch.full((3,), len(skewed)/3))
    over = oversample_classes(skewed, seed=1)
    assert np.bincount(over['label']).tolist() == [counts.max()]*3 and set(over['text']) == set(skewed['text'])

def test_load_classifier_replaces_a_head_of_another_size(tiny):
    model, _ = load_classifier(tiny, ['a', 'b', 'c'], device='cpu')   # the tiny folder has a 2-label head
    assert model.classifier.out_features == 3 and model.config.id2label == {0: 'a', 1: 'b', 2: 'c'}

@pytest.mark.parametrize('method,kw', [('lora', {}), ('full', {}), ('lora', dict(class_weight=True, oversample=True))])
def test_train_predict_evaluate_end_to_end(tmp_path, tiny, data_dir, method, kw):
    s = train_classifier(data_dir, tmp_path/'run', model=tiny, method=method, epochs=1, max_steps=4, batch_size=8, device='cpu', **kw)
    run = RunDir(tmp_path/'run')
    assert s == read_json(run.summary)
    assert s['steps'] == 4 and s['method'] == method and s['task'] == 'classification' and s['base_model'] == str(tiny)
    assert all(s['config'][k] == v for k, v in kw.items())
    folder = run.adapter if method == 'lora' else run.model
    assert (folder/'config.json').exists() and not (run.adapter if method == 'full' else run.model).exists()
    if method == 'lora': assert read_json(run.adapter/'adapter_config.json')['base_model_name_or_path'] == str(tiny)
    lines = [json.loads(l) for l in run.metrics.read_text().splitlines()]
    assert any('loss' in l for l in lines) and run.loss_plot.exists() and any(run.logs.iterdir())
    texts = ['The kettle is sturdy.', 'The kettle is flimsy.', 'Fine.']
    preds = predict(run, texts, batch_size=2)
    assert len(preds) == 3 and all(p['label'] in ('negative', 'neutral', 'positive') for p in preds)
    assert all(abs(sum(p['probs'].values()) - 1) < 1e-3 for p in preds)
    model, tok = load_classifier_run(run.root, device='cpu')
    assert predict((model, tok), texts) == preds                   # a reload gives the same answers
    rep = evaluate_classifier(run, n_boot=50, device='cpu')
    disk = read_json(run.eval_json)
    assert disk['task'] == 'classification' and disk['n'] == len(prepared_classification(data_dir)[0]['test'])
    for k in ('accuracy', 'f1_macro', 'precision_macro', 'recall_macro', 'f1_neutral'):
        m = disk['metrics'][k]
        assert set(m) >= {'base', 'tuned', 'diff', 'base_ci95', 'tuned_ci95', 'diff_ci95', 'higher_is_better'}
        assert m['diff'] == pytest.approx(m['tuned'] - m['base'], abs=1e-5)
    assert run.eval_md.exists() and (run.root/'eval.png').exists() and rep['examples']

def test_refuses_to_overwrite_and_unknown_method(tmp_path, tiny, data_dir):
    (tmp_path/'run').mkdir(); (tmp_path/'run'/'keep.txt').write_text('mine')
    with pytest.raises(TunebookError, match='already holds a run'): train_classifier(data_dir, tmp_path/'run', model=tiny, max_steps=1)
    assert (tmp_path/'run'/'keep.txt').read_text() == 'mine'
    with pytest.raises(TunebookError, match='not supported'): train_classifier(data_dir, tmp_path/'new', model=tiny, method='qlora')
    with pytest.raises(TunebookError, match='not supported'): train_classifier(data_dir, tmp_path/'new', model=tiny, method='lorax')

def test_label_mismatch_is_reported(tmp_path, tiny, data_dir):
    train_classifier(data_dir, tmp_path/'run', model=tiny, max_steps=1, batch_size=4, device='cpu')
    other = tmp_path/'other.csv'
    other.write_text('text,label\n' + '\n'.join(f'review number {i} says {"ab"[i % 2]} thing {i*7}' + f',{"ab"[i % 2]}' for i in range(30)) + '\n')
    with pytest.raises(TunebookError, match='trained on labels'):
        evaluate_classifier(tmp_path/'run', prepare(other, tmp_path/'o'), n_boot=10)

def test_load_run_errors(tmp_path):
    with pytest.raises(TunebookError, match='neither an adapter nor a model'): load_classifier_run(tmp_path)

@slow
def test_minilm_lora_beats_the_linear_probe(tmp_path):
    "The lesson's claim, on the real MiniLM: LoRA is clearly better than the probe on macro-F1 (~1-2 min)."
    d = prepare(DATA/'sample_reviews.csv', tmp_path/'data')
    train_classifier(d, tmp_path/'run', epochs=5)
    m = evaluate_classifier(tmp_path/'run')['metrics']['f1_macro']
    assert m['diff_ci95'][0] > 0, m

def test_tunebook_train_delegates_here(tmp_path, tiny, data_dir):
    "The training stage's settings reach `train_classifier` (what `tunebook train` routes here); `train.train` itself names this stage."
    from tunebook.train import train
    from tunebook.classify import train_from_train_args
    with pytest.raises(TunebookError, match='train_classifier'): train(data_dir, tmp_path/'other', model=str(tiny), max_steps=2)
    s = train_from_train_args(data_dir, tmp_path/'run', model=str(tiny), max_steps=2, batch_size=4)
    assert s['task'] == 'classification' and s['steps'] == 2 and (tmp_path/'run'/'adapter'/'adapter_config.json').exists()

def test_cli_train_classification(tmp_path, tiny, data_dir, capsys):
    from tunebook.cli import main
    rc = main(['train', str(data_dir), '--out', str(tmp_path/'run'), '--model', str(tiny), '--max-steps', '2', '--task', 'classification'])
    assert rc == 0, capsys.readouterr().err
    assert read_json(tmp_path/'run'/'summary.json')['task'] == 'classification'
    assert predict(tmp_path/'run', ['The kettle is sturdy.'])[0]['label'] in ('negative', 'neutral', 'positive')

def test_cli_eval_routes_classifier_runs(tmp_path, tiny, data_dir, capsys):
    "`tunebook eval RUN` on a classifier run scores it against the linear probe, into the run folder."
    from tunebook.cli import main
    assert main(['train', str(data_dir), '--out', str(tmp_path/'run'), '--model', str(tiny), '--max-steps', '2']) == 0
    capsys.readouterr()
    assert main(['eval', str(tmp_path/'run'), '--data', str(data_dir), '--limit', '3']) == 0
    out = capsys.readouterr().out
    rep = read_json(tmp_path/'run'/'eval.json')
    assert rep['base_kind'].startswith('linear probe') and rep['n'] == len(prepared_classification(data_dir)[0]['test'])
    assert 'accuracy' in out and '--limit is ignored' in out and (tmp_path/'run'/'eval.md').exists()
    assert main(['eval', str(tmp_path/'run'), '--data', str(data_dir), '--out', str(tmp_path/'elsewhere')]) == 2
    assert 'leave out --out' in capsys.readouterr().err
