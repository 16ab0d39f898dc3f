"""Copy a model folder with its weights cast to another dtype (e.g. bf16 to halve its size).

    python -m model.export runs/shakespeare model/default --dtype bfloat16
"""

from __future__ import annotations

import argparse
import json

from .checkpoint import load_checkpoint, save_checkpoint
from .device import DTYPES


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m model.export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--dtype", default="bfloat16", choices=sorted(DTYPES))
    args = p.parse_args(argv)
    loaded = load_checkpoint(args.src)
    config = json.loads((loaded.path / "config.json").read_text())
    extra = {k: config[k] for k in ("val_loss", "step") if k in config}
    save_checkpoint(loaded.model, loaded.tokenizer, args.dst, dtype=DTYPES[args.dtype], extra=extra)


if __name__ == "__main__":
    main()
