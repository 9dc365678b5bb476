#!/bin/sh
# SmolLM2-135M-Instruct Q4_1: prompt processing and generation tokens/s, emobench (dense f32 and
# candle's quantised kernels) against llama.cpp (llama-cpp-python) and transformers, 2 threads
# each, one side after the other, ROUNDS rounds; raw JSON into bench/lms/.
#
#   EMOBENCH_SMOLLM2_GGUF=target/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf \
#   PY=/work/pyref/bin/python ROUNDS=3 sh bench/lms/run.sh
#
# Build first (`cargo bench -p emobench-models --bench gguf_llm --no-run`); on a shared machine
# wrap each side in `flock /tmp/bench.lock` (LOCK below).
set -eu
cd "$(dirname "$0")/../.."
model=${EMOBENCH_SMOLLM2_GGUF:-target/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf}
py=${PY:-python3}
rounds=${ROUNDS:-3}
lock=${LOCK:-}
out=bench/lms
export RAYON_NUM_THREADS=2 OMP_NUM_THREADS=2
bench=$(ls -t target/release/deps/gguf_llm-* | grep -v '\.d$' | head -1)
for r in $(seq 1 "$rounds"); do
  $lock "$bench" --model "$model" --dequantize true --json "$out/emobench-dense-run$r.json" >/dev/null
  $lock "$bench" --model "$model" --dequantize false --json "$out/emobench-q4_1-run$r.json" >/dev/null
  $lock "$py" bench/python/lms_bench.py --backend llamacpp --model "$model" \
    --json "$out/llamacpp-run$r.json" >/dev/null
  $lock "$py" bench/python/lms_bench.py --backend transformers --model "$model" \
    --json "$out/transformers-run$r.json" >/dev/null
done
"$py" - "$out" <<'PY'
import glob, json, os, sys
rows = {}
for f in sorted(glob.glob(os.path.join(sys.argv[1], "*-run*.json"))):
    side = os.path.basename(f).rsplit("-run", 1)[0]
    d = json.load(open(f))
    rows.setdefault(side, []).append((d["prompt_tok_s_median"], d["gen_tok_s_median"]))
for side, v in rows.items():
    pp = sorted(x[0] for x in v); tg = sorted(x[1] for x in v)
    print(f"{side:16s} prompt {pp[0]:.1f}-{pp[-1]:.1f} tok/s   generation {tg[0]:.1f}-{tg[-1]:.1f} tok/s")
PY
