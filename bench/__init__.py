"""attnserve's benchmark: load generator, baselines, hardware ceiling and the speed targets.

    python -m bench.serve --launch ...     HTTP load against /generate_stream or /embed
    python -m bench.run --suite cpu        everything in one run, targets marked met / not met
    python -m bench.models                 build the benchmark's models once (bench/out/models)
    python -m bench.hardware               this machine's matmul FLOP/s and copy bandwidth
    bash bench/gpu.sh                      the same on CUDA in bf16

Results go to bench/out/ (gitignored); bench/RESULTS.md keeps the recorded figures.
"""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "bench" / "out"
