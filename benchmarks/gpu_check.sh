#!/usr/bin/env bash
# One prepared GPU check, for a session that is lent a GPU machine (the device tool). On the lending machine:
#   make gpu-wheels                                     # open_clip_torch, ftfy, wcwidth, zlib-ng as wheels into .whl/
#   device run: bash benchmarks/gpu_check.sh            # carry: [".whl"]   (about 8 minutes on an H200)
#   device run: bash benchmarks/gpu_check.sh compile    # then, time left: the encoder under torch.compile / CUDA graphs
# It installs the carried wheels, runs the CUDA tests (tests/core/test_gpu.py), the speed benchmark on the GPU and the
# whole grid as a user runs it (make bench-grid on CUDA: the MVTec-size synthetic set, the real architecture; GRID_SCALE
# to shrink it), and leaves the JSON tables and the logs in $OUT (or build/gpu). With "compile" it times instead the
# bf16 encoder with its blocks under torch.compile, plain and as CUDA graphs (reduce-overhead): each compiled row says
# whether its maps are bit for bit its eager row's (keep a compiled encoder only if faster and exact).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
out="${OUT:-build/gpu}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 -c "import torch, open_clip; print('torch', torch.__version__, 'open_clip', open_clip.__version__)" | tee -a "$out/gpu.txt"
if [ "${1:-}" = compile ]; then
    for mode in default reduce-overhead; do
        python3 -m benchmarks.bench_speed --device cuda --precisions bf16 --baseline-images 0 --aupro-images 0 \
            --compile --compile-mode "$mode" --out "$out/speed_cuda_compile_$mode.json" 2>&1 | tee "$out/bench_compile_$mode.log"
    done
    exit 0
fi
python3 -m pytest -q -p no:cacheprovider tests/core/test_gpu.py 2>&1 | tee "$out/test_gpu.log"
python3 -m benchmarks.bench_speed --device cuda --out "$out/speed_cuda.json" 2>&1 | tee "$out/bench_cuda.log"
python3 -m benchmarks.bench_grid --device cuda --model ViT-B-16-plus-240 --scale "${GRID_SCALE:-1}" \
    --out "$out/grid_cuda.json" 2>&1 | tee "$out/bench_grid_cuda.log"
