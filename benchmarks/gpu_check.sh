#!/usr/bin/env bash
# One prepared GPU check, for a session that is lent a GPU machine (the device tool). On the lending machine:
#   make gpu-wheels                                     # open_clip_torch, ftfy, wcwidth as wheels into .whl/
#   device run: bash benchmarks/gpu_check.sh            # carry: [".whl"]   (about 8 minutes on an H200)
# It installs the carried wheels, runs the CUDA tests (tests/core/test_gpu.py), the speed benchmark on the GPU and the
# whole grid as a user runs it (make bench-grid on CUDA: the MVTec-size synthetic set, the real architecture; GRID_SCALE
# to shrink it), and leaves the JSON tables and the logs in $OUT (or build/gpu).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
out="${OUT:-build/gpu}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 -c "import torch, open_clip; print('torch', torch.__version__, 'open_clip', open_clip.__version__)" | tee -a "$out/gpu.txt"
python3 -m pytest -q -p no:cacheprovider tests/core/test_gpu.py 2>&1 | tee "$out/test_gpu.log"
python3 -m benchmarks.bench_speed --device cuda --out "$out/speed_cuda.json" 2>&1 | tee "$out/bench_cuda.log"
python3 -m benchmarks.bench_grid --device cuda --model ViT-B-16-plus-240 --scale "${GRID_SCALE:-1}" \
    --out "$out/grid_cuda.json" 2>&1 | tee "$out/bench_grid_cuda.log"
