"""Writes data/sample_chat.jsonl: the course's small chat dataset (OpenAI chat format, one JSON object a line).

Every example is written by this script from templates and a fixed seed, so the data is ours to ship and
the same on every machine. Three tasks a small instruct model does poorly out of the box but learns fast:
  * extract: turn a sentence about a person into a one-line JSON record (name, city, year, role);
  * sentiment: label a short product review with one word, positive or negative;
  * convert: unit conversions answered in one fixed sentence with the factor shown.
Run `python data/make_sample_chat.py` to rebuild it; the output is committed.
"""
import json, random
from pathlib import Path

R = random.Random(20261121)
NAMES = "Amara Bjorn Chen Dalia Emeka Farah Goran Hana Ines Jonas Kiri Lena Mateo Nadia Omar Priya Quinn Rosa Sami Tomas Uma Viktor Wen Yara Zofia".split()
CITIES = "Lisbon Nairobi Osaka Lima Oslo Hanoi Quito Accra Porto Seville Krakow Tbilisi Bergen Cusco Daegu Izmir Leeds Lyon Mumbai Tartu".split()
ROLES = ["nurse", "welder", "pilot", "teacher", "baker", "chemist", "carpenter", "librarian", "architect", "farmer"]
VERBS = ["moved to {city} in {year} to work as a {role}", "has worked as a {role} in {city} since {year}",
         "started a new job as a {role} in {city} in {year}", "became a {role} after arriving in {city} in {year}"]
POS = ["The {item} arrived early and works perfectly.", "I love this {item}; it is sturdy and easy to use.",
       "Great {item}, worth every penny.", "The {item} exceeded my expectations.", "Excellent {item}, I would buy it again."]
NEG = ["The {item} broke after two days.", "This {item} is flimsy and overpriced.", "Terrible {item}, it stopped working at once.",
       "The {item} arrived damaged and support never answered.", "I regret buying this {item}; it is useless."]
ITEMS = ["kettle", "backpack", "lamp", "keyboard", "blender", "tent", "umbrella", "headset", "chair", "bike lock", "phone case", "thermos"]
UNITS = [("kilometres", "miles", 0.621371), ("miles", "kilometres", 1.609344), ("kilograms", "pounds", 2.204623),
         ("pounds", "kilograms", 0.453592), ("litres", "US gallons", 0.264172), ("inches", "centimetres", 2.54)]
SYSTEM = "You are a precise assistant. Answer in exactly the format asked for, with no extra words."

def extract():
    name, city, role, year = R.choice(NAMES), R.choice(CITIES), R.choice(ROLES), R.randint(1990, 2025)
    sent = f"{name} " + R.choice(VERBS).format(city=city, year=year, role=role) + "."
    user = f"Extract the person's name, city, year and job as JSON.\nSentence: {sent}"
    return user, json.dumps({"name": name, "city": city, "year": year, "role": role})

def sentiment():
    label = R.choice(["positive", "negative"])
    review = R.choice(POS if label == "positive" else NEG).format(item=R.choice(ITEMS))
    return f"Is this review positive or negative? Answer with one word.\nReview: {review}", label

def convert():
    a, b, f = R.choice(UNITS); x = R.choice([2, 3, 5, 8, 10, 12, 15, 20, 25, 40, 50, 100])
    return f"Convert {x} {a} to {b}.", f"{x} {a} is {x*f:.2f} {b} (1 {a[:-1] if a.endswith('s') else a} = {f} {b})."

def main(n=400, out=Path(__file__).parent/"sample_chat.jsonl"):
    rows, seen = [], set()
    while len(rows) < n:
        task = R.choices([extract, sentiment, convert], weights=[5, 3, 2])[0]
        user, answer = task()
        if user in seen: continue
        seen.add(user)
        msgs = ([{"role": "system", "content": SYSTEM}] if R.random() < 0.5 else []) + \
               [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
        rows.append({"messages": msgs})
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"wrote {len(rows)} examples to {out}")

if __name__ == "__main__": main()
