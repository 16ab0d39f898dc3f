"""The hardware ceiling: matmul FLOP/s, memory copy bandwidth, and model FLOPs utilisation.

`python -m bench.hardware --threads 2` prints this machine's figures. Peaks are what torch
itself reaches (torch.mm of large squares, tensor copies), measured with the same thread
count as the server, so utilisation compares like with like.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from model import ModelConfig

from .report import emit, table
from .stats import median


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device, repeats: int, warmup: int = 2) -> list[float]:
    """Seconds per call, each call timed on its own (after a warm-up)."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return times


def matmul_flops(dtype: torch.dtype, device: torch.device, size: int, repeats: int) -> dict[str, float]:
    """FLOP/s of torch.mm on (size x size) matrices: median and best of `repeats`."""
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    out = torch.empty(size, size, device=device, dtype=dtype)
    times = timed(lambda: torch.mm(a, b, out=out), device, repeats)
    flops = 2 * size**3
    return {"median": flops / median(times), "best": flops / min(times), "size": size}


def copy_bandwidth(device: torch.device, nbytes: int, repeats: int) -> dict[str, float]:
    """Bytes/s of a large tensor copy, counting the read and the write (as STREAM's copy does)."""
    src = torch.randn(nbytes // 4, device=device)
    dst = torch.empty_like(src)
    times = timed(lambda: dst.copy_(src), device, repeats)
    moved = 2 * src.numel() * src.element_size()
    return {"median": moved / median(times), "best": moved / min(times), "bytes": nbytes}


def measure(device: torch.device, threads: int | None, quick: bool = False) -> dict[str, Any]:
    """fp32 and bf16 matmul peaks and copy bandwidth of this machine (or GPU)."""
    if threads:
        torch.set_num_threads(threads)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32: TF32 is its own, faster figure
    size = (8192 if cuda else 2048) if not quick else (4096 if cuda else 1024)
    repeats = 5 if quick else (20 if cuda else 10)
    nbytes = (1 << 30 if cuda else 256 << 20) if not quick else (256 << 20 if cuda else 64 << 20)
    result: dict[str, Any] = {
        "device": str(device), "threads": torch.get_num_threads(), "torch": torch.__version__,
        "name": torch.cuda.get_device_name(device) if cuda else _cpu_name(),
        "matmul_fp32": matmul_flops(torch.float32, device, size, repeats),
        "matmul_bf16": matmul_flops(torch.bfloat16, device, size, repeats),
        "copy": copy_bandwidth(device, nbytes, repeats),
    }
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        result["matmul_tf32"] = matmul_flops(torch.float32, device, size, repeats)
        torch.backends.cuda.matmul.allow_tf32 = False
    return result


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "cpu"


def matmul_params(cfg: ModelConfig) -> int:
    """Weights that take part in a matmul per token: the blocks' projections and the vocabulary head.

    Embedding and position lookups, norms and biases are left out (they do no matmul), so
    2 x this is the forward FLOPs per token apart from attention.
    """
    per_layer = 4 * cfg.d_model**2 + 2 * cfg.d_model * cfg.d_ff
    head = cfg.vocab_size * cfg.d_model if cfg.lm_head else 0
    return cfg.n_layers * per_layer + head


def generation_flops(cfg: ModelConfig, level: dict[str, Any]) -> dict[str, float]:
    """Model FLOPs of one generation run: its output tokens (the issue's MFU), and with the prefill.

    Attention per token at a context of s keys is 4 x n_layers x d_model x s (QK^T and AV).
    """
    n = matmul_params(cfg)
    attn = 4 * cfg.n_layers * cfg.d_model
    decode = 2 * n * level["output_tokens"] + attn * level["output_context_sum"]
    prefill = 2 * n * level["input_tokens"] + attn * level["prefill_context_sum"]
    return {"output": float(decode), "all": float(decode + prefill)}


def utilisation(cfg: ModelConfig, level: dict[str, Any], peak_flops: float) -> dict[str, float]:
    """Model FLOPs utilisation of a run against a measured peak (fractions of 1)."""
    flops = generation_flops(cfg, level)
    seconds = level["duration_s"]
    return {"mfu": flops["output"] / seconds / peak_flops,
            "mfu_with_prefill": flops["all"] / seconds / peak_flops,
            "achieved_flops": flops["output"] / seconds}


def weight_bytes(cfg: ModelConfig, dtype: torch.dtype) -> int:
    """Bytes read per decode step at batch 1: every matmul weight once (the bandwidth floor)."""
    return matmul_params(cfg) * torch.empty((), dtype=dtype).element_size()


def summary_rows(hw: dict[str, Any]) -> list[list[Any]]:
    names = [("matmul_fp32", "fp32 matmul GFLOP/s"), ("matmul_bf16", "bf16 matmul GFLOP/s"),
             ("matmul_tf32", "tf32 matmul GFLOP/s"), ("copy", "copy GB/s (read+write)")]
    return [[label, hw[key]["median"] / 1e9, hw[key]["best"] / 1e9] for key, label in names if key in hw]


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.hardware", description=__doc__)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    hw = measure(torch.device(args.device), args.threads, args.quick)
    emit(f"{hw['name']}, {hw['threads']} threads, torch {hw['torch']}")
    emit(table(["", "median", "best"], summary_rows(hw)))


if __name__ == "__main__":
    main()
