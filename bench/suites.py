"""What each suite runs: models' scale, device and dtypes, load levels, sizes and repeats."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class Suite:
    name: str
    scale: str  # models: "full" (GPT-2-small, the default model's shape, MiniLM) or "smoke" (tiny)
    device: str
    primary: str  # dtype of the engine, the server at every level and the transformers baselines
    secondary: str | None  # dtype of a second server run at `secondary_levels`
    threads: int
    levels: tuple[int, ...]  # concurrency levels for GPT-2-small (the targets need 1 and 32)
    default_levels: tuple[int, ...]
    secondary_levels: tuple[int, ...]
    embed_levels: tuple[int, ...]
    max_new_tokens: int
    prompt_words: tuple[int, int]
    rounds: int  # requests per level = rounds x concurrency (at least min_requests)
    min_requests: int
    repeats: int
    hf_single_requests: int
    hf_batch_size: int
    num_sentences: int
    st_batch_size: int
    overhead_steps: int
    hardware_quick: bool
    max_batch_size: int = 64
    max_total_tokens: int = 320  # prompt + new tokens per sequence: bounds the KV cache's memory

    def replace(self, **changes: object) -> Suite:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


SUITES: dict[str, Suite] = {
    # About 15-20 minutes on 2 cores.
    "cpu": Suite(name="cpu", scale="full", device="cpu", primary="float32", secondary="bfloat16", threads=2,
                 levels=(1, 4, 16, 32, 64), default_levels=(1, 4, 16, 32, 64), secondary_levels=(1, 32),
                 embed_levels=(1, 16, 64), max_new_tokens=64, prompt_words=(8, 96), rounds=2, min_requests=4,
                 repeats=3, hf_single_requests=4, hf_batch_size=32, num_sentences=512, st_batch_size=32,
                 overhead_steps=32, hardware_quick=False),
    # Under 3 minutes on 2 cores once the models are built: one repeat, fewer and shorter requests.
    "cpu-quick": Suite(name="cpu-quick", scale="full", device="cpu", primary="float32", secondary="bfloat16",
                       threads=2, levels=(1, 32), default_levels=(1, 32), secondary_levels=(32,),
                       embed_levels=(64,), max_new_tokens=16, prompt_words=(8, 96), rounds=1, min_requests=4,
                       repeats=1, hf_single_requests=2, hf_batch_size=32, num_sentences=128, st_batch_size=32,
                       overhead_steps=16, hardware_quick=True),
    # CUDA in bf16 (bench/gpu.sh): under 8 minutes on one GPU.
    "gpu": Suite(name="gpu", scale="full", device="cuda", primary="bfloat16", secondary="float32", threads=4,
                 levels=(1, 4, 16, 32, 64), default_levels=(1, 32, 64), secondary_levels=(1, 32),
                 embed_levels=(1, 16, 64), max_new_tokens=64, prompt_words=(8, 96), rounds=2, min_requests=8,
                 repeats=3, hf_single_requests=4, hf_batch_size=32, num_sentences=1024, st_batch_size=32,
                 overhead_steps=64, hardware_quick=False),
    # Tiny models, a few tokens: checks that every part runs (tens of seconds).
    "smoke": Suite(name="smoke", scale="smoke", device="cpu", primary="float32", secondary="bfloat16",
                   threads=1, levels=(1, 2), default_levels=(1, 2), secondary_levels=(2,), embed_levels=(2,),
                   max_new_tokens=3, prompt_words=(4, 24), rounds=1, min_requests=2, repeats=1,
                   hf_single_requests=2, hf_batch_size=2, num_sentences=8, st_batch_size=4, overhead_steps=4,
                   hardware_quick=True, max_batch_size=4, max_total_tokens=128),
}
