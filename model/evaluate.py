"""Held-out loss of a model folder on a text file, in nats per token and per character.

    python -m model.evaluate --model model/default --data ../shared/data/hamlet.txt
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from .checkpoint import load_checkpoint
from .train import evaluate_text


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m model.evaluate", description=__doc__)
    p.add_argument("--model", help="model folder (default: the built-in model)")
    p.add_argument("--data", required=True)
    p.add_argument("--tail", type=float, default=1.0, help="score only the last fraction of the text")
    p.add_argument("--threads", type=int)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    loaded = load_checkpoint(args.model)
    text = Path(args.data).read_text(encoding="utf-8")
    text = text[int(len(text) * (1 - args.tail)):]
    result = evaluate_text(loaded.model, loaded.tokenizer, text, torch.device("cpu"))
    sys.stdout.write(json.dumps({"model": str(loaded.path), "data": args.data, **result}, indent=2) + "\n")


if __name__ == "__main__":
    main()
