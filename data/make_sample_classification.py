"""Writes the classification lesson's sample data: short product reviews labelled `negative`, `neutral` or `positive`.

Every review is written by this script from templates and a fixed seed, so the data is ours to ship and the same
on every machine. The templates are chosen so that the label is *not* given by single words: many reviews negate
an opinion ("not flimsy at all"), or turn on a contrast ("it looked great in the photos, but it is flimsy"),
and the neutral ones mix praise and complaint or state facts. A frozen encoder with a linear head gets some of
this right; fine-tuning the encoder (LoRA) is needed for the rest, which is what the lesson shows.

Files (columns `text,label`, one review a row, CSV with a header):
  * tunebook/samples/sample_reviews.csv            480 reviews, balanced: 160 of each label;
  * tunebook/samples/sample_reviews_imbalanced.csv 640 reviews, deliberately imbalanced: 480 positive, 120 negative,
                                                   40 neutral (75% / 19% / 6%), for the lesson on class weights and oversampling.
The two files share no review text. Run `python data/make_sample_classification.py` to rebuild them; the output is committed
and ships inside the package (`tunebook.core.sample_path('sample_reviews.csv')`).
"""
import csv, random
from pathlib import Path

R = random.Random(20261121)
LABELS = ["negative", "neutral", "positive"]
ITEMS = ["kettle", "backpack", "lamp", "keyboard", "blender", "tent", "umbrella", "headset", "chair", "bike lock",
         "phone case", "thermos", "toaster", "desk", "drill", "jacket", "mattress", "router", "camera bag", "frying pan"]
POS = ["sturdy", "reliable", "excellent", "comfortable", "well made", "great", "solid", "easy to use", "a joy to use", "worth the money"]
NEG = ["flimsy", "unreliable", "useless", "uncomfortable", "badly made", "awful", "fragile", "hard to use", "a waste of money", "overpriced"]
FACTS = ["The {item} arrived on {day} in a {color} box.", "The {item} comes in {color} and weighs about {n}00 grams.",
         "I bought the {item} for my {who}; we have not tried it yet.", "The {item} was delivered {n} days after I ordered it.",
         "This is the {color} version of the {item}, bought on {day}.", "My {who} picked the {item} because it was on sale."]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
COLORS = ["red", "grey", "blue", "black", "white", "green"]
WHO = ["sister", "brother", "father", "mother", "neighbour", "son", "daughter", "partner"]

def positive(item, p, n):
    if R.random() < 0.5: return R.choice([f"The {item} is {p}.", f"I love this {item}; it is {p}.", f"Great {item}, I would buy it again.",
                                          f"The {item} works perfectly and is {p}."])
    return R.choice([f"The {item} is not {n} at all.", f"I expected the {item} to be {n}, but it is {p}.",
                     f"It looked {n} in the photos, but the {item} is actually {p}.", f"Honestly, this {item} is anything but {n}.",
                     f"My old one was {n}; this {item} is {p}.", f"Nobody would call this {item} {n}."])

def negative(item, p, n):
    if R.random() < 0.5: return R.choice([f"The {item} is {n}.", f"I regret buying this {item}; it is {n}.", f"Terrible {item}, it stopped working at once.",
                                          f"The {item} broke after two days and is {n}."])
    return R.choice([f"The {item} is not {p} at all.", f"I expected the {item} to be {p}, but it is {n}.",
                     f"It looked {p} in the photos, but the {item} is actually {n}.", f"Honestly, this {item} is anything but {p}.",
                     f"My old one was {p}; this {item} is {n}.", f"Nobody would call this {item} {p}."])

def neutral(item, p, n):
    if R.random() < 0.5:
        return R.choice([f"The {item} is {p} in some ways and {n} in others.", f"Parts of the {item} are {p}, other parts are {n}.",
                         f"The {item} is neither {p} nor {n}, just average."])
    return R.choice(FACTS).format(item=item, day=R.choice(DAYS), color=R.choice(COLORS), n=R.randint(2, 9), who=R.choice(WHO))

MAKE = dict(negative=negative, neutral=neutral, positive=positive)

def reviews(counts:dict, seen:set)->list:
    "`counts[label]` new reviews per label, none already in `seen`, shuffled."
    rows = []
    for label, k in counts.items():
        while k:
            text = MAKE[label](R.choice(ITEMS), R.choice(POS), R.choice(NEG))
            text = text[0].upper() + text[1:]
            if text in seen: continue
            seen.add(text); rows.append(dict(text=text, label=label)); k -= 1
    R.shuffle(rows)
    return rows

def write(path:Path, rows:list):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["text", "label"]); w.writeheader(); w.writerows(rows)
    print(f"wrote {len(rows)} rows to {path}")

if __name__ == "__main__":
    here, seen = Path(__file__).resolve().parents[1]/"tunebook"/"samples", set()
    write(here/"sample_reviews.csv", reviews(dict(negative=160, neutral=160, positive=160), seen))
    write(here/"sample_reviews_imbalanced.csv", reviews(dict(negative=120, neutral=40, positive=480), seen))
