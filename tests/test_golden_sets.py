"""The cleaning stage's golden sets (shipped in tunebook/samples, also read by the cleaning lesson): dedup precision on
labelled true/false duplicate pairs, PII recall on real PII and false positives on look-alikes, and the multilingual
round-trip. The lesson shows the same figures; these tests keep them from regressing."""
import json, unicodedata
from pathlib import Path
import pytest
from tunebook.core import sample_path
from tunebook.clean import (clean_text, scrub_pii, exact_keys, near_duplicates, dedup_text, dedup_turns, prep, load_prepared)

def load(name): return [json.loads(l) for l in open(sample_path(name), encoding='utf-8')]
PAIRS, LOOK, MULTI = load('dedup_pairs.jsonl'), load('pii_lookalikes.jsonl'), load('multilingual.jsonl')
GOLD = [json.loads(l) for l in open(Path(__file__).parent/'fixtures'/'data'/'pii_golden.jsonl')]

def row(x): return {'messages': [{'role': 'user', 'content': clean_text(x['prompt'])[0]}, {'role': 'assistant', 'content': clean_text(x['completion'])[0]}]}

def judged(mode, threshold=0.85, by_turn=True):
    "For each labelled pair: does dedup in `mode` call it a duplicate?"
    out = []
    for p in PAIRS:
        a, b = row(p['a']), row(p['b'])
        ta, tb = dedup_text(a), dedup_text(b)
        k = exact_keys([ta, tb])
        dup = bool(k[0] == k[1]) or (mode == 'near' and 1 in near_duplicates([ta, tb], threshold, turns=[dedup_turns(a), dedup_turns(b)] if by_turn else None))
        out.append(dup)
    return out

def precision_recall(pred):
    truth = [p['duplicate'] for p in PAIRS]
    tp = sum(a and b for a, b in zip(pred, truth)); fp = sum(a and not b for a, b in zip(pred, truth))
    return tp / max(1, tp + fp), tp / max(1, sum(truth))

def test_golden_sets_are_big_enough_and_balanced():
    assert len(PAIRS) >= 20 and 8 <= sum(p['duplicate'] for p in PAIRS) <= len(PAIRS) - 8
    assert len(LOOK) >= 30 and {'version', 'date', 'time', 'isbn', 'order', 'build', 'coordinates', 'amount'} <= {l['kind'] for l in LOOK}
    assert {'Persian', 'Arabic', 'Hindi', 'Chinese', 'Emoji', 'Combining'} <= {m['lang'] for m in MULTI}

@pytest.mark.parametrize('mode', ['exact', 'near'])
def test_dedup_precision_is_perfect_on_the_labelled_pairs(mode):
    p, r = precision_recall(judged(mode))
    assert p == 1.0
    assert r >= (0.4 if mode == 'exact' else 0.8)  # near finds edits, footers and punctuation changes too

def test_whole_example_check_is_what_keeps_shared_context_pairs():
    "Without the turn-by-turn check (whole-text Jaccard only), a low threshold calls shared-context pairs duplicates."
    p_text, _ = precision_recall(judged('near', 0.6, by_turn=False))
    p_turn, _ = precision_recall(judged('near', 0.6, by_turn=True))
    assert p_text < 1.0 == p_turn

def test_pii_full_recall_on_real_pii():
    for g in GOLD: assert dict(scrub_pii(g['text'])[1]) == g['expect'], g

def test_pii_no_false_positives_on_lookalikes():
    fp = [l['text'] for l in LOOK if scrub_pii(l['text'])[1]]
    assert fp == []  # false-positive rate 0 / len(LOOK)

def test_multilingual_round_trip_through_cleaning_and_prep(tmp_path):
    for m in MULTI:
        out = clean_text(m['text'])[0]
        assert out == unicodedata.normalize('NFC', m['text']), m['lang']   # unchanged (up to the canonical NFC form)
        if unicodedata.is_normalized('NFC', m['text']): assert out == m['text']
    src = tmp_path/'multi.jsonl'
    src.write_text(''.join(json.dumps({'prompt': f"Repeat: {i}", 'completion': m['text']}, ensure_ascii=False) + '\n' for i, m in enumerate(MULTI)), encoding='utf-8')
    prep(src, tmp_path/'out', val=0, test=0, dedup='near')
    dd, _ = load_prepared(tmp_path/'out')
    got = {r['messages'][0]['content']: r['messages'][1]['content'] for r in dd['train']}
    for i, m in enumerate(MULTI): assert got[f"Repeat: {i}"] == unicodedata.normalize('NFC', m['text']), m['lang']
