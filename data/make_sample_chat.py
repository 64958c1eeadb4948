"""Rebuild tunebook/samples/sample_chat.jsonl, the course's sample chat dataset (400 conversations the project
generates itself from templates with a fixed seed: JSON extraction, one-word sentiment, unit conversions).
The file ships inside the package (`tunebook.core.sample_path('sample_chat.jsonl')`); the generator lives in the
package too (`tunebook.quickstart.sample_chat`, lesson nbs/91_quickstart.ipynb), and a test checks that the two agree.
Usage: python data/make_sample_chat.py"""
from pathlib import Path
from tunebook.quickstart import write_sample_chat

if __name__ == "__main__":
    print("wrote", write_sample_chat(Path(__file__).resolve().parents[1]/"tunebook"/"samples"/"sample_chat.jsonl"))
