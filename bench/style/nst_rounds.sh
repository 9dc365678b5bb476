#!/usr/bin/env bash
# Alternating rounds of the NST closure bench: emobench (default Winograd, then im2col) and
# PyTorch, on an otherwise idle machine. Usage: bench/style/nst_rounds.sh ROUNDS OUT.json
# (PYTHON names the interpreter with torch and torchvision; default python3).
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-4}
out=${2:-bench/style/nst-rounds.json}
py=${PYTHON:-python3}
cargo bench --workspace --bench nst --no-run 2>/dev/null
bin=$(cargo bench --workspace --bench nst --no-run --message-format=json 2>/dev/null |
  "$py" -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "nst" and m.get("executable"):
        print(m["executable"])')
lines=()
for _ in $(seq "$rounds"); do
  lines+=("winograd $( (cd baselines && "$bin") | grep closure)")
  lines+=("im2col $( (cd baselines && NST_CONV=im2col "$bin") | grep closure)")
  lines+=("torch $( (cd bench/python && "$py" nst_bench.py) | grep closure)")
done
printf '%s\n' "${lines[@]}" | "$py" -c '
import json, re, sys, statistics, platform
rows = []
for l in sys.stdin:
    side = l.split()[0]
    m = re.search(r"forward\+backward median ([0-9.]+) ms", l)
    rows.append({"side": side, "closure_ms": float(m[1]), "line": l.strip()})
summary = {s: {"median_of_medians_ms": statistics.median(r["closure_ms"] for r in rows if r["side"] == s),
               "min_ms": min(r["closure_ms"] for r in rows if r["side"] == s),
               "max_ms": max(r["closure_ms"] for r in rows if r["side"] == s)}
           for s in ("winograd", "im2col", "torch")}
json.dump({"bench": "NST closure at 256x256, 2 threads", "machine": platform.processor() or platform.machine(),
           "rows": rows, "summary": summary}, open(sys.argv[1], "w"), indent=1)
print(json.dumps(summary, indent=1))
' "$out"
