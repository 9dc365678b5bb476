#!/usr/bin/env bash
# The diffusion speed comparison on a CUDA GPU: emobench (candle, --features cuda) and diffusers,
# fp16, 512x512, one image (UNet batch 3) and 8 images at once (UNet batch 24), same machine.
# Needs the CUDA toolkit (nvcc) for candle's kernels and a Python with torch + diffusers
# (pip install torch diffusers transformers). Results: JSON files in $1 (default bench/gpu/results).
#
# It first proves correctness: the fixture tests of the predictor, InstructPix2Pix and EmoEditor
# on cuda:0 in f32, f16 and bf16, at the tolerances they state. Then the predictor (ResNet-18, fp16,
# batch 1 and 8) against PyTorch; the unet bench also times an EmoEditor pass of 1 and 8 images;
# then NST and CLIPstyler against PyTorch.
# Without Rust on the machine: build with bench/gpu/build.sh and carry target/gpu-bin.tar.xz; every
# `cargo test|bench ... --test|--bench NAME -- ARGS` below then runs target/gpu-bin/NAME ARGS,
# with the CUDA 13 libraries it links found under / (e.g. PyTorch's nvidia wheels).
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${1:-bench/gpu/results}"
python="${PYTHON:-python3}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"

bin=$PWD/target/gpu-bin
if [ ! -d "$bin" ] && [ -f "$bin.tar.xz" ]; then
  tar -C target -xJf "$bin.tar.xz"
fi
if [ -d "$bin" ]; then
  cargo() {
    local name=""
    while [ $# -gt 0 ]; do
      case "$1" in --test | --bench) name=$2; shift 2 ;; --) shift; break ;; *) shift ;; esac
    done
    "$bin/$name" "$@"
  }
  # The tests read their fixtures under the folder they were built in.
  root=$(cat "$bin/BUILD_ROOT")
  if [ "$root" != "$PWD" ] && [ ! -e "$root" ]; then
    mkdir -p "$(dirname "$root")" && ln -s "$PWD" "$root"
  fi
  libs=$(find / -xdev \( -name libcudart.so.13 -o -name libcublas.so.13 -o -name libcublasLt.so.13 \
    -o -name libcurand.so.10 \
    -o -name libnvrtc.so.13 -o -name libcusparse.so.12 -o -name libnvJitLink.so.13 \) \
    -printf '%h\n' 2>/dev/null | sort -u | paste -sd: -)
  export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  if ldd "$bin/predictor_fixtures" | grep 'not found'; then
    echo "run.sh: the CUDA 13 libraries above are missing on this machine" >&2
    exit 1
  fi
fi

# Parity first: no speed figure from a GPU path that does not compute the reference's numbers.
export EMOBENCH_DEVICE=cuda:0 EMOBENCH_DTYPE=f32,f16,bf16
cargo test --release --features cuda --workspace --test predictor_fixtures -- \
  logits_match probabilities_are grad_cam_matches
cargo test --release --features cuda --workspace --test diffusion_fixtures -- \
  unet_matches vae_posterior clip_text_encoder instruct_pix2pix_pass emoeditor_passes_match
cargo test --release --features cuda --workspace --test emoeditor -- direction_encoder
unset EMOBENCH_DEVICE EMOBENCH_DTYPE

cargo bench --features cuda -p emobench --bench predictor_device -- \
  --device cuda:0 --dtype f16 --json "$out/emobench-predictor.json"
"$python" bench/gpu/predictor_bench.py --device cuda --dtype float16 \
  --json "$out/torch-predictor.json"
for b in 1 8; do
  cargo bench -p emobench-models --features cuda --bench unet -- \
    --device cuda:0 --dtype f16 --size 512 --batch "$b" --steps 20 --repeats 5 \
    --json "$out/emobench-batch$b.json"
  "$python" bench/python/diffusion_bench.py --device cuda --dtype float16 --size 512 \
    --batch "$b" --steps 20 --repeats 5 --json "$out/diffusers-batch$b.json"
done
# The style baselines on the same GPU, f32 on both sides: NST's style loss (weight 1e6) overflows
# f16, and CLIPstyler's CLIP stays f32 as on the CPU. NST: one closure evaluation at 256x256;
# CLIPstyler: whole iterations at 512x512 (64 crops).
DEVICE=cuda:0 cargo bench --features cuda -p emobench-baselines --bench nst \
  | tee "$out/emobench-nst.txt"
DEVICE=cuda "$python" bench/python/nst_bench.py | tee "$out/torch-nst.txt"
DEVICE=cuda:0 ITERS=3 cargo bench --features cuda -p emobench-baselines --bench clipstyler \
  | tee "$out/emobench-clipstyler.txt"
DEVICE=cuda ITERS=3 "$python" bench/python/clipstyler_bench.py | tee "$out/torch-clipstyler.txt"
echo "results in $out"
