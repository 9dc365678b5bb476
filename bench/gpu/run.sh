#!/usr/bin/env bash
# The diffusion speed comparison on a CUDA GPU: emobench (candle, --features cuda) and diffusers,
# fp16, 512x512, one image (UNet batch 3) and 8 images at once (UNet batch 24), same machine.
# Needs the CUDA toolkit (nvcc) for candle's kernels and a Python with torch + diffusers
# (pip install torch diffusers transformers). Results: JSON files in $1 (default bench/gpu/results).
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${1:-bench/gpu/results}"
python="${PYTHON:-python3}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
for b in 1 8; do
  cargo bench -p emobench-models --features cuda --bench unet -- \
    --device cuda:0 --dtype f16 --size 512 --batch "$b" --steps 20 --repeats 5 \
    --json "$out/emobench-batch$b.json"
  "$python" bench/python/diffusion_bench.py --device cuda --dtype float16 --size 512 \
    --batch "$b" --steps 20 --repeats 5 --json "$out/diffusers-batch$b.json"
done
echo "results in $out"
