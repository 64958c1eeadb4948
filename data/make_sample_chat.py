"""Rebuild data/sample_chat.jsonl, the course's sample chat dataset (400 conversations the project generates
itself from templates with a fixed seed: JSON extraction, one-word sentiment, unit conversions).
The generator lives in the package (`tunebook.quickstart.sample_chat`, lesson nbs/91_quickstart.ipynb) so an
installed tunebook can rebuild the same rows; the lesson tests that this file equals its output.
Usage: python data/make_sample_chat.py"""
from pathlib import Path
from tunebook.quickstart import write_sample_chat

if __name__ == "__main__": print("wrote", write_sample_chat(Path(__file__).parent/"sample_chat.jsonl"))
