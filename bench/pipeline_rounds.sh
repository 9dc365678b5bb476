#!/usr/bin/env bash
# Alternating rounds of the scoring-pipeline benchmarks, emobench then the reference stack, on an
# otherwise idle machine; each round's JSON is kept. Usage: bench/pipeline_rounds.sh ROUNDS DIR
# (PYTHON names the interpreter with torch, torchvision, grad-cam, OpenCV and scikit-image;
# default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-2}
dir=${2:-bench/out/rounds}
py=${PYTHON:-python3}
mkdir -p "$dir"
cargo bench --bench pipeline --no-run 2>/dev/null
for i in $(seq "$rounds"); do
  cargo bench --bench pipeline -- --out "$dir/emobench-pipeline-run$i.json" | grep -v '^->'
  "$py" bench/python/reference_bench.py --out "$dir/reference-run$i.json" \
    --csv "$dir/reference-score-rows-run$i.csv" | tail -n 12
done
