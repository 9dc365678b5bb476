# Developer recipes. The README's two commands need none of these (`cargo install just --locked`).

# The demo on bundled data.
demo:
    cargo run --release -- demo

# Every test, as CI runs them.
test:
    cargo test --workspace

# What CI runs, including the Chromium install for the web-page test.
ci:
    bash .ci/run

# Formatting and lints, as required before a commit.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# Rust side of the speed comparison (writes bench/out/rust.json).
bench:
    cargo bench --bench pipeline

# Python side of the speed comparison (needs torch, grad-cam, opencv, scikit-image in a venv).
bench-python:
    python3 bench/python/reference_bench.py

# Regenerate the PyTorch/OpenCV/scikit-image reference fixtures (needs a venv with torch; ~3 GB).
fixtures-torch:
    python3 tests/fixtures/torch/make_fixtures.py

# Regenerate the image-processing fixtures (Pillow, OpenCV, scikit-image; no torch).
fixtures-imgproc:
    python3 tests/fixtures/imgproc/make_fixtures.py

# Regenerate the colour-transfer fixtures (GNU Octave + a checkout of frcs/colour-transfer).
fixtures-ct reference:
    python3 baselines/tests/fixtures/make_ct_fixtures.py --reference {{reference}}

# Regenerate the statistics fixtures (SciPy, statsmodels) and the messy MTurk golden files.
fixtures-study:
    python3 tests/fixtures/study/make_fixtures.py
    python3 tests/fixtures/study/make_messy_mturk.py

# The 100-replication bootstrap coverage check of the human-study analysis (slow).
study-coverage:
    cargo test --release --test study_analyse -- --ignored

# Timing of the image kernels against nothing but themselves (release).
imgproc-timing:
    cargo test --release --test imgproc -- --ignored --nocapture

# Regenerate the diffusion fixtures: tiny SD 1.5 / Ip2p / EmoEditor models and diffusers outputs
# (torch, diffusers, transformers; the slow CLIP tokenizer check wants transformers<5 in a second venv).
fixtures-diffusion:
    python3 models/tests/fixtures/diffusion/make_diffusion_fixtures.py
    python3 models/tests/fixtures/shapes/make_shapes.py

# Regenerate the CLIP tokenizer cases (transformers<5 for the slow tokenizer, no ftfy).
fixtures-tokenizer bpe:
    python3 models/tests/fixtures/tokenizer/make_tokenizer_cases.py --bpe {{bpe}} --out models/tests/fixtures/tokenizer --merges 1000

# Regenerate the critic cases by running the EmoEditor authors' test.py (path to it) unchanged.
fixtures-critic test_py:
    python3 tests/fixtures/critic/make_critic_fixture.py {{test_py}}

# Diffusion speed, Rust side (real SD 1.5 shapes, random weights, 256x256, 2 CPU threads).
bench-diffusion:
    cargo bench -p emobench-models --bench unet -- --size 256 --steps 3 --repeats 3

# Diffusion speed, diffusers side (same shapes, same machine).
bench-diffusion-python:
    python3 bench/python/diffusion_bench.py --size 256 --steps 3 --repeats 3

# Both sides on a CUDA GPU: fp16, 512x512, batch 1 and 8 (needs nvcc, torch, diffusers).
bench-gpu:
    bash bench/gpu/run.sh
