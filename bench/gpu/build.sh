#!/usr/bin/env bash
# Builds the linked CUDA binaries that bench/gpu/run.sh runs on a GPU machine (which has no Rust
# toolchain), into target/gpu-bin/ and target/gpu-bin.tar.xz: carry the archive along
# (`run --carry target/gpu-bin.tar.xz`, about 60 MB against the 433 MB folder).
#
# Needs the CUDA 13 tree that .ci/run installs from PyPI wheels (target/cuda-venv: nvcc, headers,
# cuBLAS, cuRAND, NVRTC) and gcc. Adds nvidia-cusparse to it (candle links cuSPARSE too). The
# driver's libcuda is on no PyPI wheel, so the link uses a stub made here, as NVIDIA's own stubs
# are made: a shared library with soname libcuda.so.1 that defines every cu* entry point cudarc
# declares as an empty function. It is never loaded; on the GPU machine the loader finds the
# driver's libcuda.so.1. The binaries need CUDA 13's libcudart.so.13, libcublas.so.13,
# libcublasLt.so.13, libcurand.so.10, libnvrtc.so.13 and libcusparse.so.12 there (run.sh looks for
# them), and a driver
# that reads PTX from nvcc 13.5.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=target/cuda-venv
if [ ! -f "$venv/installed" ]; then
  echo "build.sh: $venv is missing: run the CUDA part of .ci/run first" >&2
  exit 1
fi
cuda_root=$(echo "$PWD/$venv"/lib/python3*/site-packages/nvidia/cu13)
[ -e "$cuda_root/lib/libcusparse.so.12" ] || "$venv/bin/pip" install -q nvidia-cusparse==12.9.4.2

# Unversioned names for the linker, and the libcuda stub.
link="$PWD/target/cuda-link"
mkdir -p "$link"
for lib in cudart cublas cublasLt curand nvrtc cusparse; do
  ln -sf "$(ls "$cuda_root"/lib/lib$lib.so.* | head -n 1)" "$link/lib$lib.so"
done
cudarc=$(cargo metadata --format-version 1 --features cuda | python3 -c '
import json, os, sys
print(next(os.path.dirname(p["manifest_path"]) for p in json.load(sys.stdin)["packages"] if p["name"] == "cudarc"))')
grep -oh 'load::<_F>("cu[A-Za-z0-9_]*")' "$cudarc/src/driver/sys/mod.rs" \
  | sed 's/.*("\(.*\)")/\1/' | sort -u | sed 's/.*/void &(void) {}/' > "$link/libcuda_stub.c"
gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$link/libcuda.so" "$link/libcuda_stub.c"

# Same environment as .ci/run's `cargo check --features cuda`, plus the link folder.
export PATH="$cuda_root/bin:$PATH" CUDA_ROOT="$cuda_root" CUDA_PATH="$cuda_root" CUDA_COMPUTE_CAP=90 \
  CUDARC_CUDA_VERSION=13040 CARGO_TARGET_DIR=target/cuda-release \
  RUSTFLAGS="-L native=$link -C link-arg=-Wl,-rpath-link,$cuda_root/lib"
out=target/gpu-bin
rm -rf "$out"
mkdir -p "$out"
# Every test and bench executable cargo reports, under its target name.
collect() {
  python3 -c '
import json, shutil, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable"):
        shutil.copy(m["executable"], sys.argv[1] + "/" + m["target"]["name"])
' "$out"
}
cargo build --release --features cuda --bin emobench --message-format=json | collect
cargo test --release --features cuda --no-run --workspace --message-format=json \
  --test predictor_fixtures --test diffusion_fixtures --test emoeditor | collect
cargo bench --no-run --features cuda --message-format=json \
  --bench predictor_device -p emobench | collect
cargo bench --no-run --features cuda --message-format=json --bench unet -p emobench-models | collect
cargo bench --no-run --features cuda --message-format=json -p emobench-baselines \
  --bench nst --bench clipstyler | collect
strip --strip-debug "$out"/*
# The fixture tests find their files under the folder they were built in; run.sh links it.
echo "$PWD" > "$out/BUILD_ROOT"
ls -la "$out"
# The folder is about 430 MB (each executable embeds candle's PTX); compressed it fits the device
# tool's carry limit: carry target/gpu-bin.tar.xz, which run.sh unpacks.
tar -C target -cf - gpu-bin | xz -T0 -6 > target/gpu-bin.tar.xz.tmp
mv target/gpu-bin.tar.xz.tmp target/gpu-bin.tar.xz
ls -la target/gpu-bin.tar.xz
