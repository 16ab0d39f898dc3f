#!/usr/bin/env bash
# attnserve's benchmark on one CUDA GPU in bf16 (python -m bench.run --suite gpu): under 8 minutes.
#
#   bash bench/gpu.sh [more bench.run flags]
#
# Warm-up before every measurement, medians of 3 repeats, the targets table printed last.
# Results go to $OUT/gpu when OUT is set (the device machine's output folder), else bench/out/gpu:
# results.json, results.md, gpt2.png, default.png, encoder.png, log.txt, server-logs.tgz.
# A machine without the server's packages (fastapi, uvicorn, pydantic-settings, ...) gets them
# from wheels in .whl/ (bench/gpu_wheels.sh downloads them where pip works; carry .whl along).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if compgen -G ".whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
RESULTS="${OUT:-bench/out}/gpu"
mkdir -p "$RESULTS"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print('torch', torch.__version__)"
"$PY" -c "import fastapi, uvicorn, pydantic_settings, httpx, tqdm" # the server and the load generator

# 440 s for the run (models built, servers started, every measurement) keeps the whole under 8 minutes.
# Each part's figures are written as soon as it ends, so a run cut short still leaves them.
status=0
timeout --signal=INT --kill-after=20 440 "$PY" -m bench.run --suite gpu --out "$RESULTS" \
  --models-dir bench/out/models --no-progress "$@" 2>&1 | tee "$RESULTS/log.txt" || status=$?
if [ -d "$RESULTS/logs" ]; then  # one archive: the device machine returns at most 8 files
  tar czf "$RESULTS/server-logs.tgz" -C "$RESULTS" logs && rm -rf "$RESULTS/logs"
fi
if [ "$status" -ne 0 ] && [ -f "$RESULTS/results.md" ]; then
  echo "bench.run stopped early (exit $status); the targets so far:"
  sed -n '/^## Targets/,/^## GPT/p' "$RESULTS/results.md"
fi
exit "$status"
