#!/usr/bin/env bash
# Download (where pip works) the wheels bench/gpu.sh needs on a GPU machine whose Python (3.12,
# x86-64) has torch, transformers, sentence-transformers and httpx but not the server's stack.
# They land in .whl/ (ignored through .git/info/exclude); carry .whl with the run.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qxF '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
# The versions this project is tested with; --no-deps: each dependency is named here.
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl fastapi==0.165.0 starlette==1.10.0 pydantic==2.13.4 pydantic-core==2.46.4 \
  pydantic-settings==2.14.1 python-dotenv==1.2.2 uvicorn==0.55.0 annotated-types==0.7.0 \
  annotated-doc==0.0.7 typing-inspection==0.4.2 opentelemetry-api==1.45.3
ls -la .whl
