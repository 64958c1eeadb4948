"""Golden tests for tunebook's metric modules: numbers (signs, decimal points, operators), five scripts, and agreement with
the reference implementations (`rouge_score`, `sacrebleu`) where those are defined."""
import pytest
from tunebook.metrics import load_metric, normalize_answer, rouge_tokenize, token_f1

SCRIPTS = {'Chinese': '猫坐在垫子上。', 'Russian': 'Кошка сидела на коврике.', 'Hindi': 'बिल्ली चटाई पर बैठी थी।',
           'Arabic': 'جلست القطة على الحصيرة.', 'English': 'The cat sat on the mat.',
           'Japanese': '猫はマットの上に座った', 'Thai': 'แมวนั่งบนเสื่อ', 'Persian (ZWNJ)': 'می‌خواهم بروم'}
DIFFERENT = [('35', '3.5'), ('32', '-32'), ('2*2', '22'), ('2+2', '2-2'), ('2^2', '22'), ('1/2', '12'), ('-3', '3'),
             ('10%', '10'), ('3.14', '314'), ('-0.5', '0.5'), ('x = 7', 'x = -7'), ('1e-3', '1e3'), ('3 * 4', '3 4')]
SAME = [('The answer is 42.', 'the answer is 42'), ('(3.5)', '3.5'), ('−5', '-5'), ('3.5,', '3.5'), ('"-32"', '-32'),
        ('Paris!', 'paris'), ('  An  apple ', 'apple'), ('Москва.', 'москва'), ('北京。', '北京')]

@pytest.mark.parametrize('pred,ref', DIFFERENT)
def test_numbers_that_differ_score_zero(pred, ref):
    assert load_metric('exact_match').compute(predictions=[pred], references=[ref])['exact_match'] == 0.0
    assert load_metric('exact_match').compute(predictions=[ref], references=[pred])['exact_match'] == 0.0
    assert normalize_answer(pred) != normalize_answer(ref)

@pytest.mark.parametrize('pred,ref', SAME)
def test_typography_only_is_folded(pred, ref):
    assert load_metric('exact_match').compute(predictions=[pred], references=[ref])['exact_match'] == 1.0
    assert load_metric('f1').compute(predictions=[pred], references=[ref])['f1'] == 1.0

def test_case_18_direct_call():
    r = load_metric('exact_match').compute(predictions=['35', '-3', '2*2'], references=['3.5', '3', '22'], use_aggregator=False)
    assert r['exact_match'] == [0.0, 0.0, 0.0]
    assert load_metric('f1').compute(predictions=['35', '-3', '2*2'], references=['3.5', '3', '22'], use_aggregator=False)['f1'] == [0, 0, 0]

@pytest.mark.parametrize('lang', list(SCRIPTS))
def test_identical_scores_the_maximum_in_every_script(lang):
    s = SCRIPTS[lang]
    kw = dict(predictions=[s], references=[s])
    assert load_metric('exact_match').compute(**kw)['exact_match'] == 1.0
    assert load_metric('f1').compute(**kw)['f1'] == 1.0
    assert load_metric('rouge').compute(**kw) == dict(rouge1=1.0, rouge2=1.0, rougeL=1.0)
    assert load_metric('bleu').compute(**kw)['score'] == pytest.approx(100.0)

@pytest.mark.parametrize('lang', ['Chinese', 'Russian', 'Hindi', 'Arabic', 'English'])
def test_partial_credit_in_every_script(lang):
    s = SCRIPTS[lang]
    cut = s[:len(s)//2] if lang == 'Chinese' else ' '.join(s.split()[:2])
    f1, r = token_f1(cut, s), load_metric('rouge').compute(predictions=[cut], references=[s])['rouge1']
    assert 0 < f1 < 1 and 0 < r < 1, (f1, r)

def test_rouge_matches_rouge_score_on_ascii():
    rouge_score = pytest.importorskip('rouge_score.rouge_scorer')
    pairs = [('the cat sat on the mat', 'a cat was sitting on a mat'), ('Paris, France!', 'paris france'),
             ('10 miles is 16.09 kilometres', '10 miles is 16.09 kilometres (1 mile = 1.609344 kilometres).'),
             ('the the the the', 'the cat'), ('running runners ran quickly', 'the runner runs quick')]
    for stem in (False, True):
        sc = rouge_score.RougeScorer(['rouge1', 'rouge2', 'rougeL'], use_stemmer=stem)
        for tok in ('unicode', 'rouge_score'):
            got = load_metric('rouge').compute(predictions=[p for p, _ in pairs], references=[r for _, r in pairs],
                                               use_aggregator=False, use_stemmer=stem, tokenizer=tok)
            for i, (p, r) in enumerate(pairs):
                want = sc.score(r, p)
                for k in ('rouge1', 'rouge2', 'rougeL'): assert got[k][i] == pytest.approx(want[k].fmeasure, abs=1e-12)

def test_rouge_score_tokenizer_is_reproduced_everywhere():
    rouge_score = pytest.importorskip('rouge_score.rouge_scorer')
    sc = rouge_score.RougeScorer(['rougeL'])
    for s in SCRIPTS.values():
        got = load_metric('rouge').compute(predictions=[s], references=[s], tokenizer='rouge_score')['rougeL']
        assert got == pytest.approx(sc.score(s, s)['rougeL'].fmeasure)
    assert rouge_tokenize('Кошка сидела', tokenizer='rouge_score') == []  # why it is not the default

def test_bleu_matches_sacrebleu_with_its_settings():
    import sacrebleu
    hyps = ['the cat sat on the mat today', 'a quick brown fox jumps over it', 'nothing to see here at all']
    refs = ['the cat sat on a mat today', 'the quick brown fox jumped over it', 'nothing to see here']
    assert load_metric('bleu').compute(predictions=hyps, references=refs)['score'] == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score)
    assert load_metric('bleu').compute(predictions=['猫坐在垫子上'], references=['猫坐在垫子上'])['tokenize'] == 'zh'
