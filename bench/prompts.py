"""Benchmark inputs: prompts and sentences of mixed lengths drawn from a corpus with a seed.

Lengths are counted in words, not tokens, so the very same texts go to every server and
baseline whatever their tokenizer; each side tokenizes (and truncates) them itself.
"""

from __future__ import annotations

import random
from pathlib import Path

from . import REPO_ROOT

DEFAULT_CORPUS = REPO_ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"

# Used when the shared corpus is missing (a fresh GPU machine, CI): varied enough for a BPE.
BUILTIN_TEXT = """First Citizen:
Before we proceed any further, hear me speak.
All:
Speak, speak.
First Citizen:
You are all resolved rather to die than to famish?
All:
Resolved. resolved.
First Citizen:
First, you know Caius Marcius is chief enemy to the people.
We are accounted poor citizens, the patricians good. What authority surfeits on would relieve us:
if they would yield us but the superfluity, while it were wholesome, we might guess they relieved us
humanely; but they think we are too dear: the leanness that afflicts us, the object of our misery,
is as an inventory to particularise their abundance; our sufferance is a gain to them.
MENENIUS:
Either you must confess yourselves wondrous malicious, or be accused of folly.
I shall tell you a pretty tale: it may be you have heard it; but, since it serves my purpose,
I will venture to stale 't a little more.
"""


def load_corpus(path: str | Path | None = None) -> str:
    """The corpus text: `path`, else the shared Tiny Shakespeare, else a built-in passage."""
    if path is not None:
        return Path(path).read_text(encoding="utf-8")
    if DEFAULT_CORPUS.is_file():
        return DEFAULT_CORPUS.read_text(encoding="utf-8")
    return BUILTIN_TEXT * 50


def draw_prompts(corpus: str, count: int, seed: int, min_words: int = 8, max_words: int = 96) -> list[str]:
    """`count` passages, each a run of consecutive words of a length uniform in [min_words, max_words]."""
    words = corpus.split()
    if len(words) < max_words + 1:
        words = words * (max_words // max(1, len(words)) + 2)
    rng = random.Random(seed)
    prompts = []
    for _ in range(count):
        n = rng.randint(min_words, max_words)
        start = rng.randrange(0, len(words) - n)
        prompts.append(" ".join(words[start:start + n]))
    return prompts


def draw_sentences(corpus: str, count: int, seed: int, min_words: int = 3, max_words: int = 40) -> list[str]:
    """Sentences for /embed: shorter passages (a line to a few lines of verse)."""
    return draw_prompts(corpus, count, seed + 1, min_words, max_words)
