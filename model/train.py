"""Train a byte-level BPE tokenizer and a decoder on a text file.

    python -m model.train --data ../shared/data/tinyshakespeare.txt --out runs/shakespeare

Train/validation split (the last --val-fraction of the text), AdamW with linear warmup and
cosine decay, periodic validation, checkpoints in the folder format (the best model by
validation loss in --out, the state to resume from in --out/last), and --resume.
"""

from __future__ import annotations

import argparse
import logging
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from torch.nn import functional as F
from tqdm import tqdm

from .checkpoint import load_checkpoint, save_checkpoint
from .config import PRESETS
from .device import resolve_device
from .tokenizer import Tokenizer, train_bpe
from .transformer import Transformer

logger = logging.getLogger(__name__)

EOS = "<|endoftext|>"


@dataclass(frozen=True)
class Schedule:
    lr: float
    min_lr: float
    warmup: int
    steps: int

    def at(self, step: int) -> float:
        """Linear warmup, then cosine decay from lr to min_lr."""
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        progress = min(1.0, (step - self.warmup) / max(1, self.steps - self.warmup))
        return self.min_lr + 0.5 * (self.lr - self.min_lr) * (1 + math.cos(math.pi * progress))


def split_text(text: str, val_fraction: float) -> tuple[str, str]:
    cut = int(len(text) * (1 - val_fraction))
    return text[:cut], text[cut:]


def get_batch(data: Tensor, batch_size: int, seq_len: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    starts = torch.randint(len(data) - seq_len - 1, (batch_size,), generator=gen)
    x = torch.stack([data[s: s + seq_len] for s in starts])
    y = torch.stack([data[s + 1: s + seq_len + 1] for s in starts])
    return x, y


def loss_on(model: Transformer, x: Tensor, y: Tensor) -> Tensor:
    logits = model.logits(model(x).hidden)
    return F.cross_entropy(logits.flatten(0, 1).float(), y.flatten())


@torch.inference_mode()
def evaluate_text(model: Transformer, tokenizer: Tokenizer, text: str,
                  device: torch.device) -> dict[str, float]:
    """Held-out loss over a whole text: nats per token and per character.

    Windows of the model's context overlap by half; each token is scored once, with at
    least half a window of context (except at the very start).
    """
    model.eval()
    ids = torch.tensor(tokenizer.encode(text, add_special_tokens=False).ids, dtype=torch.long)
    T = model.cfg.max_seq_len
    stride = T // 2
    total_nll, scored = 0.0, 0
    for start in range(0, max(1, len(ids) - 1 - stride), stride):
        stop = min(start + T, len(ids) - 1)
        x, y = ids[start:stop].unsqueeze(0).to(device), ids[start + 1: stop + 1].unsqueeze(0).to(device)
        nll = F.cross_entropy(model.logits(model(x).hidden).float()[0], y[0], reduction="none")
        first = 0 if start == 0 else T - stride  # the first half was scored by the previous window
        total_nll += float(nll[first:].sum())
        scored += int(nll[first:].numel())
    return {"nats_per_token": total_nll / scored,
            "nats_per_char": total_nll / len(text),
            "tokens": float(scored), "chars": float(len(text))}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m model.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="a UTF-8 text file")
    p.add_argument("--out", required=True, help="output folder (best checkpoint; resume state in OUT/last)")
    p.add_argument("--preset", default="shakespeare", choices=sorted(PRESETS))
    p.add_argument("--vocab-size", type=int)
    p.add_argument("--d-model", type=int)
    p.add_argument("--n-layers", type=int)
    p.add_argument("--n-heads", type=int)
    p.add_argument("--d-ff", type=int)
    p.add_argument("--seq-len", type=int)
    p.add_argument("--dropout", type=float)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--min-lr", type=float, default=1e-4)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--eval-interval", type=int, default=250)
    p.add_argument("--eval-batches", type=int, default=20)
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--device", default="auto")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=True,
                   help="bf16 autocast for the matmuls (CPU with AVX512-BF16/AMX, or CUDA)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = resolve_device(args.device)
    out = Path(args.out)
    text = Path(args.data).read_text(encoding="utf-8")
    train_text, val_text = split_text(text, args.val_fraction)

    dropout = args.dropout if args.dropout is not None else PRESETS[args.preset].dropout
    if args.resume and (out / "last").is_dir():
        loaded = load_checkpoint(out / "last", device=device)
        model, tokenizer = _with_dropout(loaded.model, dropout), loaded.tokenizer
        state = torch.load(out / "last" / "trainer_state.pt", map_location=device, weights_only=True)
    else:
        overrides = {k: v for k, v in {
            "vocab_size": args.vocab_size, "d_model": args.d_model, "n_layers": args.n_layers,
            "n_heads": args.n_heads, "d_ff": args.d_ff, "max_seq_len": args.seq_len, "dropout": args.dropout,
        }.items() if v is not None}
        cfg = PRESETS[args.preset].replace(**overrides)
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:  # the tokenizer sees only the training split
            (Path(tmp) / "train.txt").write_text(train_text, encoding="utf-8")
            backend = train_bpe([str(Path(tmp) / "train.txt")], cfg.vocab_size, [EOS])
        eos = backend.token_to_id(EOS)
        tokenizer = Tokenizer(backend, eos_token_id=eos)
        cfg = cfg.replace(vocab_size=backend.get_vocab_size(), eos_token_id=eos, bos_token_id=eos)
        model = Transformer(cfg).to(device)
        state = None
    cfg = model.cfg
    train_ids = torch.tensor(tokenizer.encode(train_text, add_special_tokens=False).ids, dtype=torch.long)
    val_ids = torch.tensor(tokenizer.encode(val_text, add_special_tokens=False).ids, dtype=torch.long)
    logger.info("model %.2fM parameters; %d train / %d val tokens (%.2f chars/token)",
                model.num_parameters() / 1e6, len(train_ids), len(val_ids), len(train_text) / len(train_ids))

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.95))
    schedule = Schedule(args.lr, args.min_lr, args.warmup, args.steps)
    gen = torch.Generator().manual_seed(args.seed)
    step, best_val = 0, float("inf")
    if state is not None:
        opt.load_state_dict(state["optimizer"])
        step, best_val = int(state["step"]), float(state["best_val"])
        gen.set_state(state["data_rng"])
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16)

    def val_loss() -> float:
        model.eval()
        eval_gen = torch.Generator().manual_seed(0)  # the same batches every time: comparable numbers
        losses = []
        with torch.inference_mode(), autocast:
            for _ in range(args.eval_batches):
                x, y = get_batch(val_ids, args.batch_size, cfg.max_seq_len, eval_gen)
                losses.append(float(loss_on(model, x.to(device), y.to(device))))
        model.train()
        return sum(losses) / len(losses)

    model.train()
    bar = tqdm(total=args.steps, initial=step, desc="train", dynamic_ncols=True, mininterval=5)
    tokens_per_step = args.batch_size * cfg.max_seq_len
    t0 = time.perf_counter()
    while step < args.steps:
        for group in opt.param_groups:
            group["lr"] = schedule.at(step)
        x, y = get_batch(train_ids, args.batch_size, cfg.max_seq_len, gen)
        with autocast:
            loss = loss_on(model, x.to(device), y.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
        opt.step()
        step += 1
        elapsed = time.perf_counter() - t0
        bar.update(1)
        tok_s = bar.n * tokens_per_step / max(elapsed, 1e-9)
        bar.set_postfix(loss=f"{loss.item():.3f}", tok_s=f"{tok_s:.0f}", refresh=False)
        if step % args.eval_interval == 0 or step == args.steps:
            v = val_loss()
            logger.info("step %d: train loss %.4f, val loss %.4f nats/token (%.4f nats/char), lr %.2e",
                        step, loss.item(), v, v * len(val_ids) / len(val_text), schedule.at(step))
            if v < best_val:
                best_val = v
                save_checkpoint(_eval_copy(model), tokenizer, out, extra={"val_loss": v, "step": step})
            save_checkpoint(_eval_copy(model), tokenizer, out / "last")
            torch.save({"optimizer": opt.state_dict(), "step": step, "best_val": best_val,
                        "data_rng": gen.get_state()}, out / "last" / "trainer_state.pt")
    bar.close()
    logger.info("done: best val loss %.4f nats/token", best_val)


def _with_dropout(model: Transformer, dropout: float) -> Transformer:
    trained = Transformer(model.cfg.replace(dropout=dropout)).to(next(model.parameters()).device)
    trained.load_state_dict(model.state_dict())
    return trained


def _eval_copy(model: Transformer) -> Transformer:
    """The model as it will be served: dropout recorded as 0."""
    served = Transformer(model.cfg.replace(dropout=0.0))
    served.load_state_dict({k: v.detach().cpu() for k, v in model.state_dict().items()})
    return served


if __name__ == "__main__":
    main()
